"""The reference pass of a run: each distinct (prompt, response) once against pair by pair, same pairs, same weights, one run.

    .venv/bin/python bench/bench_reference.py          # the default run's pairs and model (sampled first if not cached)
    .venv/bin/python bench/bench_reference.py --tiny   # tiny random model, synthetic pairs (seconds; checks the script)

A run computes every pair's reference log-probs, mean log-probs and gradient energy once, with the adapter disabled
(`sage_nb.reference.cache_reference`). On-policy pairs share sequences: a problem's k samples share its prompt and a
response sits in up to `max_pairs_per_problem` pairs. `cache_reference` runs each distinct sequence once, each prompt once
for its responses (`sage_nb.pairstore.sequence_stats`, the scoring pass's path). This bench times it against the pass it
replaced, pair by pair (`dpo.pair_forward` on batches of `score_batch_size` pairs, longest first), on the same pairs, and
prints both times, the distinct sequences and prompts, and the largest difference between the two passes' columns.
"""
from __future__ import annotations
import argparse, sys, time
from pathlib import Path
import numpy as np, torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from sage_nb.config import Config


def by_pair(model, tok, items, bs: int) -> dict:
    "The reference columns computed pair by pair (the earlier pass), in `items`' order."
    from sage_nb import dpo
    from sage_nb.models import reference_mode
    from sage_nb.reference import REF_COLUMNS
    order, cols = dpo.length_order(items), {c: np.zeros(len(items)) for c in REF_COLUMNS}
    model.eval()
    with reference_mode(model), torch.no_grad():
        for s in range(0, len(order), bs):
            idx = order[s:s + bs]
            out = dpo.pair_forward(model, dpo.collate_pairs(tok, [items[j] for j in idx]))
            for c in REF_COLUMNS: cols[c][idx] = out[c.removeprefix("ref_")].double().cpu().numpy()
    return cols


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny", action="store_true", help="tiny random model and synthetic pairs")
    a = ap.parse_args(argv)
    from sage_nb import dpo
    from sage_nb.pairstore import pair_sequences
    from sage_nb.reference import cache_reference, REF_COLUMNS
    cfg = Config(device="cpu")
    if a.tiny:
        from sage_nb.models import tiny_model
        from bench_selection import arithmetic_pairs
        model, tok = tiny_model()
        pairs = arithmetic_pairs(tok, 24)
    else:
        from sage_nb.models import load_policy
        from sage_nb.pipeline import get_pairs
        model, tok = load_policy(cfg.model, quantize=cfg.quantize, lora_r=cfg.lora_r, lora_alpha=cfg.lora_alpha, device="cpu")
        pairs = get_pairs(cfg, model, tok)                   # the default run's pairs (cached by `sage-nb run`)
    items = [dpo.tokenize_pair(tok, r, cfg.max_length, cfg.max_prompt_length) for r in pairs.to_list()]
    seqs = [s for it in items for s in pair_sequences(it)]
    print(f"model: {'tiny' if a.tiny else cfg.model}   device: cpu, {torch.get_num_threads()} threads   pairs: {len(items)}, "
          f"{len(seqs)} sequences of pairs, {len(set(seqs))} distinct, {len({p for p, _ in seqs})} prompts", flush=True)
    t0 = time.perf_counter(); old = by_pair(model, tok, items, cfg.score_batch_size); t_pair = time.perf_counter() - t0
    t0 = time.perf_counter(); new = cache_reference(model, tok, pairs, cfg, progress=False); t_seq = time.perf_counter() - t0
    print(f"  pair by pair (the earlier pass)        {t_pair:6.1f} s")
    print(f"  each distinct sequence once (the run)  {t_seq:6.1f} s   {t_seq / t_pair:.2f} of the time")
    diff = {c: float(np.abs(np.asarray(new[c]) - old[c]).max()) for c in REF_COLUMNS}
    rel = float((np.abs(np.asarray(new["ref_energy"]) - old["ref_energy"]) / np.abs(old["ref_energy"]).clip(1e-12)).max())
    print("  largest difference: " + ", ".join(f"{c} {v:.1e}" for c, v in diff.items()) + f" ({rel:.1e} relative)")
    return dict(by_pair_s=t_pair, by_sequence_s=t_seq, ratio=t_seq / t_pair, max_abs=diff, max_rel_energy=rel,
                pairs=len(items), sequences=len(set(seqs)))


if __name__ == "__main__":
    main()
