"Shared by the command-line tests: a tiny local model folder, and a run's logs and adapter in a comparable form."
import hashlib
import pytest
from sage_nb.models import tiny_model
from sage_nb.runlog import LOGS, read_jsonl

TIMING = ("time", "wall_s", "score_s", "seconds", "run_dir", "report")   # keys that differ between identical runs

@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    "A random-init tiny Llama saved as a local model folder (what `--model PATH` loads)."
    d = tmp_path_factory.mktemp("tiny")
    m, tok = tiny_model(lora=False, seed=1)
    m.save_pretrained(d); tok.save_pretrained(d)
    return d

def clean(x, d):
    "`x` without timings, with the run folder's path as `<run>`."
    if isinstance(x, dict): return {k: clean(v, d) for k, v in x.items() if not k.startswith(TIMING)}
    if isinstance(x, list): return [clean(v, d) for v in x]
    return x.replace(str(d), "<run>") if isinstance(x, str) else x

def run_logs(d, skip_kinds=()):
    "Every log line of run folder `d` without timings and paths (and without events of `skip_kinds`)."
    out = {n: [clean(r, d) for r in read_jsonl(d/f"{n}.jsonl")] for n in LOGS}   # raises on a torn line in the middle
    out["events"] = [e for e in out["events"] if e.get("kind") not in skip_kinds]
    return out

def adapter_sha(d): return hashlib.sha1((d/"adapter"/"adapter_model.safetensors").read_bytes()).hexdigest()
