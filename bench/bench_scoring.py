"""Cost of a scoring pass per pair: pairs batched in the order given vs. longest first (what `PairStore.score` does).

    .venv/bin/python bench/bench_scoring.py [--pairs 96] [--batch-size 16] [--repeats 2] [--tiny]

Uses the default run's pair set (`sage-nb run` samples and caches it; this reuses the cache) and the embedded model with
a non-zero adapter, so every call takes the forward pass. Both orders are timed in the same process, interleaved.
`--tiny` runs the same on the tiny random model and synthetic pairs, in seconds (a check that the script works).
"""
import argparse, sys, time
from pathlib import Path
import torch
sys.path.insert(0, str(Path(__file__).resolve().parent))
from sage_nb.config import Config
from sage_nb.checkpoint import disable_dropout
from sage_nb.pairstore import PairStore
from sage_nb import dpo


def policy_and_pairs(cfg, tiny: bool, n_tiny: int = 24):
    "The policy with a non-zero adapter and its pairs with reference log-probs: the default run's, or tiny ones."
    from sage_nb.models import load_policy, tiny_model
    from sage_nb.reference import cache_reference, with_reference
    if tiny: model, tok = tiny_model()
    else: model, tok = load_policy(cfg.model, quantize=cfg.quantize, lora_r=cfg.lora_r, lora_alpha=cfg.lora_alpha, device="cpu")
    if tiny:
        from bench_selection import arithmetic_pairs
        pairs = cache_reference(model, tok, arithmetic_pairs(tok, n_tiny), cfg, progress=False)
    else:
        from sage_nb.pipeline import get_pairs
        pairs = with_reference(cfg, model, tok, get_pairs(cfg, model, tok))
    with torch.no_grad():                     # a trained-looking adapter: the reference-cache shortcut does not apply
        for n, p in model.named_parameters():
            if "lora_B" in n: p.normal_(0, 1e-3)
    return disable_dropout(model), tok, pairs


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=96)
    ap.add_argument("--batch-size", type=int, default=Config().score_batch_size)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--tiny", action="store_true", help="tiny random model and synthetic pairs instead of the default run's")
    a = ap.parse_args(argv)
    cfg = Config(device="cpu", score_batch_size=a.batch_size)
    model, tok, pairs = policy_and_pairs(cfg, a.tiny)
    store = PairStore(pairs, tok, cfg, model=model)
    ids = store.ids[:a.pairs]
    order = dpo.length_order(store.items(ids))
    t = {"given": 0.0, "longest first": 0.0}
    for _ in range(a.repeats):
        for name in t:
            t0 = time.perf_counter()
            with torch.no_grad():
                for i in range(0, len(ids), a.batch_size):
                    chunk = ids[i:i + a.batch_size] if name == "given" else [ids[j] for j in order[i:i + a.batch_size]]
                    store.forward(model, chunk)
            t[name] += time.perf_counter() - t0
    n = a.repeats * len(ids)
    for name, s in t.items(): print(f"{name:14s} {s / n:.3f} s/pair")
    print(f"longest first / given = {t['longest first'] / t['given']:.2f}   ({len(ids)} pairs, batch {a.batch_size}, {a.repeats} repeats)")
    return t


if __name__ == "__main__":
    main()
