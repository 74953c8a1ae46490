"""Benchmark of data-parallel training on the CPU: 2 processes x 1 thread (gloo) vs 1 process x 2 threads.

Run from the repo root:
    .venv/bin/python bench/bench_ddp.py            # embedded SmolLM2-135M (a few minutes on 2 CPU cores)
    .venv/bin/python bench/bench_ddp.py --tiny     # random 2-layer model, few steps: checks that it runs

Both arms run the package's own `Trainer` (uniform selector, no probe, no evaluation) on the same pairs,
model, LoRA config, lengths, global batch and seed, each in fresh processes:
  a. `python bench_ddp.py --child ...` with 2 threads (OMP_NUM_THREADS=2);
  b. `accelerate launch --multi_gpu --num_processes 2 bench_ddp.py --child ...` with 1 thread per process
     (gloo on the CPU: each process takes half of every batch, gradients are all-reduced once per step).
Throughput is pairs/s over the timed steps (from the end of the warm-up steps to the end of the last step, as
the main process sees it). The result line is `RESULT ddp_2x1_vs_1x2 <pairs/s of b / pairs/s of a>`; there is no
target (a CPU has no second device to gain: the number says what splitting the cores into processes costs or
gains). The losses of both arms are printed: they should agree, since the global batch is the same.
The machine may be shared: the load average is printed at the start and the end, with a warning above 0.5, and
the ratio of the fastest timed steps is printed too (outside load slows some steps, rarely all); `--repeats N`
alternates the arms N times.
"""
from __future__ import annotations
import argparse, json, math, os, subprocess, sys, tempfile, time, warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
LOAD_WARN = 0.5


def uptime() -> str:
    "`uptime`'s line (load averages over 1, 5 and 15 minutes)."
    try: return subprocess.run(["uptime"], capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError): return "load average: %.2f, %.2f, %.2f" % os.getloadavg()


def bench_rows(tok, n):
    "n pair rows in the package's schema, with the texts of bench_dpo (~100 tokens per sequence)."
    sys.path.insert(0, str(HERE))
    from bench_dpo import make_pairs
    from sage_nb.data import make_pair
    return [make_pair(r["prompt"], r["chosen"], r["rejected"], problem_id=r["problem_id"], difficulty=0, pass_rate=0.5)
            for r in make_pairs(tok, n)]


class StepClock:
    "Trainer callback: the time at the end of each step and its loss (the main process gets the callbacks)."
    def __init__(self): self.t, self.loss, self.step_s = [], [], []
    def on_step(self, row):
        self.t.append(time.perf_counter()); self.loss.append(row.get("loss")); self.step_s.append(row.get("time/step_s"))


def child(a):
    "One arm, in this process (and its peers under `accelerate launch`): load, cache the reference, train, report."
    import torch
    torch.set_num_threads(a.threads)
    warnings.filterwarnings("ignore")
    from sage_nb.config import Config
    from sage_nb.data import pairs_dataset
    from sage_nb.dpo import collate_pairs
    from sage_nb.models import load_policy, tiny_model
    from sage_nb.reference import cache_reference
    from sage_nb.trainer import Trainer
    cfg = Config(steps=a.warmup + a.steps, batch_size=a.batch_size, grad_accum=1, max_length=a.max_length,
                 max_prompt_length=a.max_prompt_length, selector="uniform", snr_every=0, checkpoint_every=0,
                 eval_every=0, scheduler="constant", warmup_steps=0, quantize="none", device="cpu", seed=0)
    if a.tiny: model, tok = tiny_model(seed=0)
    else: model, tok = load_policy("default", quantize="none", device="cpu", lora_r=cfg.lora_r, lora_alpha=cfg.lora_alpha, seed=0)
    rows = bench_rows(tok, a.pairs)
    pairs = cache_reference(model, tok, pairs_dataset(rows), cfg, progress=False)
    clock = StepClock()
    tr = Trainer(model, tok, pairs, cfg, run_dir=a.run_dir, callbacks=[clock], progress=False)
    tr.train()
    if not tr.acc.is_main_process: return
    b = collate_pairs(tok, rows, cfg.max_length, cfg.max_prompt_length)
    seq = b["attention_mask"].sum(1).float()
    timed_s = clock.t[-1] - clock.t[a.warmup - 1]
    gaps = [t1 - t0 for t0, t1 in zip(clock.t[a.warmup - 1:], clock.t[a.warmup:])]   # each timed step, end to end
    print("CHILD " + json.dumps(dict(processes=tr.acc.num_processes, threads=torch.get_num_threads(), timed_s=timed_s, gaps=gaps,
                                     pairs_per_s=a.batch_size * a.steps / timed_s, loss=clock.loss,
                                     n_params=sum(p.numel() for p in model.parameters()),
                                     n_lora=sum(p.numel() for p in tr.params), lora_r=model.peft_config["default"].r,
                                     step_s=clock.step_s,
                                     seq_mean=seq.mean().item(), seq_max=seq.max().item())), flush=True)


