"""Kill and resume: a `sage-nb run` subprocess is SIGKILLed at seeded points (after a training step, after a scoring
pass, after an evaluation, half-way through a checkpoint write), resumed with `--resume` each time, and must end
with the same logs, metrics and adapter bytes as an uninterrupted run: no duplicated or missing log lines, no torn
files, no lock or half-written checkpoint left behind. The crash points come from the test hook
`SAGE_NB_TEST_KILL_AT=<phase>:<n>` (`sage_nb.checkpoint.kill_point`): the n-th time the process passes `phase`."""
import json, os, random, signal, subprocess, sys
from pathlib import Path
import pytest
from sage_nb.runlog import LOGS
from conftest import adapter_sha, clean, run_logs

ARGS = ["--n-train-problems", "6", "--n-eval-problems", "4", "--k", "2", "--max-new-tokens", "8", "--steps", "6",
        "--batch-size", "2", "--refresh-every", "2", "--snr-every", "2", "--checkpoint-every", "2", "--eval-every", "2",
        "--levels", "0,1"]
PHASES = ("train", "score", "eval", "checkpoint")

@pytest.fixture(scope="module")
def cache(tmp_path_factory): return tmp_path_factory.mktemp("cache")

def sage_nb(cache, *argv, kill_at=None):
    "One `sage-nb` command in a fresh process; `kill_at` arms the crash hook."
    env = dict(os.environ, SAGE_NB_CACHE=str(cache), TQDM_DISABLE="1")
    env.pop("SAGE_NB_TEST_KILL_AT", None)
    if kill_at: env["SAGE_NB_TEST_KILL_AT"] = kill_at
    return subprocess.run([sys.executable, "-m", "sage_nb.cli", *argv], env=env, capture_output=True, text=True, timeout=600)

@pytest.fixture(scope="module")
def baseline(tiny_dir, cache, tmp_path_factory):
    "The uninterrupted run."
    out = tmp_path_factory.mktemp("base")/"run"
    r = sage_nb(cache, "run", "--model", str(tiny_dir), "--out-dir", str(out), *ARGS)
    assert r.returncode == 0, r.stderr[-3000:]
    return out

def summary(d):
    s = json.loads((d/"summary.json").read_text())
    return clean({k: s[k] for k in ("steps", "final", "eval_before", "eval_after", "nan_skips")}, d)


def kill_plan(n: int, seed: int):
    "`n` crash points: every phase once (when n >= 4), the rest drawn at random; each at its 1st or 2nd pass."
    rng = random.Random(seed)
    phases = list(PHASES) + [rng.choice(PHASES) for _ in range(max(n - 4, 0))]
    rng.shuffle(phases)
    return [f"{p}:{rng.randint(1, 2)}" for p in phases[:n]]

def soak(tiny_dir, cache, out, plan):
    "Run, kill at each point of `plan` (resuming in between), then resume to the end."
    first = ["run", "--model", str(tiny_dir), "--out-dir", str(out), *ARGS]
    for i, k in enumerate(plan):
        r = sage_nb(cache, *(first if i == 0 else ["run", "--resume", str(out)]), kill_at=k)
        assert r.returncode == -signal.SIGKILL, f"{k} did not kill the run (exit {r.returncode}): {r.stderr[-2000:]}"
        assert (out/"run.lock").exists()          # a killed run leaves its lock: the next one must take it over
    r = sage_nb(cache, "run", "--resume", str(out))
    assert r.returncode == 0, r.stderr[-3000:]
    assert "taking over the stale lock" in r.stdout
    return out

def check_same(out, base):
    la, lb = run_logs(out, skip_kinds=("resume",)), run_logs(base, skip_kinds=("resume",))
    for name in LOGS: assert la[name] == lb[name], name
    assert summary(out) == summary(base)
    assert adapter_sha(out) == adapter_sha(base)
    assert not (out/"run.lock").exists() and not list((out/"checkpoints").glob(".tmp-*"))
    assert len(la["metrics"]) == 6 and [m["step"] for m in la["metrics"]] == list(range(1, 7))

def test_plan_covers_every_phase():
    plan = kill_plan(5, seed=0)
    assert len(plan) == 5 and {p.split(":")[0] for p in plan} == set(PHASES)
    assert plan == kill_plan(5, seed=0)

def test_two_kills_then_resume_is_the_uninterrupted_run(tiny_dir, cache, baseline, tmp_path):
    out = soak(tiny_dir, cache, tmp_path/"run", ["checkpoint:2", "score:2"])
    check_same(out, baseline)

@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("SAGE_NB_SLOW"), reason="long soak: set SAGE_NB_SLOW=1")
def test_soak_five_seeded_kills(tiny_dir, cache, baseline, tmp_path):
    out = soak(tiny_dir, cache, tmp_path/"run", kill_plan(5, seed=0))
    check_same(out, baseline)
