"""Benchmark of sage_nb.dpo: our DPO step vs TRL's DPOTrainer step, NF4 vs fp32 memory and speed.

Run from the repo root:
    .venv/bin/python bench/bench_dpo.py            # embedded SmolLM2-135M (about 4-5 minutes on 2 CPU cores)
    .venv/bin/python bench/bench_dpo.py --tiny     # random 2-layer model, seconds

Measured in one run, on the same model, pairs and batch:
  1. step time of a uniform-DPO step with sage_nb.dpo (policy forward, cached reference, sigmoid loss,
     backward, AdamW on the LoRA parameters) and of TRL's DPOTrainer.training_step + optimizer step with
     precompute_ref_log_probs=True (reference cached too), same LoRA config; ratio ours/TRL (goal <= 0.35,
     on the fastest of the interleaved steps, which background load on a shared machine hits least);
  2. peak RSS (resource.getrusage ru_maxrss) of the 4-bit NF4 path and of the fp32 LoRA path, each in its own
     subprocess that loads the model, caches the reference and trains a few steps;
  3. forward+backward time per step of NF4 vs fp32 on this device; pairs/s everywhere.

The last line reads `GOAL dpo_step_vs_trl <ratio> 0.35 PASS|FAIL` (not printed with --skip-trl).
"""
from __future__ import annotations
import argparse, json, os, resource, subprocess, sys, tempfile, time, warnings
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")
warnings.filterwarnings("ignore")
import torch

TARGET = 0.35

from sage_nb.config import Config
from sage_nb.models import load_policy, tiny_model, chat_prompt
from sage_nb.dpo import collate_pairs, pair_forward, pair_loss
from sage_nb.reference import cache_reference


def make_pairs(tok, n, seed=0):
    "n arithmetic pairs of ~100 tokens per sequence (prompt ~45 with the chat template, response ~50)."
    import random
    rng = random.Random(seed); rows = []
    for i in range(n):
        a, b = rng.randint(10, 99), rng.randint(10, 99); s = a + b; w = s + rng.choice([-10, 10, 1, -1])
        head = (f"We add {a} and {b} column by column. The ones digits are {a % 10} and {b % 10}, which give "
                f"{a % 10 + b % 10}. The tens digits are {a // 10} and {b // 10}, which give {a // 10 + b // 10} tens. ")
        rows.append(dict(pair_id=f"bench{i}", problem_id=f"q{i}",
                         prompt=chat_prompt(tok, f"What is {a} + {b}? Show your steps and end with '#### <answer>'."),
                         chosen=head + f"Putting it together, {a} + {b} = {s}.\n#### {s}",
                         rejected=head + f"So the sum must be {w}, since we carry once.\n#### {w}"))
    return rows


def lora_params(model): return [p for p in model.parameters() if p.requires_grad]


def our_stepper(model, tok, pairs, cfg):
    "A function running one uniform-DPO step with sage_nb.dpo; returns (seconds, fwd+bwd seconds, loss)."
    cached = cache_reference(model, tok, pairs, cfg, batch_size=len(pairs), progress=False)
    opt = torch.optim.AdamW(lora_params(model), lr=cfg.lr)
    model.train()
    def step():
        t0 = time.perf_counter()
        b = collate_pairs(tok, cached, cfg.max_length, cfg.max_prompt_length)
        out = pair_forward(model, b)
        res = pair_loss(out, b["ref_logp_chosen"], b["ref_logp_rejected"], cfg)
        res.loss.backward()
        t1 = time.perf_counter()
        opt.step(); opt.zero_grad(set_to_none=True)
        return time.perf_counter() - t0, t1 - t0, float(res.loss)
    return step


