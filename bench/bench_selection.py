"""Selection overhead of SAGE at the default settings: time spent in `score_fn` / time spent training, in one run.

    .venv/bin/python bench/bench_selection.py                 # the default run's pairs and model, Config() defaults
    .venv/bin/python bench/bench_selection.py --tiny          # tiny random model, synthetic pairs (seconds; checks the script)
    .venv/bin/python bench/bench_selection.py --runs runs/compare   # read finished runs (e.g. `sage-nb compare`'s)

The run is `sage_nb.trainer.Trainer` with SAGE on the default run's pair set (what `sage-nb run` samples and caches; this
reuses the cache, or samples it first, untimed), 20 steps of 8 as `sage-nb run` trains, no probes or evaluation. Real
on-policy pairs share sequences (a problem's k samples share its prompt, a response sits in several pairs), which is
what scoring by sequence saves: synthetic pairs that share nothing could not show it.

It prints pairs scored per pair trained, the cost of scoring a pair against training one, and then, on the trained
adapter and the run's whole pool, the two scoring passes side by side (each distinct sequence once, the default; pair by
pair, the earlier pass): seconds, tokens run and padded tokens, and how many picks of one refresh would differ.

`--runs DIR` trains nothing: it reads `summary.json` and `events.jsonl` of every run folder under DIR whose selector
scores pairs and prints the overhead that run measured (its `time/score_s` over `time/train_s`).
The last line reads `GOAL selection_overhead <scoring / training> 0.30 PASS|FAIL` (with `--runs`, the mean over the runs).
"""
from __future__ import annotations
import argparse, json, sys, tempfile, time
from pathlib import Path
import numpy as np, torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from sage_nb.config import Config, pool_size, pairs_per_interval

TARGET = 0.30

def goal(ratio: float) -> str:   # three decimals: a value that rounds to the target still shows which side it is on
    return f"GOAL selection_overhead {ratio:.3f} {TARGET} {'PASS' if ratio <= TARGET else 'FAIL'}"


def arithmetic_pairs(tok, n: int, seed: int = 0):
    "n synthetic math pairs (worked solution vs. one with an arithmetic slip), three difficulty levels."
    from sage_nb.data import make_pair, pairs_dataset
    from sage_nb.models import chat_prompt
    r = np.random.default_rng(seed); rows = []
    for i in range(n):
        lvl = i % 3
        a, b, c = (int(x) for x in r.integers(2, 10**(lvl + 1) + 10, 3))
        q = f"Problem {i}: compute {a} * {b} + {c}. Show your work and end with #### and the answer."
        ok, bad = a*b + c, a*b + c + int(r.integers(1, 9))
        steps = f"First, {a} * {b} = {a*b}. Then we add {c} to the product: {a*b} + {c} = "
        rows.append(make_pair(chat_prompt(tok, q), f"{steps}{ok}. The answer is {ok}.\n#### {ok}",
                              f"{steps}{bad}. The answer is {bad}.\n#### {bad}", problem_id=f"p{i//2}",
                              difficulty=lvl, pass_rate=float("nan"), question=q, gold=str(ok)))
    return pairs_dataset(rows)


def with_trainer(model, tok, pairs, cfg):
    from sage_nb.reference import cache_reference
    from sage_nb.trainer import Trainer
    pairs = cache_reference(model, tok, pairs, cfg, progress=False)
    with tempfile.TemporaryDirectory() as d:
        tr = Trainer(model, tok, pairs, cfg, run_dir=d, progress=False)
        summary = tr.train()
        store = tr.store
        ev = [json.loads(l) for l in (Path(d)/"events.jsonl").read_text().splitlines() if l.strip()]
        steps = [json.loads(l) for l in (Path(d)/"metrics.jsonl").read_text().splitlines() if l.strip()]
    t = summary["time"]
    refresh = [e for e in ev if e["kind"] == "refresh"]
    return dict(train_s=t["train_s"], score_s=t["score_s"], refresh=refresh, store=store,
                step_train_s=[m["time/step_s"] - m["time/score_s"] for m in steps])


