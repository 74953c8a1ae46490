"""Every bad input at the command line's entry points ends in one line naming the file, flag or field, and exit
code 2: config files, flag values, sizes that cannot work, resume folders that are not runs or hold a damaged
checkpoint, a wrong model path, and an adapter evaluated on a base model it was not trained on."""
import json, shutil
import pytest
from sage_nb.cli import main
from sage_nb.models import tiny_model

ARGS = ["--n-train-problems", "6", "--n-eval-problems", "4", "--k", "2", "--max-new-tokens", "8", "--steps", "2",
        "--batch-size", "2", "--refresh-every", "1", "--snr-every", "0", "--checkpoint-every", "1", "--levels", "0,1"]

@pytest.fixture(scope="module")
def other_base(tmp_path_factory):
    "A base model of another shape (hidden size 32 instead of 64)."
    d = tmp_path_factory.mktemp("other")
    m, tok = tiny_model(lora=False, seed=1, hidden=32)
    m.save_pretrained(d); tok.save_pretrained(d)
    return d

@pytest.fixture(scope="module")
def done_run(tiny_dir, tmp_path_factory):
    "A finished tiny run with checkpoints step-1 and step-2."
    out = tmp_path_factory.mktemp("runs")/"run"
    mp = pytest.MonkeyPatch(); mp.setenv("SAGE_NB_CACHE", str(tmp_path_factory.getbasetemp()/"cache"))
    try: main(["run", "--model", str(tiny_dir), "--out-dir", str(out), *ARGS])
    finally: mp.undo()
    assert (out/"checkpoints"/"step-2"/"optimizer.pt").exists()
    return out

def copy_run(src, dst, damage=None):
    shutil.copytree(src, dst)
    if damage: damage(dst/"checkpoints"/"step-2")
    return dst