def run_arm(procs: int, threads: int, a, tmp: Path, name: str) -> dict:
    "Start one arm in fresh processes; its CHILD record, plus its wall time."
    me = [str(Path(__file__).resolve()), "--child", "--threads", str(threads), "--run-dir", str(tmp/name),
          "--pairs", str(a.pairs), "--batch-size", str(a.batch_size), "--steps", str(a.steps), "--warmup", str(a.warmup),
          "--max-length", str(a.max_length), "--max-prompt-length", str(a.max_prompt_length)] + (["--tiny"] if a.tiny else [])
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(procs),
              "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "0"]
    cmd = [sys.executable, *me] if procs == 1 else [*launch, *me]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), TQDM_DISABLE="1",
               PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p))
    t0 = time.perf_counter()
    p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=a.timeout)
    line = [l for l in p.stdout.splitlines() if l.startswith("CHILD ")]
    if p.returncode or not line:
        raise RuntimeError(f"arm {name} failed (exit {p.returncode}):\n{p.stdout[-2000:]}\n{p.stderr[-4000:]}")
    return dict(json.loads(line[-1][6:]), wall_s=time.perf_counter() - t0)


def pool(rs: list[dict], a) -> dict:
    "One arm's repeats as one record: pairs/s over all timed steps, every step's time, the first repeat's losses."
    t = sum(r["timed_s"] for r in rs)
    return dict(rs[0], timed_s=t, pairs_per_s=a.batch_size * a.steps * len(rs) / t, wall_s=sum(r["wall_s"] for r in rs),
                gaps=[g for r in rs for g in r["gaps"]], step_s=[x for r in rs for x in r["step_s"]])


def main(argv=None) -> dict | None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tiny", action="store_true", help="random 2-layer model and few steps instead of the embedded SmolLM2-135M")
    ap.add_argument("--pairs", type=int, default=None, help="pairs in the pool (default 32; --tiny 8)")
    ap.add_argument("--batch-size", type=int, default=None, help="global pairs per step (default 8; --tiny 4)")
    ap.add_argument("--steps", type=int, default=None, help="timed steps (default 6; --tiny 2)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    ap.add_argument("--max-length", type=int, default=320)
    ap.add_argument("--max-prompt-length", type=int, default=192)
    ap.add_argument("--repeats", type=int, default=1, help="runs of each arm, alternating a, b, a, b, ...")
    ap.add_argument("--timeout", type=int, default=1800, help="seconds one arm may take")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    ap.add_argument("--run-dir", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    for k, full, tiny in (("pairs", 32, 8), ("batch_size", 8, 4), ("steps", 6, 2)):
        if getattr(a, k) is None: setattr(a, k, tiny if a.tiny else full)
    if a.warmup < 1: ap.error("--warmup must be at least 1 (the first step builds the buffers DDP and AdamW need)")
    if a.child: return child(a)

    t_start, up0 = time.perf_counter(), uptime()
    load0 = os.getloadavg()[0]
    name = "tiny random Llama" if a.tiny else "SmolLM2-135M-Instruct (embedded, sage_nb.models.default_model_path())"
    print(f"load at start: {up0}")
    if load0 > LOAD_WARN:
        print(f"WARNING: 1-minute load average {load0:.2f} > {LOAD_WARN} before the start: other work shares the cores, "
              "the ratio is suspect")
    runs = {"a": [], "b": []}
    with tempfile.TemporaryDirectory() as d:       # arms alternate, so a burst of outside load hits both alike
        for i in range(a.repeats):
            runs["a"].append(run_arm(1, 2, a, Path(d), f"a-1x2-{i}"))
            runs["b"].append(run_arm(2, 1, a, Path(d), f"b-2x1-{i}"))
    up1 = uptime()
    ra, rb = (pool(runs[k], a) for k in "ab")
    ratio, ratio_fast = rb["pairs_per_s"] / ra["pairs_per_s"], min(ra["gaps"]) / min(rb["gaps"])
    print(f"model: {name}, fp32 + LoRA r={ra['lora_r']} (all linear; {ra['n_lora']:,} trained of {ra['n_params']:,} "
          f"parameters), device cpu, Trainer with the uniform selector")
    print(f"batch: {a.batch_size} pairs per step (global; 2x1: {a.batch_size // 2} per process), pool {a.pairs} pairs, "
          f"sequences mean {ra['seq_mean']:.0f} tokens (max {ra['seq_max']:.0f}; max_length {a.max_length}, "
          f"max_prompt_length {a.max_prompt_length}); {a.warmup} warm-up + {a.steps} timed steps"
          f"{f', {a.repeats} runs of each arm, alternating' if a.repeats > 1 else ''}")
    for label, r in (("a. 1 process  x 2 threads", ra), ("b. 2 processes x 1 thread ", rb)):
        print(f"{label}: {r['pairs_per_s']:6.2f} pairs/s  ({r['timed_s'] / (a.steps * a.repeats):.2f} s/step; arm wall {r['wall_s']:.0f} s "
              f"with loading; Trainer's step times {[round(x, 2) for x in r['step_s']]})\n    losses {[round(x, 4) for x in r['loss']]}")
    same = all(abs(x - y) <= 1e-3 for x, y in zip(ra["loss"], rb["loss"]))
    print(f"losses of a and b {'agree' if same else 'DIFFER'} (same global batch; tolerance 1e-3)")
    print(f"fastest timed step: a {min(ra['gaps']):.2f} s, b {min(rb['gaps']):.2f} s; ratio of pairs/s by fastest steps "
          f"{ratio_fast:.3f} (less sensitive to outside load than the mean)")
    print(f"load at end: {up1}")
    print(f"total bench time {time.perf_counter() - t_start:.0f} s")
    print(f"RESULT ddp_2x1_vs_1x2 {ratio:.3f}")
    return dict(ratio=ratio, ratio_fastest=ratio_fast, a=ra, b=rb, same_loss=same, load_start=load0, load_end=os.getloadavg()[0])


if __name__ == "__main__":
    main()
