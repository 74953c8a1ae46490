"""Cost of the gradient-SNR probe's per-pair gradients: one pair per pass (what `Trainer.per_pair_grads` does) vs. one
batched forward with a backward from each pair's row of the loss.

    .venv/bin/python bench/bench_snr_probe.py [--batch-size 8] [--repeats 2]

Uses the default run's pair set (`sage-nb run` samples and caches it; this reuses the cache) and the embedded model with
a non-zero adapter. Both ways are timed in the same process, interleaved, on the same batches, and their gradients are
compared, so the ratio is between two computations of the same (B, P) matrix. A training step on the same batch is
timed too, as the unit the probe's cost is usually counted in.
"""
import argparse, tempfile, time
import torch
from sage_nb.config import Config
from sage_nb.models import load_policy
from sage_nb.cli import get_pairs, with_reference
from sage_nb.trainer import Trainer, flat_grad


def batched_rows(tr, ids):
    "The per-pair gradients from one batched forward: a backward from each row of the per-pair loss."
    total, rows = tr._forward(ids)[0], []
    for i in range(len(ids)):
        gs = torch.autograd.grad(total[i], tr.params, retain_graph=i < len(ids) - 1, allow_unused=True)
        rows.append(flat_grad(gs, tr.params))
    return torch.stack(rows)


def train_step(tr, ids):
    "Forward and backward of the batch's mean loss (the optimizer update itself is left out)."
    tr.model.zero_grad(set_to_none=True)
    tr._forward(ids)[0].mean().backward()
    tr.model.zero_grad(set_to_none=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch-size", type=int, default=Config().batch_size)
    ap.add_argument("--repeats", type=int, default=2)
    a = ap.parse_args()
    cfg = Config(device="cpu")
    model, tok = load_policy(cfg.model, quantize=cfg.quantize, lora_r=cfg.lora_r, lora_alpha=cfg.lora_alpha, device="cpu")
    with torch.no_grad():                     # a trained-looking adapter, so every gradient is non-trivial
        for n, p in model.named_parameters():
            if "lora_B" in n: p.normal_(0, 1e-3)
    pairs = with_reference(cfg, model, tok, get_pairs(cfg, model, tok))
    tr = Trainer(model, tok, pairs, cfg, run_dir=tempfile.mkdtemp(), progress=False)
    tr.model.train()
    all_ids = list(tr.table.pair_id)
    ways = {"one pair per pass": tr.per_pair_grads, "batched, a backward per row": lambda ids: batched_rows(tr, ids),
            "training step (fwd+bwd)": lambda ids: train_step(tr, ids)}
    t = dict.fromkeys(ways, 0.0); worst = 0.0
    for r in range(a.repeats):
        ids = all_ids[r*a.batch_size:(r + 1)*a.batch_size]
        out = {}
        for name, fn in ways.items():
            t0 = time.perf_counter(); out[name] = fn(ids); t[name] += time.perf_counter() - t0
        g1, g2 = out["one pair per pass"], out["batched, a backward per row"]
        worst = max(worst, ((g1 - g2).norm(dim=1) / g2.norm(dim=1)).max().item())
    for name, s in t.items(): print(f"{name:28s} {s / a.repeats:6.2f} s per batch of {a.batch_size}")
    print(f"one pair per pass / batched = {t['one pair per pass'] / t['batched, a backward per row']:.2f}   "
          f"probe (2 batches) = {2 * t['one pair per pass'] / t['training step (fwd+bwd)']:.1f} training steps "
          f"(was {2 * t['batched, a backward per row'] / t['training step (fwd+bwd)']:.1f})   "
          f"max relative difference of a pair's gradient {worst:.1e}   ({a.repeats} batches)")


if __name__ == "__main__":
    main()