def padded_tokens(store, ids) -> dict:
    "Tokens each scoring pass runs through the model on `ids` (padding included) and the real ones among them."
    from sage_nb import dpo
    from sage_nb.pairstore import pair_sequences, sequence_batches
    from sage_nb.probe import length_buckets
    items, bs = store.items(ids), store.cfg.score_batch_size
    order = dpo.length_order(items); pair = [0, 0]
    for i in range(0, len(items), bs):                       # pair by pair: shared prefix once, two continuations
        b = dpo.collate_pairs(store.tokenizer, [items[j] for j in order[i:i + bs]])
        S, L, n = b["shared_lens"].tolist(), b["attention_mask"].sum(1).tolist(), b["n_pairs"]
        C = [L[r] - S[r % n] for r in range(2 * n)]          # as dpo._token_stats_shared splits each row
        G = dpo.common_start(b["input_ids"][:n], S)          # the system turn, once per batch (dpo.prefix_forward)
        pair[0] += G + n * (max(S) - G) + 2 * n * max(C); pair[1] += sum(S) - (n - 1) * G + sum(C)
    seqs = list(dict.fromkeys(s for it in items for s in pair_sequences(it))); seq = [0, 0]
    for b in sequence_batches(seqs, 2 * bs):                 # by sequence: each prompt once, its responses on its cache in length groups
        part = [seqs[j] for j in b]; prompts = list(dict.fromkeys(p for p, _ in part))
        L, P = [len(r) for _, r in part], [len(p) for p in prompts]
        G = dpo.common_start(dpo.right_pad(prompts)[0], P)
        seq[0] += G + len(prompts) * (max(P) - G) + sum(len(g) * max(L[i] for i in g) for g in length_buckets(L))
        seq[1] += sum(P) - (len(prompts) - 1) * G + sum(len(r) for _, r in part)
    return dict(by_pair=pair, by_sequence=seq, sequences=len(seqs), prompts=len({p for p, _ in seqs}))


