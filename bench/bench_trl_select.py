"""Benchmark of sage_nb.trl_select: what SAGE's selection costs inside TRL's DPOTrainer.

Run from the repo root:
    .venv/bin/python bench/bench_trl_select.py            # embedded SmolLM2-135M with LoRA (several minutes on 2 CPU cores)
    .venv/bin/python bench/bench_trl_select.py --tiny     # random 2-layer model, a few steps: checks the bench still runs

Measured in one run, on the same model, pairs, DPOConfig and batch size:
  1. step time of plain `trl.DPOTrainer` and of `SageDPOTrainer` with the uniform selector (no scoring: what the
     integration itself costs per step), each the median of the intervals between consecutive optimizer steps
     (selection, collation, forward, backward and optimizer step included); the arms alternate, and the fastest
     repetition of each is kept (background load on a shared machine hits it least). Ratio uniform / plain
     (goal <= 1.05);
  2. with the `sage` selector, the selection overhead (seconds spent scoring / seconds spent training) of
     `SageDPOTrainer` next to sage_nb's own `Trainer` on the same pairs and selector settings.

The last line reads `GOAL trl_uniform_step_vs_dpotrainer <ratio> 1.05 PASS|FAIL`.
"""
from __future__ import annotations
import argparse, json, os, random, statistics, sys, tempfile, time, warnings
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
warnings.filterwarnings("ignore")
import torch

TARGET = 1.05


def make_pairs(tok, n, seed=0):
    "n arithmetic pairs (a worked sum and a wrong one), ~100 tokens per sequence with the chat template."
    from sage_nb.models import chat_prompt
    rng, rows = random.Random(seed), []
    for i in range(n):
        a, b = rng.randint(10, 99), rng.randint(10, 99); s = a + b; w = s + rng.choice([-10, 10, 1, -1])
        head = f"The ones digits give {a % 10 + b % 10}, the tens digits {a // 10 + b // 10} tens. "
        rows.append(dict(pair_id=f"b{i}", problem_id=f"q{i}", difficulty=i % 3,
                         prompt=chat_prompt(tok, f"What is {a} + {b}? End with '#### <answer>'."),
                         chosen=head + f"So {a} + {b} = {s}.\n#### {s}", rejected=head + f"So the sum is {w}.\n#### {w}"))
    return rows


class StepClock:
    "A TrainerCallback noting the time of every optimizer step's end."
    def __init__(self): self.t = []
    def __getattr__(self, name):                 # every other callback event: nothing to do
        if name.startswith("on_"): return lambda *a, **k: None
        raise AttributeError(name)
    def on_step_end(self, args, state, control, **kw): self.t.append(time.perf_counter())
    def median_step(self) -> float:
        d = [b - a for a, b in zip(self.t, self.t[1:])]
        return statistics.median(d[1:] if len(d) > 2 else d)


def make_model(src, seed=0):
    "(policy with a fresh LoRA adapter, tokenizer), the same weights on every call."
    from transformers import AutoModelForCausalLM
    from sage_nb.models import add_lora, load_tokenizer
    base = AutoModelForCausalLM.from_pretrained(src, dtype=torch.float32)
    return add_lora(base, r=8, alpha=16, seed=seed), load_tokenizer(src)


def dpo_args(out, steps, pd, max_length):
    from trl import DPOConfig
    return DPOConfig(output_dir=str(out), max_steps=steps, per_device_train_batch_size=pd, learning_rate=5e-4,
                     precompute_ref_log_probs=True, logging_steps=10**6, save_strategy="no", report_to=[], use_cpu=True,
                     max_length=max_length, disable_tqdm=True, seed=0, gradient_checkpointing=False,
                     lr_scheduler_type="constant", dataloader_drop_last=True)


def run_trl(kind, src, rows, steps, pd, max_length, tmp, sage_cfg=None) -> dict:
    "One run of plain DPOTrainer (`kind='plain'`) or SageDPOTrainer (`kind` = a selector name): median step seconds, score/train."
    import datasets, trl
    from sage_nb.trl_select import SageDPOTrainer
    model, tok = make_model(src)
    clock, ds = StepClock(), datasets.Dataset.from_list(rows)
    args = dpo_args(Path(tmp)/f"{kind}-{time.monotonic_ns()}", steps, pd, max_length)
    if kind == "plain":
        tr = trl.DPOTrainer(model=model, args=args, train_dataset=ds, processing_class=tok, callbacks=[clock])
    else:
        tr = SageDPOTrainer(model=model, args=args, train_dataset=ds, processing_class=tok, callbacks=[clock],
                            sage_config=sage_cfg.replace(selector=kind, batch_size=pd))
    from transformers import PrinterCallback
    tr.remove_callback(PrinterCallback)                             # TRL's log lines would bury the bench's own
    tr.train()
    res = dict(step_s=clock.median_step())
    if kind != "plain": res.update(tr._sage_timers)
    return res