def trl_stepper(model_src, tok, pairs, cfg, n_threads, workdir):
    "The same step with TRL's DPOTrainer (base model + peft_config, so its reference is the adapter-free base, as ours)."
    import datasets
    from peft import LoraConfig
    from trl import DPOConfig, DPOTrainer
    base, _ = load_policy(model_src, quantize="none", lora=False, device="cpu")
    ds = datasets.Dataset.from_list([{k: p[k] for k in ("prompt", "chosen", "rejected")} for p in pairs])
    args = DPOConfig(output_dir=workdir, per_device_train_batch_size=len(pairs), max_length=cfg.max_length, beta=cfg.beta,
                     loss_type=["sigmoid"], precompute_ref_log_probs=True, learning_rate=cfg.lr, report_to=[],
                     use_cpu=True, save_strategy="no", logging_steps=1, dataloader_num_workers=0, bf16=False,
                     fp16=False, gradient_checkpointing=False, seed=cfg.seed)
    peft_cfg = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=0.0, target_modules="all-linear",
                          task_type="CAUSAL_LM")
    trainer = DPOTrainer(model=base, args=args, train_dataset=ds, processing_class=tok, peft_config=peft_cfg)
    torch.set_num_threads(n_threads)  # keep both sides on the same thread count
    trainer.create_optimizer_and_scheduler(num_training_steps=100)
    trainer.current_gradient_accumulation_steps = 1  # set by Trainer.train's loop, which we bypass
    inputs = next(iter(trainer.get_train_dataloader()))
    trainer.model.train()
    def step():
        t0 = time.perf_counter()
        loss = trainer.training_step(trainer.model, inputs)
        trainer.optimizer.step(); trainer.optimizer.zero_grad(set_to_none=True)
        return time.perf_counter() - t0, None, float(loss)
    return step, int(inputs["attention_mask"].sum())


def timed(steps: dict, n_warm: int, n_steps: int):
    "Run the steppers round-robin (warm-ups first), so background load on a shared machine hits all alike."
    rec = {k: [] for k in steps}
    for i in range(n_warm + n_steps):
        for k, f in steps.items():
            r = f()
            if i >= n_warm or i == 0: rec[k].append((i >= n_warm, *r))
    out = {}
    for k, rs in rec.items():
        t = [r for r in rs if r[0]]
        out[k] = dict(step_s=sum(r[1] for r in t) / len(t), fwd_bwd_s=(sum(r[2] for r in t) / len(t)) if t[0][2] is not None else None,
                      first_loss=rs[0][3], all_s=[round(r[1], 2) for r in t])
    return out


def vmhwm_mb():
    "Peak RSS of this process's own address space (reset at exec), from /proc; NaN where unavailable."
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"): return int(line.split()[1]) / 1024
    except OSError: pass
    return float("nan")


def child(args):
    "One quantization path in a fresh process: load, cache the reference, train; report peak RSS and step times."
    cfg = Config(max_length=args.max_length, max_prompt_length=args.max_prompt_length, alpha_nll=0.0)
    model, tok = load_policy(args.model_src, quantize=args.child, device="cpu")
    q = bool(getattr(model.get_base_model(), "is_loaded_in_4bit", False))
    pairs = make_pairs(tok, args.pairs)
    r = timed({"x": our_stepper(model, tok, pairs, cfg)}, 1, args.child_steps)["x"]
    print("CHILD " + json.dumps(dict(path=args.child, is_4bit=q, maxrss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, vmhwm_mb=vmhwm_mb(),
                                     step_s=r["step_s"], fwd_bwd_s=r["fwd_bwd_s"])), flush=True)


