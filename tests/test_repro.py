"""The same command with the same seed, in two fresh processes, gives identical logs, accuracies and adapter bytes
on CPU; a different seed gives a different adapter. Each run is a real `sage-nb run` subprocess on a tiny local model."""
import os, subprocess, sys
from conftest import adapter_sha, run_logs

ARGS = ["--n-train-problems", "6", "--n-eval-problems", "4", "--k", "2", "--max-new-tokens", "8", "--steps", "4",
        "--batch-size", "2", "--refresh-every", "2", "--snr-every", "2", "--checkpoint-every", "2", "--eval-every", "2",
        "--levels", "0,1"]

def sage_nb_run(model_dir, out, cache, *extra):
    "One `sage-nb run` in a fresh Python process with its own empty cache (so it samples its own pairs)."
    env = dict(os.environ, SAGE_NB_CACHE=str(cache), TQDM_DISABLE="1")
    r = subprocess.run([sys.executable, "-m", "sage_nb.cli", "run", "--model", str(model_dir), "--out-dir", str(out), *ARGS, *extra],
                       env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    return out

def test_same_command_same_seed_same_run(tiny_dir, tmp_path):
    a = sage_nb_run(tiny_dir, tmp_path/"a", tmp_path/"cache-a")
    b = sage_nb_run(tiny_dir, tmp_path/"b", tmp_path/"cache-b")
    la, lb = run_logs(a), run_logs(b)
    for name in la: assert la[name] == lb[name], name
    assert len(la["metrics"]) == 4 and la["eval"]
    assert adapter_sha(a) == adapter_sha(b)
    c = sage_nb_run(tiny_dir, tmp_path/"c", tmp_path/"cache-a", "--seed", "1")
    assert adapter_sha(c) != adapter_sha(a)
