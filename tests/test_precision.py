"""Precision per device (faked GPU capabilities on a CPU), the loader and the trainer following it, and the prepared
GPU check: it says there is no CUDA and exits 0 on a CPU machine, and its CPU-runnable steps pass with `--dry`."""
import os, subprocess, sys, warnings
from pathlib import Path
import pytest, torch
from sage_nb import models
from sage_nb.config import Config
from sage_nb.models import resolve_precision, load_policy, tiny_model, use_gradient_checkpointing

ROOT = Path(__file__).resolve().parents[1]

@pytest.fixture
def fake_gpu(monkeypatch):
    "torch reports one CUDA device of the compute capability the test sets."
    def set_cap(cap):
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda d=None: cap)
        monkeypatch.setattr(torch.cuda, "get_device_name", lambda d=None: f"Fake GPU {cap[0]}.{cap[1]}")
    return set_cap

@pytest.mark.parametrize("cap,want", [((7, 0), "fp16"), ((7, 5), "fp16"), ((8, 0), "bf16"), ((9, 0), "bf16")])
def test_auto_precision_follows_the_capability(fake_gpu, cap, want):
    fake_gpu(cap)
    assert resolve_precision("auto", "cuda") == want
    assert resolve_precision(Config(device="auto")) == want           # what the run's config.json records
    assert resolve_precision("fp32", "cuda") == "fp32" and resolve_precision("fp16", "cuda") == "fp16"
    assert use_gradient_checkpointing("auto", "cuda") is True

def test_bf16_without_bf16_is_a_clear_error(fake_gpu):
    fake_gpu((7, 5))
    with pytest.raises(ValueError, match="compute capability 7.5.*has no bf16"):
        resolve_precision(Config(device="cuda", precision="bf16"))

def test_cpu_is_fp32_and_fp16_needs_a_gpu():
    assert resolve_precision(Config(device="cpu")) == "fp32"
    with pytest.raises(ValueError, match="needs a CUDA GPU"): resolve_precision("fp16", "cpu")

def test_weights_and_4bit_compute_dtype_follow_the_precision(tmp_path, monkeypatch):
    base, tok = tiny_model(lora=False, seed=1); base.save_pretrained(tmp_path); tok.save_pretrained(tmp_path)
    m, _ = load_policy(str(tmp_path), quantize="none", device="cpu", precision="bf16", lora_r=4, lora_alpha=8)
    dtypes = {n: p.dtype for n, p in m.named_parameters()}
    assert all(d == torch.bfloat16 for n, d in dtypes.items() if "lora_" not in n)
    assert all(d == torch.float32 for n, d in dtypes.items() if "lora_" in n)       # the trained adapter stays fp32
    asked = []
    def nf4(dtype):
        asked.append(dtype); raise RuntimeError("stop here")
    monkeypatch.setattr(models, "_nf4_config", nf4)
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        load_policy(str(tmp_path), quantize="nf4", device="cpu", precision="bf16", lora=False)
    assert asked == [torch.bfloat16]

def _gpu_check(*args, env=None):
    e = dict(os.environ, HF_HUB_OFFLINE="1", TQDM_DISABLE="1", **(env or {}))
    return subprocess.run([sys.executable, str(ROOT/"tools"/"gpu_check.py"), *args], capture_output=True, text=True,
                          env=e, cwd=ROOT, timeout=600)

def test_gpu_check_without_cuda_says_so_and_exits_0():
    r = _gpu_check(env=dict(CUDA_VISIBLE_DEVICES=""))
    assert r.returncode == 0, r.stderr[-2000:]
    assert "no CUDA GPU" in r.stdout and "CHECK" not in r.stdout

def test_gpu_check_dry_on_cpu_runs_its_steps():
    r = _gpu_check("--device", "cpu", "--dry", env=dict(CUDA_VISIBLE_DEVICES=""))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    lines = {l.split("  ")[0].removeprefix("CHECK ").strip(): l for l in r.stdout.splitlines() if l.startswith("CHECK")}
    for name in ("tiny random, fp32", "checkpoint and resume", "greedy kv_generate == generate"):
        assert " PASS " in lines[name] + " ", lines.get(name)
    assert "packages beyond torch, transformers, peft, accelerate: numpy" in r.stdout
