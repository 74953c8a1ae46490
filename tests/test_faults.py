"""Resource and numerical faults: a disk that fills during a checkpoint write, a run folder that cannot be written,
a second run on a folder a live run holds, a stale lock left by a killed run, and a streak of NaN losses. Each
ends in one clear line, and what was saved before the fault stays usable."""
import json, os, shutil, signal, socket, subprocess, sys, time
from pathlib import Path
import pytest
import torch
from sage_nb.cli import main
from sage_nb.runlog import read_jsonl

ARGS = ["--n-train-problems", "6", "--n-eval-problems", "2", "--k", "2", "--max-new-tokens", "8", "--steps", "4",
        "--batch-size", "2", "--refresh-every", "2", "--snr-every", "0", "--checkpoint-every", "2", "--levels", "0,1"]

@pytest.fixture(scope="module")
def cache(tmp_path_factory): return tmp_path_factory.mktemp("cache")

def sage_nb(cache, *argv, pre=None, wrap=(), wait=True):
    "`sage-nb argv` in a fresh process; `pre` is Python run before the CLI (e.g. to set a resource limit)."
    env = dict(os.environ, SAGE_NB_CACHE=str(cache), TQDM_DISABLE="1")
    env.pop("SAGE_NB_TEST_KILL_AT", None)
    code = f"{pre or ''}\nimport sys\nfrom sage_nb.cli import main\nmain(sys.argv[1:])"
    cmd = [*wrap, sys.executable, "-c", code, *argv]
    if not wait: return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)

# The second checkpoint write runs under a 1000-byte file size limit (SIGXFSZ ignored, so a write fails with EFBIG).
DISK_FULL = """
import resource, signal
from sage_nb import checkpoint as ck
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
_save, _n = ck.save_checkpoint, [0]
def save(*a, **k):
    _n[0] += 1
    if _n[0] == 2: resource.setrlimit(resource.RLIMIT_FSIZE, (1000, resource.RLIM_INFINITY))
    return _save(*a, **k)
ck.save_checkpoint = save
"""

def test_disk_full_during_a_checkpoint_keeps_the_previous_one(tiny_dir, cache, tmp_path):
    out = tmp_path/"run"
    r = sage_nb(cache, "run", "--model", str(tiny_dir), "--out-dir", str(out), *ARGS, pre=DISK_FULL)
    assert r.returncode == 2, r.stderr[-3000:]
    err = [l for l in r.stderr.splitlines() if l.startswith("sage-nb run: error")]
    assert len(err) == 1 and "Traceback" not in r.stderr, r.stderr[-3000:]
    assert f"could not write checkpoint {out}/checkpoints/step-4" in err[0] and "disk full" in err[0], err[0]
    assert f"The previous checkpoint {out}/checkpoints/step-2 is intact" in err[0], err[0]
    assert sorted(p.name for p in (out/"checkpoints").iterdir()) == ["step-2"]       # no half-written folder left
    r = sage_nb(cache, "run", "--resume", str(out))
    assert r.returncode == 0, r.stderr[-3000:]
    ev = [e for e in read_jsonl(out/"events.jsonl") if e["kind"] == "resume"]
    assert len(ev) == 1 and ev[0]["path"].endswith("step-2")
    assert json.loads((out/"summary.json").read_text())["steps"] == 4
    assert [m["step"] for m in read_jsonl(out/"metrics.jsonl")] == [1, 2, 3, 4]

def no_root_override():
    "A command prefix under which root loses its power to write read-only folders (None if it cannot be done)."
    if os.geteuid() != 0: return []
    if shutil.which("capsh") is None: return None
    return ["capsh", "--drop=cap_dac_override,cap_dac_read_search,cap_fowner", "--", "-c", 'exec "$0" "$@"']