def compare_passes(model, store, ids, cfg) -> dict:
    "Both scoring passes on the same weights and ids: seconds, tokens, largest score difference, picks of one refresh that differ."
    from sage_nb import scoring
    t = {}
    merge = store.merge
    for name, by_seq, merged in (("by_sequence", True, None), ("by_sequence, adapter not merged", True, False), ("by_pair", False, False)):
        store._seq_key, store.merge = None, merged          # nothing kept from earlier calls
        t0 = time.perf_counter(); out = store.score(model, ids, reuse_reference=False, by_sequence=by_seq); t[name] = (time.perf_counter() - t0, out)
    store.merge = merge
    a, b = t["by_sequence"][1], t["by_pair"][1]
    top = lambda o: set(np.argsort(-scoring.newton_score(o["u"], o["energy"], scoring.pool_damping(o["u"], o["energy"])).numpy(), kind="stable")[:pairs_per_interval(cfg)].tolist())
    return dict(seconds={k: v[0] for k, v in t.items()}, max_abs={k: float(np.abs(a[k] - b[k]).max()) for k in ("u", "z")},
                max_rel_energy=float((np.abs(a["energy"] - b["energy"]) / np.abs(b["energy"]).clip(1e-12)).max()),
                picks_differ=len(top(a) ^ top(b)) // 2)


def from_runs(root) -> list[dict]:
    "Selection overhead measured by finished run folders under `root` (selectors that score pairs only)."
    from sage_nb.runs import find_runs
    from sage_nb.runlog import read_jsonl
    from sage_nb.selectors import SELECTORS
    out = []
    for d in find_runs(root):
        d = Path(d)
        if not (d/"summary.json").exists(): continue
        cfg = json.loads((d/"config.json").read_text()); t = json.loads((d/"summary.json").read_text())["time"]
        sel = SELECTORS.get(cfg.get("selector"))
        if sel is None or not sel.scores or cfg.get("loss_type") == "sft": continue
        ref = [e for e in read_jsonl(d/"events.jsonl") if e.get("kind") == "refresh"]
        out.append(dict(run=d.name, steps=cfg["steps"], train_s=t["train_s"], score_s=t["score_s"],
                        ratio=t["score_s"]/t["train_s"], scored=[e.get("scored", 0) for e in ref], at=[e["step"] for e in ref]))
    if not out: raise SystemExit(f"No finished run of a scoring selector under {root}")
    for r in out:
        print(f"{r['run']:24s} steps {r['steps']}  training {r['train_s']:6.1f} s  scoring {r['score_s']:5.1f} s  "
              f"overhead {r['ratio']:.1%}   refreshes at {r['at']} scored {r['scored']}")
    ratios = np.array([r["ratio"] for r in out])
    print(f"selection overhead (scoring / training) over {len(out)} runs: mean {ratios.mean():.1%}, "
          f"min {ratios.min():.1%}, max {ratios.max():.1%}   target <= {TARGET:.0%}")
    print(goal(float(ratios.mean())))
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", help="report the overhead measured by finished run folders under this folder; trains nothing")
    ap.add_argument("--tiny", action="store_true", help="tiny random model instead of the default model")
    ap.add_argument("--steps", type=int, default=Config().steps)
    ap.add_argument("--pairs", type=int, default=96, help="pairs in the synthetic set of --tiny")
    a = ap.parse_args(argv)
    if a.runs: return from_runs(a.runs)
    torch.manual_seed(0); torch.set_num_threads(max(1, torch.get_num_threads()))
    cfg = Config(steps=a.steps, selector="sage", snr_every=0, eval_every=0, checkpoint_every=0, device="cpu")
    from sage_nb.models import tiny_model, load_policy
    model, tok = tiny_model() if a.tiny else load_policy(cfg.model, quantize=cfg.quantize, lora_r=cfg.lora_r,
                                                         lora_alpha=cfg.lora_alpha, device="cpu")
    if a.tiny: pairs = arithmetic_pairs(tok, a.pairs)
    else:
        from sage_nb.pipeline import get_pairs
        pairs = get_pairs(Config(), model, tok)              # the default run's pairs (cached by `sage-nb run`)
    how, res = "sage_nb.trainer.Trainer", with_trainer(model, tok, pairs, cfg)
    ref = res["refresh"]
    scored = [e["scored"] for e in ref]; ss = [e["score_s"] for e in ref]
    tr = res["train_s"]; per_train_pair = tr / (cfg.steps * cfg.batch_size)
    per_score_pair = sum(ss) / max(sum(scored), 1)
    steady_score = sum(ss[1:]); n_int = max(len(ref) - 1, 1)
    steady_ratio = (steady_score / n_int) / (per_train_pair * pairs_per_interval(cfg)) if len(ref) > 1 else float("nan")
    print(f"model: {'tiny' if a.tiny else cfg.model}   loop: {how}   device: cpu, {torch.get_num_threads()} threads")
    print(f"defaults: B={cfg.batch_size} T={cfg.refresh_every} M={pairs_per_interval(cfg)} P={pool_size(cfg)} "
          f"score_batch_size={cfg.score_batch_size}   steps={cfg.steps}, pairs={len(pairs)}")
    print(f"refreshes: {len(ref)}, pairs scored per refresh: {scored}")
    print(f"training time {tr:.1f} s ({per_train_pair*1000:.0f} ms/pair)   scoring time {sum(ss):.1f} s "
          f"({per_score_pair*1000:.0f} ms/pair, {per_score_pair/per_train_pair:.2f} of a training pair)")
    print(f"selection overhead, whole run (scoring / training): {sum(ss)/tr:.1%}")
    n_trained = cfg.steps * cfg.batch_size
    print(f"pairs scored per pair trained: {sum(scored) / n_trained:.2f} ({sum(scored)} scored, {n_trained} trained)")
    if len(ref) > 1:   # the first refresh reads the untouched adapter's scores from the reference cache
        paid, paid_s = sum(scored[1:]), sum(ss[1:])
        print(f"beyond the first refresh (scored from the reference cache, {ss[0]:.1f} s): {paid / n_trained:.2f} pairs "
              f"scored per pair trained, each at {paid_s / max(paid, 1) / per_train_pair:.2f} of a training pair")
    print(f"selection overhead, steady state (refreshes after the first, per interval of T steps): {steady_ratio:.1%}")
    store = res["store"]; pool = store.ids[:pool_size(cfg)]
    tok_n = padded_tokens(store, pool)
    print(f"the two scoring passes on the trained adapter, {len(pool)} pairs ({tok_n['sequences']} distinct sequences, "
          f"{tok_n['prompts']} prompts, against {2 * len(pool)} sequences of pairs):")
    cmp = compare_passes(model, store, pool, cfg)
    for k, sec in cmp["seconds"].items():
        run_t, real = tok_n[k.split(",")[0]]
        print(f"  {k:32s} {sec:6.1f} s   {run_t} tokens run, {real} real, {run_t - real} padding ({(run_t - real) / run_t:.0%})")
    print(f"  through the merged copy / through the adapter (both by sequence): "
          f"{cmp['seconds']['by_sequence'] / cmp['seconds']['by_sequence, adapter not merged']:.2f} of the time")
    print(f"  by sequence / by pair: {cmp['seconds']['by_sequence'] / cmp['seconds']['by_pair']:.2f} of the time; largest difference "
          f"u {cmp['max_abs']['u']:.1e}, z {cmp['max_abs']['z']:.1e}, energy {cmp['max_rel_energy']:.1e} relative; "
          f"{cmp['picks_differ']} of {pairs_per_interval(cfg)} top-lambda picks differ")
    print(f"selection overhead, whole run: {sum(ss)/tr:.1%}   target <= {TARGET:.0%}")
    print(goal(sum(ss)/tr))
    return dict(ratio=sum(ss)/tr, steady=steady_ratio, scored_per_trained=sum(scored) / n_trained)


if __name__ == "__main__":
    main()
