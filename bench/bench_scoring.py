"""Cost of a scoring pass per pair: pairs batched in the order given vs. longest first (what `Trainer.score_fn` does).

    .venv/bin/python bench/bench_scoring.py [--pairs 96] [--batch-size 16] [--repeats 2]

Uses the default run's pair set (`sage-nb run` samples and caches it; this reuses the cache) and the embedded model with
a non-zero adapter, so every call takes the forward pass. Both orders are timed in the same process, interleaved.
"""
import argparse, tempfile, time
import torch
from sage_nb.config import Config
from sage_nb.models import load_policy
from sage_nb.cli import get_pairs, with_reference
from sage_nb.trainer import Trainer
from sage_nb import dpo


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=96)
    ap.add_argument("--batch-size", type=int, default=Config().score_batch_size)
    ap.add_argument("--repeats", type=int, default=2)
    a = ap.parse_args()
    cfg = Config(device="cpu", score_batch_size=a.batch_size)
    model, tok = load_policy(cfg.model, quantize=cfg.quantize, lora_r=cfg.lora_r, lora_alpha=cfg.lora_alpha, device="cpu")
    with torch.no_grad():                     # a trained-looking adapter: the reference-cache shortcut does not apply
        for n, p in model.named_parameters():
            if "lora_B" in n: p.normal_(0, 1e-3)
    pairs = with_reference(cfg, model, tok, get_pairs(cfg, model, tok))
    tr = Trainer(model, tok, pairs, cfg, run_dir=tempfile.mkdtemp(), progress=False)
    ids = list(tr.table.pair_id)[:a.pairs]
    order = dpo.length_order(tr._items(ids))
    t = {"given": 0.0, "longest first": 0.0}
    for _ in range(a.repeats):
        for name in t:
            t0 = time.perf_counter()
            with torch.no_grad():
                for i in range(0, len(ids), a.batch_size):
                    chunk = ids[i:i + a.batch_size] if name == "given" else [ids[j] for j in order[i:i + a.batch_size]]
                    tr._forward(chunk)
            t[name] += time.perf_counter() - t0
    n = a.repeats * len(ids)
    for name, s in t.items(): print(f"{name:14s} {s / n:.3f} s/pair")
    print(f"longest first / given = {t['longest first'] / t['given']:.2f}   ({len(ids)} pairs, batch {a.batch_size}, {a.repeats} repeats)")


if __name__ == "__main__":
    main()