def test_a_read_only_run_folder_fails_before_training(cache, tmp_path):
    wrap = no_root_override()
    if wrap is None: pytest.skip("running as root without capsh: cannot make a folder read-only")
    ro = tmp_path/"ro"; (ro/"run").mkdir(parents=True)
    (ro/"run"/"config.json").write_text(json.dumps(dict(steps=2, model="/no/such/model")))
    os.chmod(ro/"run", 0o555); os.chmod(ro, 0o555)
    try:
        r = sage_nb(cache, "run", "--resume", str(ro/"run"), wrap=wrap)
        assert r.returncode == 2 and f"run folder {ro}/run is not writable" in r.stderr, r.stderr[-2000:]
        r = sage_nb(cache, "run", "--out-dir", str(ro/"new"), wrap=wrap)
        assert r.returncode == 2 and f"run folder {ro}/new is not writable" in r.stderr, r.stderr[-2000:]
    finally: os.chmod(ro, 0o755); os.chmod(ro/"run", 0o755)
    assert not (ro/"new").exists() and not (ro/"run"/"run.lock").exists()

def test_a_live_run_holds_its_folder_and_a_dead_one_does_not(tiny_dir, cache, tmp_path):
    out = tmp_path/"run"
    a = sage_nb(cache, "run", "--model", str(tiny_dir), "--out-dir", str(out), *ARGS, "--steps", "40", wait=False)
    try:
        t0 = time.time()
        while not (out/"config.json").exists():          # the trainer has started: the folder is a run
            assert a.poll() is None and time.time() - t0 < 300, a.stderr.read() if a.poll() is not None else "timeout"
            time.sleep(0.2)
        os.kill(a.pid, signal.SIGSTOP)                    # alive but paused, so the check below cannot race its end
        lock = json.loads((out/"run.lock").read_text())
        assert lock["pid"] == a.pid and lock["host"] == socket.gethostname() and lock["started"]
        r = sage_nb(cache, "run", "--resume", str(out))
        assert r.returncode == 2, r.stderr[-2000:]
        assert f"{out} is in use by a live run (pid {a.pid} on {lock['host']}, started {lock['started']})" in r.stderr
    finally:
        os.kill(a.pid, signal.SIGKILL); a.wait()
    assert (out/"run.lock").exists()                      # left behind by the killed run: stale
    r = sage_nb(cache, "run", "--resume", str(out), "--steps", "4")   # --steps is ignored on resume: the run's own 40 stand
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"taking over the stale lock of {out} (pid {a.pid}" in r.stdout
    assert not (out/"run.lock").exists()

def test_a_nan_streak_stops_the_run_and_keeps_a_checkpoint_from_before_it(tiny_dir, cache, tmp_path, monkeypatch, capsys):
    "Losses NaN from step 3 on: the run stops after nan_patience=2 skipped steps, exit 1, one line; step-2 is intact."
    from sage_nb.trainer import Trainer
    from sage_nb.checkpoint import check_checkpoint
    from safetensors.torch import load_file
    monkeypatch.setenv("SAGE_NB_CACHE", str(cache))
    orig = Trainer.compute_loss
    def nan_from_3(self, out, rc, rr):
        total, d, nll = orig(self, out, rc, rr)
        if self.step + 1 >= 3 and torch.is_grad_enabled(): total = total*float("nan")
        return total, d, nll
    monkeypatch.setattr(Trainer, "compute_loss", nan_from_3)
    out = tmp_path/"run"
    with pytest.raises(SystemExit) as e:
        main(["run", "--model", str(tiny_dir), "--out-dir", str(out), *ARGS, "--steps", "8", "--nan-patience", "2"])
    err = capsys.readouterr().err
    assert e.value.code == 1 and "Traceback" not in err, err
    assert "NaN/inf on 2 consecutive steps (up to step 4); training stopped" in err, err
    ms = read_jsonl(out/"metrics.jsonl")
    assert [m["step"] for m in ms] == [1, 2, 3, 4] and [m.get("skipped", False) for m in ms] == [False, False, True, True]
    ck = out/"checkpoints"
    assert check_checkpoint(ck/"step-2")                  # the checkpoint from before the streak, complete and readable
    a2, a4 = (load_file(str(ck/s/"adapter"/"adapter_model.safetensors")) for s in ("step-2", "step-4"))
    assert all(torch.equal(a2[k], a4[k]) for k in a2)     # the skipped steps changed no weight