def truncate(p):
    b = p.read_bytes(); p.write_bytes(b[:len(b)//3])

def write(path, text): path.write_text(text); return path

# (id, argv builder (tmp_path, fixtures) -> argv, message fragment); `{p}` in a fragment is tmp_path.
CASES = [
    ("config unknown key", lambda t, f: ["run", "--config", str(write(t/"c.json", '{"betta": 0.2}'))],
     "Config file {p}/c.json: Unknown Config field(s): 'betta' (did you mean 'beta'?)"),
    ("config levels an int", lambda t, f: ["run", "--config", str(write(t/"c.json", '{"levels": 5}'))],
     "Config file {p}/c.json: levels (--levels) must be a list of whole numbers, got int 5"),
    ("config steps text", lambda t, f: ["run", "--config", str(write(t/"c.json", '{"steps": "ten"}'))],
     "steps (--steps) must be a whole number, got str 'ten'"),
    ("config lr text", lambda t, f: ["run", "--config", str(write(t/"c.json", '{"lr": "fast"}'))],
     "lr (--lr) must be a number, got str 'fast'"),
    ("config steps zero", lambda t, f: ["run", "--config", str(write(t/"c.json", '{"steps": 0}'))],
     "steps (--steps) must be >= 1, got 0"),
    ("config not json", lambda t, f: ["run", "--config", str(write(t/"c.json", '{"steps": 3,}'))],
     "Config file {p}/c.json is not valid JSON"),
    ("config a list", lambda t, f: ["run", "--config", str(write(t/"c.json", '[1, 2]'))],
     "Config file {p}/c.json must hold a JSON object of fields, got list"),
    ("config missing", lambda t, f: ["run", "--config", str(t/"none.json")], "Config file not found: {p}/none.json"),
    ("steps not a number", lambda t, f: ["run", "--steps", "x"], "--steps 'x': expected a whole number"),
    ("levels not numbers", lambda t, f: ["run", "--levels", "a,b"], "--levels 'a,b': expected comma-separated whole numbers"),
    ("lr not a number", lambda t, f: ["run", "--lr", "big"], "--lr 'big': expected a number"),
    ("steps zero", lambda t, f: ["run", "--steps", "0"], "steps (--steps) must be >= 1, got 0"),
    ("steps negative", lambda t, f: ["run", "--steps=-5"], "steps (--steps) must be >= 1, got -5"),
    ("batch_size zero", lambda t, f: ["run", "--batch-size", "0"], "batch_size (--batch-size) must be >= 1, got 0"),
    ("k zero", lambda t, f: ["run", "--k", "0"], "k (--k) must be >= 1, got 0"),
    ("levels empty", lambda t, f: ["run", "--levels", ","], "levels (--levels) must be a non-empty list of levels >= 0"),
    ("levels negative", lambda t, f: ["run", "--levels=-1,2"], "levels (--levels) must be a non-empty list of levels >= 0"),
    ("n_train_problems zero", lambda t, f: ["run", "--n-train-problems", "0"], "n_train_problems (--n-train-problems) must be >= 1, got 0"),
    ("n_eval_problems negative", lambda t, f: ["run", "--n-eval-problems=-1"], "n_eval_problems (--n-eval-problems) must be >= 0, got -1"),
    ("refresh_every zero", lambda t, f: ["run", "--refresh-every", "0"], "refresh_every (--refresh-every) must be >= 1, got 0"),
    ("checkpoint_every negative", lambda t, f: ["run", "--checkpoint-every=-2"], "checkpoint_every (--checkpoint-every) must be >= 0 (0 turns it off), got -2"),
    ("nan_patience zero", lambda t, f: ["run", "--nan-patience", "0"], "nan_patience (--nan-patience) must be >= 1, got 0"),
    ("lr zero", lambda t, f: ["run", "--lr", "0"], "lr (--lr) must be > 0, got 0.0"),
    ("w_new above one", lambda t, f: ["run", "--w-new", "1.5"], "w_new (--w-new) must be in [0, 1], got 1.5"),
    ("grad_accum above batch", lambda t, f: ["run", "--batch-size", "4", "--grad-accum", "8"], "grad_accum (--grad-accum) must be <= batch_size (4), got 8"),
    ("unknown loss", lambda t, f: ["run", "--loss-type", "dpo"], "loss_type (--loss-type) must be one of sigmoid, ipo, robust, sft, got 'dpo'"),
    ("compare validates too", lambda t, f: ["compare", "--steps", "0"], "steps (--steps) must be >= 1, got 0"),
    ("resume missing folder", lambda t, f: ["run", "--resume", str(t/"nope")], "--resume {p}/nope: no such folder."),
    ("resume not a run", lambda t, f: ["run", "--resume", str(t)], "--resume {p}: not a run folder (no config.json)."),
    ("resume truncated optimizer", lambda t, f: ["run", "--resume", str(copy_run(f["run"], t/"r", lambda c: truncate(c/"optimizer.pt")))],
     "cannot resume {p}/r: checkpoint file {p}/r/checkpoints/step-2/optimizer.pt is unreadable (optimizer state)"),
    ("resume missing adapter", lambda t, f: ["run", "--resume", str(copy_run(f["run"], t/"r", lambda c: shutil.rmtree(c/"adapter")))],
     "checkpoint file {p}/r/checkpoints/step-2/adapter/adapter_model.safetensors is missing (adapter weights); delete {p}/r/checkpoints/step-2 to resume from step-1"),
    ("resume truncated adapter", lambda t, f: ["run", "--resume", str(copy_run(f["run"], t/"r", lambda c: truncate(c/"adapter"/"adapter_model.safetensors")))],
     "checkpoint file {p}/r/checkpoints/step-2/adapter/adapter_model.safetensors is unreadable (adapter weights)"),
    ("resume corrupt trainer state", lambda t, f: ["run", "--resume", str(copy_run(f["run"], t/"r", lambda c: write(c/"trainer_state.json", '{"step": 2')))],
     "checkpoint file {p}/r/checkpoints/step-2/trainer_state.json is unreadable (trainer_state state)"),
    ("resume missing rng", lambda t, f: ["run", "--resume", str(copy_run(f["run"], t/"r", lambda c: (c/"rng.pt").unlink()))],
     "checkpoint file {p}/r/checkpoints/step-2/rng.pt is missing (rng state)"),
    ("model path missing", lambda t, f: ["run", "--model", str(t/"no-model"), *ARGS, "--out-dir", str(t/"o")], "{p}/no-model"),
    ("model folder empty", lambda t, f: ["run", "--model", str(t), *ARGS, "--out-dir", str(t/"o")], "{p}"),
    ("eval nothing there", lambda t, f: ["eval", str(t/"nope")], "{p}/nope holds no PEFT adapter"),
    ("eval on another base", lambda t, f: ["eval", str(f["run"]), "--model", str(f["other"])],
     "was trained on another base model"),
]

@pytest.mark.parametrize("build,needle", [pytest.param(b, n, id=i) for i, b, n in CASES])
def test_bad_input_is_one_clear_line(build, needle, tmp_path, done_run, other_base, capsys, monkeypatch):
    monkeypatch.setenv("SAGE_NB_CACHE", str(tmp_path/"cache"))
    argv = build(tmp_path, dict(run=done_run, other=other_base))
    with pytest.raises(SystemExit) as e: main(argv)
    err = capsys.readouterr().err
    assert e.value.code == 2, err
    assert needle.format(p=tmp_path) in err, err
    lines = [l for l in err.splitlines() if l.startswith("sage-nb ")]
    assert len(lines) == 1 and "Traceback" not in err, err

def test_eval_names_both_bases(done_run, other_base, tiny_dir, capsys):
    "The mismatch message says which module and which sizes disagree, and the adapter's own base still works."
    with pytest.raises(SystemExit): main(["eval", str(done_run), "--model", str(other_base), "--n-eval-problems", "2"])
    err = capsys.readouterr().err
    assert f"({other_base}) has model.layers.0" in err and "of size 64, the adapter expects 128" in err, err
    main(["eval", str(done_run), "--n-eval-problems", "2", "--model", str(tiny_dir), "--max-new-tokens", "4"])
    assert "held-out accuracy" in capsys.readouterr().out
