"""Cost of the gradient-SNR probe's per-pair gradients, per probed batch, against one training step of that batch.

    .venv/bin/python bench/bench_snr_probe.py [--batch-size 8] [--repeats 2] [--tiny]

Uses the default run's pair set (`sage-nb run` samples and caches it; this reuses the cache) and the embedded model with
a non-zero adapter. Timed in the same process, interleaved, on the same batches, each drawn from the whole set as the
probe draws its uniform batches (`probe.uniform_batch`): mixed lengths, as the probe sees them. Which of the two ways
of getting both terms is cheaper depends on the batches (their lengths, how much a pair's two sequences share), and
the two are close: the script prints their ratio, and the GOAL line reports the trainer's way.

- one pair per pass (`probe.per_pair_grads_loop`, the fallback), whole objective only;
- one batched pass with per-sample-gradient hooks on the LoRA layers (`probe.per_pair_grads_batched`), whole
  objective only, and whole objective + DPO term (two backwards from one forward);
- the same two terms from one forward of the 2B whole sequences and one backward (`probe.per_pair_grads_by_sequence`:
  what the trainer's probe runs per batch);
- a training step on the same batch: forward, backward of the mean loss, and an AdamW step (lr 0, so the
  parameters stay put and every way sees the same ones).

The loop's and the batched gradients are compared, so the ratios are between computations of the same (B, P)
matrix. The last line reads `GOAL snr_probe_vs_train_step <both terms, the trainer's way / training step> 1.0
PASS|FAIL`. `--tiny` runs the same on the tiny random model and synthetic pairs, in seconds (a check that the
script works; its numbers mean nothing).
"""
import argparse, os, sys, time
from pathlib import Path
import torch
sys.path.insert(0, str(Path(__file__).resolve().parent))
from sage_nb.config import Config
from sage_nb.pairstore import PairStore
from sage_nb.probe import uniform_batch, per_pair_grads_loop, per_pair_grads_batched, per_pair_grads_by_sequence, per_sequence_forward
from bench_scoring import policy_and_pairs

TARGET = 1.0


def train_stepper(model, forward, params):
    "One training step on a batch: forward, backward of the mean loss, AdamW (lr 0: the parameters do not move)."
    opt = torch.optim.AdamW(params, lr=0.0)
    def step(ids):
        opt.zero_grad(set_to_none=True)
        forward(ids)[0].mean().backward()
        opt.step(); opt.zero_grad(set_to_none=True)
    return step


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
    seq = per_sequence_forward(store, model)
    model.train()
    all_ids = store.ids
    ways = {"one pair per pass": lambda ids: per_pair_grads_loop(forward, ids, params)[0],
            "batched, objective": lambda ids: per_pair_grads_batched(forward, ids, params, model)[0],
            "batched, objective + DPO": lambda ids: per_pair_grads_batched(forward, ids, params, model, terms=(0, 1)),
            "by sequence, objective + DPO": lambda ids: per_pair_grads_by_sequence(seq, ids, params, model, terms=(0, 1)),
            "training step": train_stepper(model, forward, params)}
    t = dict.fromkeys(ways, 0.0); worst = 0.0; tokens = [0, 0]; padded = [0, 0]
    for r in range(a.repeats + 1):                     # the first round warms up and is not timed
        ids = uniform_batch(all_ids, a.batch_size, cfg.seed, r)   # drawn as the probe's uniform batches are
        if r:                                          # tokens run by sequence (2B whole rows) and with the shared prefix once
            b = store.batch(ids); am, S = b["attention_mask"], b["shared_lens"]
            whole = int(am.sum()); tokens[0] += whole; tokens[1] += whole - int(S.sum())
            cont = am.sum(1) - S.repeat(2)             # with padding: 2B whole rows, or B prefixes + 2B continuations
            padded[0] += am.numel(); padded[1] += len(S) * int(S.max()) + len(cont) * int(cont.max())
        out = {}
        for name, fn in ways.items():
            t0 = time.perf_counter(); out[name] = fn(ids)
            if r: t[name] += time.perf_counter() - t0
        g1 = out["one pair per pass"]
        for g2 in (out["batched, objective"], out["by sequence, objective + DPO"][0]):
            worst = max(worst, ((g1 - g2).norm(dim=1) / g1.norm(dim=1)).max().item())
    ts = t["training step"]
    print(f"model: {'tiny' if a.tiny else cfg.model}, cpu, {torch.get_num_threads()} threads, load average "
          f"{os.getloadavg()[0]:.1f} (2 cores shared: timings are only comparable on an otherwise idle machine)")
    for name, s in t.items(): print(f"{name:26s} {s / a.repeats:6.2f} s per batch of {a.batch_size}  ({s / ts:.2f} training steps)")
    probe_s = t["by sequence, objective + DPO"]        # the way the trainer probes (see `Trainer._snr_probe`)
    ratio = probe_s / ts
    print(f"one pair per pass / batched (objective) = {t['one pair per pass'] / t['batched, objective']:.2f}   "
          f"max relative difference of a pair's gradient {worst:.1e}   ({a.repeats} timed batches)")
    print(f"tokens through the model: {tokens[0]} by sequence, {tokens[1]} with each pair's shared prefix run once (a training "
          f"step): {tokens[0] / max(tokens[1], 1):.2f}x. Both terms need each sequence's gradient apart, which a shared prefix mixes, "
          f"so that ratio is the by-sequence way's floor against a training step")
    print(f"with padding: {padded[0]} by sequence, {padded[1]} with the shared prefix: {padded[0] / max(padded[1], 1):.2f}x")
    print(f"by sequence / batched (objective + DPO) = {t['by sequence, objective + DPO'] / t['batched, objective + DPO']:.2f} "
          f"(the trainer probes by sequence)")
    print(f"a probe differentiates 1 + snr_draws = {1 + cfg.snr_draws} batches, both terms (the trainer's way): {(1 + cfg.snr_draws) * ratio:.1f} training steps "
          f"per probe (was {(1 + cfg.snr_draws) * 2 * t['one pair per pass'] / ts:.1f} with the loop)")
    print(f"GOAL snr_probe_vs_train_step {ratio:.2f} {TARGET} {'PASS' if ratio <= TARGET else 'FAIL'}")
    return dict(t, worst=worst, ratio=ratio)


if __name__ == "__main__":
    main()
