"""Cost of the gradient-SNR probe's per-pair gradients: one pair per pass (what `probe.per_pair_grads` does) vs. one
batched forward with a backward from each pair's row of the loss.

    .venv/bin/python bench/bench_snr_probe.py [--batch-size 8] [--repeats 2] [--tiny]

Uses the default run's pair set (`sage-nb run` samples and caches it; this reuses the cache) and the embedded model with
a non-zero adapter. Both ways are timed in the same process, interleaved, on the same batches, and their gradients are
compared, so the ratio is between two computations of the same (B, P) matrix. A training step on the same batch is
timed too, as the unit the probe's cost is usually counted in. `--tiny` runs the same on the tiny random model and
synthetic pairs, in seconds (a check that the script works).
"""
import argparse, sys, time
from pathlib import Path
import torch
sys.path.insert(0, str(Path(__file__).resolve().parent))
from sage_nb.config import Config
from sage_nb.pairstore import PairStore
from sage_nb.probe import flat_grad, per_pair_grads
from bench_scoring import policy_and_pairs


def batched_rows(forward, params, ids):
    "The per-pair gradients from one batched forward: a backward from each row of the per-pair loss."
    total, rows = forward(ids)[0], []
    for i in range(len(ids)):
        gs = torch.autograd.grad(total[i], params, retain_graph=i < len(ids) - 1, allow_unused=True)
        rows.append(flat_grad(gs, params))
    return torch.stack(rows)


def train_step(model, forward, ids):
    "Forward and backward of the batch's mean loss (the optimizer update itself is left out)."
    model.zero_grad(set_to_none=True)
    forward(ids)[0].mean().backward()
    model.zero_grad(set_to_none=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch-size", type=int, default=Config().batch_size)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--tiny", action="store_true", help="tiny random model and synthetic pairs instead of the default run's")
    a = ap.parse_args(argv)
    cfg = Config(device="cpu")
    model, tok, pairs = policy_and_pairs(cfg, a.tiny)   # a trained-looking adapter, so every gradient is non-trivial
    store = PairStore(pairs, tok, cfg, model=model)
    params = [p for p in model.parameters() if p.requires_grad]
    forward = lambda ids: store.forward(model, ids)
    model.train()
    all_ids = store.ids
    ways = {"one pair per pass": lambda ids: per_pair_grads(forward, ids, params),
            "batched, a backward per row": lambda ids: batched_rows(forward, params, ids),
            "training step (fwd+bwd)": lambda ids: train_step(model, forward, ids)}
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
    return dict(t, worst=worst)


if __name__ == "__main__":
    main()