def run_native(src, rows, steps, cfg, tmp) -> dict:
    "sage_nb's own Trainer with the same selector settings: its score/train seconds (in this process: see `native_child`)."
    from sage_nb.reference import cache_reference
    from sage_nb.trainer import Trainer
    model, tok = make_model(src)
    cached = cache_reference(model, tok, rows, cfg, progress=False)
    tr = Trainer(model, tok, cached, cfg.replace(steps=steps, snr_every=0, checkpoint_every=0, warmup_steps=0, scheduler="constant"),
                 run_dir=Path(tmp)/f"native-{time.monotonic_ns()}", progress=False)
    s = tr.train()
    return dict(train_s=s["time"]["train_s"], score_s=s["time"]["score_s"])


def native_child(src, n_pairs, steps, cfg, tmp) -> dict:
    "`run_native` in a child process: accelerate allows one accelerator setting per process, and TRL's is already made."
    import subprocess
    code = (f"import sys, json; sys.path.insert(0, {str(Path(__file__).parent)!r}); import bench_trl_select as b; "
            f"from sage_nb.config import Config; from sage_nb.models import load_tokenizer; import torch; torch.set_num_threads({torch.get_num_threads()}); "
            f"rows = b.make_pairs(load_tokenizer({src!r}), {n_pairs}); "
            f"print('NATIVE', json.dumps(b.run_native({src!r}, rows, {steps}, Config.from_dict(json.loads({json.dumps(cfg.to_dict())!r})), {str(tmp)!r})))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=dict(os.environ, PYTHONWARNINGS="ignore"))
    line = [l for l in p.stdout.splitlines() if l.startswith("NATIVE ")]
    if p.returncode != 0 or not line: raise RuntimeError(f"the native trainer's run failed:\n{(p.stdout + p.stderr)[-3000:]}")
    return json.loads(line[-1][7:])


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny", action="store_true", help="random 2-layer model, few steps (checks the bench runs)")
    ap.add_argument("--steps", type=int, default=None, help="optimizer steps per run (default 12, tiny 4)")
    ap.add_argument("--reps", type=int, default=None, help="alternating repetitions of the two step-time arms (default 2, tiny 1)")
    a = ap.parse_args(argv)
    torch.set_num_threads(1 if a.tiny else max(1, min(2, os.cpu_count() or 1)))
    from sage_nb.config import Config
    from sage_nb.models import tiny_model, resolve_model, load_tokenizer
    tmp = tempfile.TemporaryDirectory()
    if a.tiny:
        m, tok = tiny_model(lora=False); src = str(Path(tmp.name)/"tiny"); m.save_pretrained(src); tok.save_pretrained(src)
        steps, reps, pd, n_pairs = a.steps or 4, a.reps or 1, 2, 16
    else:
        src, steps, reps, pd, n_pairs = str(resolve_model("default")), a.steps or 12, a.reps or 2, 8, 320
    tok = load_tokenizer(src)
    rows = make_pairs(tok, n_pairs)
    cfg = Config(batch_size=pd, refresh_every=2 if a.tiny else 5, score_batch_size=16, seed=0, max_length=192, max_prompt_length=128)
    name = "tiny random Llama" if a.tiny else "SmolLM2-135M-Instruct (embedded)"
    print(f"{name}, LoRA r=8, {n_pairs} pairs, batch {pd}, {steps} steps per run, {reps} repetition(s), {torch.get_num_threads()} threads")

    plain, uni = [], []
    for _ in range(reps):                                           # alternate, so slow spells hit both arms
        plain.append(run_trl("plain", src, rows, steps, pd, cfg.max_length, tmp.name))
        uni.append(run_trl("uniform", src, rows, steps, pd, cfg.max_length, tmp.name, cfg))
    p, u = min(r["step_s"] for r in plain), min(r["step_s"] for r in uni)
    ratio = u / p
    print(f"plain DPOTrainer            {p*1000:8.1f} ms/step")
    print(f"SageDPOTrainer (uniform)    {u*1000:8.1f} ms/step   ratio {ratio:.3f}")

    sage = run_trl("sage", src, rows, steps, pd, cfg.max_length, tmp.name, cfg)
    native = native_child(src, n_pairs, steps, cfg.replace(selector="sage"), tmp.name)
    ov_trl, ov_nat = sage["score_s"] / sage["train_s"], native["score_s"] / native["train_s"]
    print(f"SageDPOTrainer (sage)       {sage['step_s']*1000:8.1f} ms/step   scoring {sage['score_s']:.2f} s / training "
          f"{sage['train_s']:.2f} s = {ov_trl:.1%}")
    print(f"sage_nb Trainer (sage)      scoring {native['score_s']:.2f} s / training {native['train_s']:.2f} s = {ov_nat:.1%}"
          f"   (selection overhead in TRL / native: {ov_trl / max(ov_nat, 1e-9):.2f})")
    print(f"GOAL trl_uniform_step_vs_dpotrainer {ratio:.3f} {TARGET} {'PASS' if ratio <= TARGET else 'FAIL'}")
    tmp.cleanup()
    return dict(ratio=ratio, plain_s=p, uniform_s=u, overhead_trl=ov_trl, overhead_native=ov_nat)


if __name__ == "__main__":
    main()
