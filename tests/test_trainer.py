"Kill-and-resume: a training process killed with SIGKILL and resumed from its last checkpoint ends with the losses of an uninterrupted run."
import json, os, signal, subprocess, sys, time
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = r'''
import sys, time
from sage_nb.config import Config
from sage_nb.models import tiny_model, chat_prompt
from sage_nb.data import make_pair, pairs_dataset
from sage_nb.reference import cache_reference
from sage_nb.trainer import Trainer

run_dir, resume, pause = sys.argv[1], sys.argv[2] == "1", float(sys.argv[3])
model, tok = tiny_model()
rows = []
for i in range(6):
    a, b = i + 2, 2*i + 3
    rows.append(make_pair(chat_prompt(tok, f"What is {a}+{b}?"), f"{a}+{b}={a+b}. #### {a+b}",
                          f"{a}+{b}={a+b+1}. #### {a+b+1}", problem_id=f"p{i}", difficulty=i % 3, pass_rate=0.5))
cfg = Config(steps=8, batch_size=2, lr=1e-2, warmup_steps=2, scheduler="cosine", checkpoint_every=2, snr_every=2, snr_on_refresh=True,
             score_batch_size=4, max_length=96, max_prompt_length=64, selector="uniform", seed=3)

from sage_nb.selectors import make_selector
selector = make_selector("uniform", cfg)

class Pause:
    def on_step(self, m): time.sleep(pause)

pairs = cache_reference(model, tok, pairs_dataset(rows), cfg, progress=False)
Trainer(model, tok, pairs, cfg, selector=selector, run_dir=run_dir, callbacks=[Pause()],
        resume=resume, progress=False).train()
'''

def _rows(path): return [json.loads(l) for l in Path(path).read_text().splitlines() if l.strip()]

def _run(script, run_dir, resume=False, pause=0.0, **kw):
    return subprocess.Popen([sys.executable, str(script), str(run_dir), "1" if resume else "0", str(pause)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)

def _finish(p, timeout=600):
    out, _ = p.communicate(timeout=timeout)
    assert p.returncode == 0, out[-3000:]
    return out

def test_kill_and_resume_matches_uninterrupted(tmp_path):
    script = tmp_path/"train_tiny.py"; script.write_text(SCRIPT)
    full, crashed = tmp_path/"full", tmp_path/"crashed"
    _finish(_run(script, full))

    p = _run(script, crashed, pause=1.0)
    done = crashed/"checkpoints"/"step-4"/"trainer_state.json"
    t0 = time.time()
    while not done.exists():
        assert p.poll() is None, f"training ended before the step-4 checkpoint: {p.communicate()[0][-3000:]}"
        assert time.time() - t0 < 600, "no step-4 checkpoint after 600 s"
        time.sleep(0.05)
    os.kill(p.pid, signal.SIGKILL); p.wait()
    assert not (crashed/"summary.json").exists()            # it really died mid-run
    killed_at = max(r["step"] for r in _rows(crashed/"metrics.jsonl"))
    assert 4 <= killed_at < 8

    _finish(_run(script, crashed, resume=True))
    a, b = _rows(full/"metrics.jsonl"), _rows(crashed/"metrics.jsonl")
    assert [r["step"] for r in b] == list(range(1, 9))       # rolled back to step 4, then steps 5-8 once
    for x, y in zip(a, b):
        for k in ("loss", "dpo_loss", "nll", "rewards/margins", "grad_norm", "lr"):
            assert abs(x[k] - y[k]) <= 1e-5, (x["step"], k, x[k], y[k])
    sa, sb = _rows(full/"snr.jsonl"), _rows(crashed/"snr.jsonl")
    assert [r["step"] for r in sa] == [r["step"] for r in sb] == [1, 3, 4, 5, 7]   # every 2 steps from step 1, and after each refresh
    assert [r["reason"] for r in sb] == ["refresh", "every", "refresh", "every", "refresh"]   # 6 pairs, 2 a step: a refresh every 3
    for x, y in zip(sa, sb):
        for k in ("raw_selected", "raw_uniform"): assert x[k] == pytest.approx(y[k], rel=1e-4, abs=1e-6)
    kinds = [e["kind"] for e in _rows(crashed/"events.jsonl")]
    assert kinds.count("resume") == 1 and "stop" not in kinds
    resume = next(e for e in _rows(crashed/"events.jsonl") if e["kind"] == "resume")
    assert resume["step"] == 4 and resume["dropped"]["metrics"] == killed_at - 4

    s = json.loads((crashed/"summary.json").read_text())
    assert s["steps"] == 8 and s["final"]["loss"] == pytest.approx(a[-1]["loss"], abs=1e-5)
    for d in (full, crashed):
        assert (d/"adapter"/"adapter_config.json").exists() and (d/"adapter"/"adapter_model.safetensors").exists()
        assert sorted(p.name for p in (d/"checkpoints").iterdir()) == ["step-2", "step-4", "step-6", "step-8"]

def test_checkpoint_adapter_loads_with_peft(tmp_path):
    "A checkpoint's adapter folder is plain PEFT format: PeftModel.from_pretrained loads it on a fresh base."
    script = tmp_path/"train_tiny.py"; script.write_text(SCRIPT.replace("steps=8", "steps=2"))
    _finish(_run(script, tmp_path/"r"))
    import torch
    from peft import PeftModel
    from safetensors.torch import load_file
    from sage_nb.models import tiny_model
    base, _ = tiny_model(lora=False)
    m = PeftModel.from_pretrained(base, str(tmp_path/"r"/"checkpoints"/"step-2"/"adapter"))
    saved = load_file(str(tmp_path/"r"/"adapter"/"adapter_model.safetensors"))
    lora_b = [v for k, v in saved.items() if "lora_B" in k]
    assert lora_b and any(v.abs().sum() > 0 for v in lora_b)        # the adapter trained
    x = torch.tensor([[1, 5, 9, 12]])
    with torch.no_grad():
        with m.disable_adapter(): ref = m(input_ids=x).logits
        assert not torch.allclose(m(input_ids=x).logits, ref)

def test_save_merged_from_4bit_base(tmp_path):
    "A 4-bit (NF4) policy is merged into its base reloaded in fp32: the result is base + adapter, not NF4-rounded."
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM
    from sage_nb.models import tiny_model, load_policy
    from sage_nb.checkpoint import save_merged, save_adapter
    base, tok = tiny_model(lora=False)
    base.save_pretrained(tmp_path/"base"); tok.save_pretrained(tmp_path/"base")
    m, tok = load_policy(str(tmp_path/"base"), quantize="nf4", lora_r=8, lora_alpha=16)
    if not getattr(m.get_base_model(), "is_loaded_in_4bit", False): pytest.skip("bitsandbytes cannot run NF4 here")
    with torch.no_grad():
        for n, p in m.named_parameters():
            if "lora_B" in n: p.add_(0.05)
    save_merged(m, tmp_path/"merged", tok); save_adapter(m, tmp_path/"adapter")
    merged = AutoModelForCausalLM.from_pretrained(tmp_path/"merged")
    assert merged.dtype == torch.float32 and not any("lora" in n for n, _ in merged.named_parameters())
    want = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tmp_path/"base", dtype=torch.float32), str(tmp_path/"adapter"))
    x = torch.tensor([[1, 5, 9, 12]])
    with torch.no_grad():
        a, b = merged(input_ids=x).logits, want(input_ids=x).logits
        with want.disable_adapter(): ref = want(input_ids=x).logits
    assert torch.allclose(a, b, atol=1e-4) and not torch.allclose(a, ref, atol=1e-3)


