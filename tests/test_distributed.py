"Two processes (gloo on the CPU, `accelerate launch`) train like one: the same losses and margins for the same global batch, the same selection on every process, files written once, and resume."
import json, os, shutil, subprocess, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = r'''
import json, os, sys, torch
torch.set_num_threads(1)
from sage_nb.config import Config
from sage_nb.models import tiny_model, chat_prompt
from sage_nb.data import make_pair, pairs_dataset
from sage_nb.reference import cache_reference
from sage_nb.selectors import make_selector
from sage_nb.trainer import Trainer

run_dir, steps, resume, ids_log = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1", sys.argv[4]
model, tok = tiny_model()
rows = []
for i in range(8):
    a, b = i + 2, 2*i + 3
    rows.append(make_pair(chat_prompt(tok, f"What is {a}+{b}?"), f"{a}+{b}={a+b}. #### {a+b}",
                          f"{a}+{b}={a+b+1}. #### {a+b+1}", problem_id=f"p{i}", difficulty=i % 3, pass_rate=0.5))
cfg = Config(steps=steps, batch_size=4, grad_accum=2, lr=1e-2, warmup_steps=1, scheduler="constant", snr_every=3,
             checkpoint_every=3, refresh_every=2, score_batch_size=3, max_length=96, max_prompt_length=64,
             selector="sage", seed=3)
pairs = cache_reference(model, tok, pairs_dataset(rows), cfg, progress=False)
selector = make_selector("sage", cfg)
next_batch = selector.next_batch
def logged(step):
    ids = next_batch(step)
    with open(f"{ids_log}.{os.environ.get('RANK', '0')}", "a") as f: f.write(json.dumps([step, [str(i) for i in ids]]) + "\n")
    return ids
selector.next_batch = logged
Trainer(model, tok, pairs, cfg, selector=selector, run_dir=run_dir, resume=resume, progress=False).train()
'''

def _rows(path): return [json.loads(l) for l in Path(path).read_text().splitlines() if l.strip()]

def _train(tmp, name, procs, steps=6, resume=False):
    script = tmp/"train_dist.py"; script.write_text(SCRIPT)
    args = [str(script), str(tmp/name), str(steps), "1" if resume else "0", str(tmp/f"ids-{name}")]
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(procs),
              "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "0"]
    cmd = [sys.executable, *args] if procs == 1 else [*launch, *args]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, (p.stdout + p.stderr)[-4000:]
    return tmp/name

@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dist")
    return tmp, _train(tmp, "one", 1), _train(tmp, "two", 2)

def _tied(x, y, tol=1e-5):
    "The policy still is the reference (no update yet): every reward is float rounding, and the sign of a margin a coin toss."
    return all(abs(r[k]) < tol for r in (x, y) for k in ("rewards/chosen", "rewards/rejected"))

def _close(a, b, keys=("loss", "dpo_loss", "nll", "rewards/margins", "rewards/accuracies", "grad_norm", "lr"), tol=1e-4):
    assert [r["step"] for r in a] == [r["step"] for r in b]
    for x, y in zip(a, b):
        for k in keys:
            if k == "rewards/accuracies" and _tied(x, y): continue    # a share of margins > 0 among rounding-level margins
            assert abs(x[k] - y[k]) <= tol, (x["step"], k, x[k], y[k])
    assert not all(_tied(x, y) for x, y in zip(a, b))                 # the accuracies were compared at some step

def test_two_processes_train_like_one(runs):
    tmp, one, two = runs
    _close(_rows(one/"metrics.jsonl"), _rows(two/"metrics.jsonl"))
    m = _rows(two/"metrics.jsonl")
    assert len(m) == 6 and m[-1]["loss"] < m[0]["loss"]                 # it trained, and each step is logged once
    u1 = {(r["step"], r["pair_id"]): r.get("u") for r in _rows(one/"pairs.jsonl")}
    u2 = {(r["step"], r["pair_id"]): r.get("u") for r in _rows(two/"pairs.jsonl")}
    assert u1.keys() == u2.keys()
    for k in u1:
        if u1[k] is not None: assert abs(u1[k] - u2[k]) <= 1e-4, k

