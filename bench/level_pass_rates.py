"""How often the model is right on each embedded level: the measurement behind the choice of levels.

    .venv/bin/python bench/level_pass_rates.py [--levels 0 4 5 6 1] [--n 60] [--k 0] [--model default] [--tiny]

Greedy accuracy on `--n` held-out problems of each level (the answer checker of every run). With `--k K`,
also K solutions sampled at `--temperature` on `--n` training problems of each level, built into preference
pairs exactly as a run builds them: the sampled pass rate, pairs per problem, and the share of pairs that are
on-policy (the rest pair a gold solution against the model's wrong ones). A level is useful for a selector
comparison when its pass rate lies between ~0.2 and ~0.8 and most of its pairs are on-policy.
`--tiny` runs a random tiny model (checks the script; its numbers mean nothing).
"""
import argparse, time
import torch
from sage_nb.data import LEVELS, make_problems
from sage_nb.evaluate import evaluate
from sage_nb.models import load_policy, tiny_model
from sage_nb.rollout import build_pairs


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--levels", type=int, nargs="+", default=[0, 4, 5, 6, 1])
    ap.add_argument("--n", type=int, default=60, help="problems per level (level 4 has ~68 held-out questions in all)")
    ap.add_argument("--k", type=int, default=0, help="sampled solutions per training problem (0: greedy only)")
    ap.add_argument("--temperature", type=float, default=0.8)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--model", default="default")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tiny", action="store_true")
    a = ap.parse_args(argv)
    torch.manual_seed(0); torch.set_num_threads(a.threads)
    if a.tiny: model, tok = tiny_model(lora=False); a.n, a.max_new_tokens = min(a.n, 4), 8
    else: model, tok = load_policy(a.model, lora=False)
    model.eval()
    print(f"model {a.model if not a.tiny else 'tiny'}, {a.n} problems a level, max_new_tokens {a.max_new_tokens}")
    print("| level | about | greedy pass rate (held-out) | sampled pass rate | pairs / problem | on-policy share | s |")
    print("|---|---|---|---|---|---|---|")
    for lv in a.levels:
        t0 = time.perf_counter()
        g = evaluate(model, tok, make_problems(a.n, levels=(lv,), split="eval"), max_new_tokens=a.max_new_tokens, progress=True)
        samp = "–", "–", "–"
        if a.k:
            ds, info = build_pairs(model, tok, make_problems(a.n, levels=(lv,)), k=a.k, temperature=a.temperature,
                                   max_new_tokens=a.max_new_tokens, progress=True)
            samp = (f"{info['sample_accuracy']:.2f}", f"{info['n_pairs'] / a.n:.2f}",
                    f"{info['n_on_policy'] / max(1, info['n_pairs']):.2f}")
        print(f"| {lv} | {LEVELS[lv]['about']} | {g['accuracy']:.2f} ({g['n_correct']}/{g['n']}) | {' | '.join(samp)} "
              f"| {time.perf_counter() - t0:.0f} |", flush=True)


if __name__ == "__main__":
    main()