def run_child(path, args, model_src):
    cmd = [sys.executable, __file__, "--child", path, "--model-src", model_src, "--pairs", str(args.pairs),
           "--child-steps", str(args.child_steps), "--max-length", str(args.max_length),
           "--max-prompt-length", str(args.max_prompt_length)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    line = [l for l in r.stdout.splitlines() if l.startswith("CHILD ")]
    if r.returncode or not line: raise RuntimeError(f"child {path} failed:\n{r.stdout[-2000:]}\n{r.stderr[-4000:]}")
    return json.loads(line[-1][6:])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tiny", action="store_true", help="random 2-layer model instead of the embedded SmolLM2-135M")
    ap.add_argument("--pairs", type=int, default=8)
    ap.add_argument("--steps", type=int, default=5, help="timed steps (after --warmup)")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--child-steps", type=int, default=2)
    ap.add_argument("--max-length", type=int, default=320)
    ap.add_argument("--max-prompt-length", type=int, default=192)
    ap.add_argument("--skip-trl", action="store_true"); ap.add_argument("--skip-quant", action="store_true")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--model-src", default="default", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child: return child(args)

    t_start = time.perf_counter()
    n_threads = torch.get_num_threads()
    tmp = None
    if args.tiny:   # save the tiny model so every path (ours, TRL, NF4 child) loads the same weights by path
        tmp = tempfile.TemporaryDirectory(); m, tok = tiny_model(lora=False)
        m.save_pretrained(tmp.name); tok.save_pretrained(tmp.name); model_src = tmp.name
    else: model_src = "default"
    quant = None
    if not args.skip_quant:  # first, while this process is small: ru_maxrss survives fork+exec, so a big parent would mask the children
        q = {p: run_child(p, args, model_src) for p in ("nf4", "none")}
        nf4, fp = q["nf4"], q["none"]
        quant = (nf4, fp)
    cfg = Config(max_length=args.max_length, max_prompt_length=args.max_prompt_length, alpha_nll=0.0)
    model, tok = load_policy(model_src, quantize="none", device="cpu", lora_r=cfg.lora_r, lora_alpha=cfg.lora_alpha)
    pairs = make_pairs(tok, args.pairs)
    b = collate_pairs(tok, pairs, cfg.max_length, cfg.max_prompt_length)
    n_tok = int(b["attention_mask"].sum()); seq = b["attention_mask"].sum(1).float()
    resp = (b["labels"] != -100).sum(1).float()
    name = "tiny random Llama" if args.tiny else "SmolLM2-135M-Instruct (embedded)"
    print(f"model: {name}, fp32 + LoRA r={cfg.lora_r} (all linear), device cpu, {n_threads} threads, "
          f"load average {os.getloadavg()[0]:.1f} (timings are only comparable on an otherwise idle machine)")
    print(f"batch: {args.pairs} pairs = {2 * args.pairs} sequences, mean length {seq.mean():.0f} tokens "
          f"(max {seq.max():.0f}, response mean {resp.mean():.0f}), {n_tok} tokens; {args.warmup} warm-up + {args.steps} timed steps")

    steppers = {"ours": our_stepper(model, tok, pairs, cfg)}
    work = tempfile.TemporaryDirectory()
    if not args.skip_trl:
        steppers["trl"], trl_tok = trl_stepper(model_src, tok, pairs, cfg, n_threads, work.name)
        torch.set_num_threads(n_threads)
    r = timed(steppers, args.warmup, args.steps)
    o = r["ours"]
    print(f"sage_nb.dpo step : {o['step_s']:6.2f} s/step  ({args.pairs / o['step_s']:.2f} pairs/s; forward+backward "
          f"{o['fwd_bwd_s']:.2f} s)  first loss {o['first_loss']:.4f}  steps {o['all_s']}")
    res = dict(ours_step_s=o["step_s"], ours_pairs_per_s=args.pairs / o["step_s"], n_pairs=args.pairs, n_tokens=n_tok)
    if "trl" in r:
        t = r["trl"]
        print(f"TRL DPOTrainer   : {t['step_s']:6.2f} s/step  ({args.pairs / t['step_s']:.2f} pairs/s)  first loss "
              f"{t['first_loss']:.4f}  steps {t['all_s']}")
        print(f"ratio ours / TRL step time: {o['step_s'] / t['step_s']:.2f} (means), {min(o['all_s']) / min(t['all_s']):.2f} "
              f"(fastest steps, robust to load from other processes)  (goal <= {TARGET}; steps interleaved)")
        res.update(trl_step_s=t["step_s"], trl_pairs_per_s=args.pairs / t["step_s"], ratio=o["step_s"] / t["step_s"],
                   ratio_min=min(o["all_s"]) / min(t["all_s"]))
    del steppers, model
    work.cleanup()
    if quant:
        nf4, fp = quant
        if not nf4["is_4bit"]: print("note: the NF4 child fell back to full precision (bitsandbytes 4-bit unavailable here)")
        print(f"peak RSS  NF4 path: {nf4['maxrss_mb']:7.0f} MB   fp32 path: {fp['maxrss_mb']:7.0f} MB   ratio NF4/fp32 "
              f"{nf4['maxrss_mb'] / fp['maxrss_mb']:.2f}   (ru_maxrss; VmHWM {nf4['vmhwm_mb']:.0f} / {fp['vmhwm_mb']:.0f} MB)")
        print(f"fwd+bwd   NF4     : {nf4['fwd_bwd_s']:6.2f} s/step   fp32: {fp['fwd_bwd_s']:6.2f} s/step   ratio NF4/fp32 "
              f"{nf4['fwd_bwd_s'] / fp['fwd_bwd_s']:.2f}  (pairs/s {args.pairs / nf4['step_s']:.2f} vs {args.pairs / fp['step_s']:.2f})")
        res.update(nf4=nf4, fp32=fp)
    print(f"total bench time {time.perf_counter() - t_start:.0f} s")
    print("RESULT " + json.dumps(res))
    if "ratio_min" in res:
        print(f"GOAL dpo_step_vs_trl {res['ratio_min']:.2f} {TARGET} {'PASS' if res['ratio_min'] <= TARGET else 'FAIL'}")
    if tmp: tmp.cleanup()
    return res


if __name__ == "__main__":
    main()