def test_selection_is_the_same_on_every_process(runs):
    tmp, one, two = runs
    r0, r1 = (tmp/"ids-two.0").read_text(), (tmp/"ids-two.1").read_text()
    assert r0 == r1 and len(r0.splitlines()) == 6                       # both processes chose the same ids each step
    assert r0 == (tmp/"ids-one.0").read_text()                          # and the same as one process

def test_only_the_main_process_writes(runs):
    tmp, one, two = runs
    files = lambda d: sorted(str(p.relative_to(d)) for p in d.rglob("*"))
    assert files(one) == files(two)                                     # no extra or temporary files
    for name in ("metrics", "pairs", "events", "snr"):                  # a second writer would double the lines
        assert len(_rows(one/f"{name}.jsonl")) == len(_rows(two/f"{name}.jsonl")), name
    assert sorted(p.name for p in (two/"checkpoints").iterdir()) == ["step-3", "step-6"]

def test_resume_with_two_processes(runs):
    tmp, one, two = runs
    _train(tmp, "again", 2, steps=3)
    _train(tmp, "again", 2, steps=6, resume=True)
    _close(_rows(two/"metrics.jsonl"), _rows(tmp/"again"/"metrics.jsonl"), tol=1e-5)
    kinds = [e["kind"] for e in _rows(tmp/"again"/"events.jsonl")]
    assert kinds.count("resume") == 1

def test_cli_run_under_accelerate_launch(tmp_path):
    "`accelerate launch ... -m sage_nb.cli run` on two CPU processes: one run folder, one report, one line per step."
    from sage_nb.models import tiny_model
    m, tok = tiny_model(lora=False, seed=1)
    m.save_pretrained(tmp_path/"tiny"); tok.save_pretrained(tmp_path/"tiny")
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "0", "-m", "sage_nb.cli", "run",
           "--model", str(tmp_path/"tiny"), "--out-dir", str(tmp_path/"run"), "--n-train-problems", "6", "--n-eval-problems", "2",
           "--k", "2", "--max-new-tokens", "8", "--steps", "2", "--batch-size", "2", "--checkpoint-every", "1", "--levels", "0,1"]
    p = subprocess.run(cmd, cwd=tmp_path, env=dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT)),
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, (p.stdout + p.stderr)[-4000:]
    assert p.stdout.count("sage-nb run:") == 1                          # the printout is the main process's
    assert sorted(d.name for d in tmp_path.iterdir()) == ["run", "tiny"]  # both processes used the same folder
    run = tmp_path/"run"
    assert (run/"report.html").exists() and [r["step"] for r in _rows(run/"metrics.jsonl")] == [1, 2]

NOTEBOOK_LAUNCH = r'''
import os, sys
from accelerate import notebook_launcher, PartialState
from sage_nb.config import Config
from sage_nb.pipeline import run
model, out = sys.argv[1], sys.argv[2]
cfg = Config(model=model, n_train_problems=6, n_eval_problems=4, k=2, max_new_tokens=8, steps=2, batch_size=2,
             refresh_every=1, snr_every=0, checkpoint_every=1, levels=(0, 1), out_dir=out)
def train():
    run(cfg, progress=False)
    with open(f"{out}.ranks", "a") as f: f.write(f"{PartialState().process_index}/{PartialState().num_processes}\n")
notebook_launcher(train, num_processes=2)
'''

def test_notebook_launcher_trains_with_two_processes_into_one_run_folder(tiny_dir, tmp_path):
    "The notebook route (`accelerate.notebook_launcher`, forked processes on the CPU) gives one complete run folder."
    out = tmp_path/"run"
    env = dict(os.environ, SAGE_NB_CACHE=str(tmp_path/"cache"), OMP_NUM_THREADS="1")
    r = subprocess.run([sys.executable, "-c", NOTEBOOK_LAUNCH, str(tiny_dir), str(out)], env=env, capture_output=True,
                       text=True, timeout=600, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert sorted(Path(f"{out}.ranks").read_text().split()) == ["0/2", "1/2"]
    assert [m["step"] for m in _rows(out/"metrics.jsonl")] == [1, 2]          # written once, by the main process
    assert (out/"report.html").exists() and (out/"adapter"/"adapter_config.json").exists()
    assert not (tmp_path/"run-2").exists()
