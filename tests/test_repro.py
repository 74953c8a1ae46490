"""The same command with the same seed, in two fresh processes, gives identical logs, accuracies and adapter bytes
on CPU; a different seed gives a different adapter. Each run is a real `sage-nb run` subprocess on a tiny local model."""
import hashlib, json, os, subprocess, sys
from pathlib import Path
import pytest
from sage_nb.models import tiny_model

ARGS = ["--n-train-problems", "6", "--n-eval-problems", "4", "--k", "2", "--max-new-tokens", "8", "--steps", "4",
        "--batch-size", "2", "--refresh-every", "2", "--snr-every", "2", "--checkpoint-every", "2", "--eval-every", "2",
        "--levels", "0,1"]
TIMING = ("time", "wall_s", "score_s", "seconds", "run_dir", "report")

@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("tiny")
    m, tok = tiny_model(lora=False, seed=1)
    m.save_pretrained(d); tok.save_pretrained(d)
    return d

def sage_nb_run(model_dir, out, cache, *extra):
    "One `sage-nb run` in a fresh Python process with its own empty cache (so it samples its own pairs)."
    env = dict(os.environ, SAGE_NB_CACHE=str(cache), TQDM_DISABLE="1")
    r = subprocess.run([sys.executable, "-m", "sage_nb.cli", "run", "--model", str(model_dir), "--out-dir", str(out), *ARGS, *extra],
                       env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    return out

def logs(d):
    "Every log line of a run without its timings and paths."
    def clean(x):
        if isinstance(x, dict): return {k: clean(v) for k, v in x.items() if not k.startswith(TIMING)}
        if isinstance(x, list): return [clean(v) for v in x]
        return x.replace(str(d), "<run>") if isinstance(x, str) else x
    return {n: [clean(json.loads(l)) for l in (d/f"{n}.jsonl").read_text().splitlines()] for n in ("metrics", "pairs", "events", "snr", "eval")}

def adapter_sha(d): return hashlib.sha1((d/"adapter"/"adapter_model.safetensors").read_bytes()).hexdigest()

def test_same_command_same_seed_same_run(tiny_dir, tmp_path):
    a = sage_nb_run(tiny_dir, tmp_path/"a", tmp_path/"cache-a")
    b = sage_nb_run(tiny_dir, tmp_path/"b", tmp_path/"cache-b")
    la, lb = logs(a), logs(b)
    for name in la: assert la[name] == lb[name], name
    assert len(la["metrics"]) == 4 and la["eval"]
    assert adapter_sha(a) == adapter_sha(b)
    c = sage_nb_run(tiny_dir, tmp_path/"c", tmp_path/"cache-a", "--seed", "1")
    assert adapter_sha(c) != adapter_sha(a)