def test_uniform_dpo_lowers_held_out_loss(tmp_path):
    "Pairs never trained on: plain DPO on a learnable preference lowers their DPO loss and raises their reward accuracy."
    import math, torch
    from sage_nb.config import Config
    from sage_nb.models import tiny_model, chat_prompt
    from sage_nb.data import make_pair, pairs_dataset
    from sage_nb.dpo import collate_pairs, pair_forward, pair_loss
    from sage_nb.reference import cache_reference
    from sage_nb.trainer import Trainer
    model, tok = tiny_model()
    def pairs(names):
        return pairs_dataset([make_pair(chat_prompt(tok, f"Is {n} a fine name?"), f"Yes, {n} is fine.", f"No, {n} is bad.",
                                        problem_id=n) for n in names])
    train, held = pairs(["Ada", "Bob", "Cy", "Dee", "Eve", "Fay", "Gus", "Hal"]), pairs(["Ivy", "Jo", "Kai", "Lu"])
    cfg = Config(steps=12, batch_size=4, lr=1e-2, warmup_steps=0, alpha_nll=0.0, snr_every=0, checkpoint_every=0,
                 selector="uniform", max_length=96, max_prompt_length=64)
    held = cache_reference(model, tok, held, cfg, progress=False)
    def held_out():
        with torch.no_grad():
            b = collate_pairs(tok, held.to_list())
            res = pair_loss(pair_forward(model, b), b["ref_logp_chosen"], b["ref_logp_rejected"], cfg)
        return float(res.dpo.mean()), float((res.margins > 0).float().mean())
    loss0, acc0 = held_out()
    train = cache_reference(model, tok, train, cfg, progress=False)
    Trainer(model, tok, train, cfg, run_dir=tmp_path/"run", progress=False).train()
    loss1, acc1 = held_out()
    assert math.isclose(loss0, math.log(2), abs_tol=1e-4)
    assert loss1 < loss0 - 0.01 and acc1 > acc0 and acc1 >= 0.75, (loss0, acc0, loss1, acc1)
