"""Cost of the gradient-SNR probe: per probed batch against its token floor, and as a share of a default run.

    .venv/bin/python bench/bench_snr_probe.py [--batch-size 8] [--repeats 2] [--skip-run] [--tiny]

1. Per batch. Uses the default run's pair set (`sage-nb run` samples and caches it under `$SAGE_NB_CACHE`, else
   ~/.cache/sage_nb; this reuses the cache, and samples the pairs if it is not there) and the
   embedded model with a non-zero adapter. Timed in the same process, interleaved, on the same batches, each drawn
   from the whole set as the probe draws its uniform batches (`probe.uniform_batch`): mixed lengths, as the probe
   sees them:

   - one pair per pass (`probe.per_pair_grads_loop`, the fallback), both terms: the reference the others must match;
   - both terms from one forward of the 2B whole sequences and one backward, the pairs in groups of similar lengths
     (`probe.per_pair_grads_by_sequence`: what the trainer's probe runs per batch), and the same as one group;
   - a training step on the same batch: forward (each pair's shared prefix once), backward of the mean loss, and an
     AdamW step (lr 0, so the parameters stay put and every way sees the same ones).

   The probe needs each sequence's gradient apart, which a shared prefix mixes, so it runs the 2B whole sequences:
   its token floor is (tokens by sequence) / (tokens a training step runs: each pair's shared prefix once, and the
   system turn all the batch's prompts start with once), about 1.7 training steps.
   `GOAL snr_probe_vs_token_floor <probe / (floor x training step)> 1.2 PASS|FAIL`.

2. Share of a run. Runs `sage-nb run` with the default config as a first run does (`SAGE_NB_CACHE` an empty
   temporary folder, the run folder beside it: the model is converted, the pairs sampled and the reference computed
   in the run) and reads its probe seconds (`snr_s` of summary.json's timers) and its wall-clock (the run's printout):
   `GOAL snr_probe_share_of_run <snr_s / wall-clock> 0.15 PASS|FAIL`. It also prints the share of the wall-clock
   after the pairs and reference stages (what a rerun that reads them from its caches would measure) and the
   wall-clock itself (the `make run` of a first run). `--skip-run` leaves it out (the line then reads `nan ... FAIL`);
   the default run takes about 7 minutes on 2 CPU cores.

`--tiny` runs both on the tiny random model and synthetic pairs (the run: a few steps of a tiny local model, its
caches in a temporary folder), in seconds: a check that the script works; its numbers mean nothing.
"""
import argparse, json, os, re, subprocess, sys, tempfile, time
from pathlib import Path
import torch
sys.path.insert(0, str(Path(__file__).resolve().parent))
from sage_nb.config import Config
from sage_nb.pairstore import PairStore
from sage_nb.dpo import common_start
from sage_nb.probe import uniform_batch, per_pair_grads_loop, per_pair_grads_by_sequence, per_sequence_forward
from bench_scoring import policy_and_pairs

FLOOR_TARGET, SHARE_TARGET = 1.2, 0.15
TINY_RUN = ["--n-train-problems", "6", "--n-eval-problems", "4", "--k", "2", "--max-new-tokens", "8", "--steps", "3",
            "--batch-size", "2", "--refresh-every", "1", "--levels", "0,1"]


def train_stepper(model, forward, params):
    "One training step on a batch: forward, backward of the mean loss, AdamW (lr 0: the parameters do not move)."
    opt = torch.optim.AdamW(params, lr=0.0)
    def step(ids):
        opt.zero_grad(set_to_none=True)
        forward(ids)[0].mean().backward()
        opt.step(); opt.zero_grad(set_to_none=True)
    return step


def goal(name, v, target):
    print(f"GOAL {name} {v:.2f} {target} {'PASS' if v <= target else 'FAIL'}")


def per_batch(a, cfg):
    "Seconds of each way per batch, the token floor, and the worst relative difference from the one-pair loop."
    model, tok, pairs = policy_and_pairs(cfg, a.tiny)   # a trained-looking adapter, so every gradient is non-trivial
    store = PairStore(pairs, tok, cfg, model=model)
    params = [p for p in model.parameters() if p.requires_grad]
    forward = lambda ids: store.forward(model, ids)
    seq = per_sequence_forward(store, model)
    one_group = lambda ids: seq(ids)                    # the same forward without `lengths`: one group
    model.train()
    ways = {"one pair per pass": lambda ids: per_pair_grads_loop(forward, ids, params, terms=(0, 1)),
            "by sequence, one group": lambda ids: per_pair_grads_by_sequence(one_group, ids, params, model, terms=(0, 1)),
            "by sequence, length groups": lambda ids: per_pair_grads_by_sequence(seq, ids, params, model, terms=(0, 1)),
            "training step": train_stepper(model, forward, params)}
    t = dict.fromkeys(ways, 0.0); worst = 0.0; tokens = [0, 0]; padded = [0, 0]
    for r in range(a.repeats + 1):                     # the first round warms up and is not timed
        ids = uniform_batch(store.ids, a.batch_size, cfg.seed, r)   # drawn as the probe's uniform batches are
        if r:                                          # tokens run by sequence (2B whole rows) and as a training step runs them
            b = store.batch(ids); am, S = b["attention_mask"], b["shared_lens"]
            G = common_start(b["input_ids"][:len(S)], S.tolist())   # the system turn, once per batch (`dpo.prefix_forward`)
            whole = int(am.sum()); tokens[0] += whole; tokens[1] += whole - int(S.sum()) - (len(S) - 1) * G
            cont = am.sum(1) - S.repeat(2)             # with padding: 2B whole rows, or B prefixes + 2B continuations
            padded[0] += am.numel(); padded[1] += G + len(S) * (int(S.max()) - G) + len(cont) * int(cont.max())
        out = {}
        for name, fn in ways.items():
            t0 = time.perf_counter(); out[name] = fn(ids)
            if r: t[name] += time.perf_counter() - t0
        for k in (0, 1):
            g1 = out["one pair per pass"][k]
            for w in ("by sequence, one group", "by sequence, length groups"):
                worst = max(worst, ((g1 - out[w][k]).norm(dim=1) / g1.norm(dim=1).clamp_min(1e-30)).max().item())
    ts = t["training step"]
    print(f"model: {'tiny' if a.tiny else cfg.model}, cpu, {torch.get_num_threads()} threads, load average "
          f"{os.getloadavg()[0]:.1f} (2 cores shared: timings are only comparable on an otherwise idle machine)")
    for name, s in t.items(): print(f"{name:28s} {s / a.repeats:6.2f} s per batch of {a.batch_size}  ({s / ts:.2f} training steps)")
    floor = tokens[0] / max(tokens[1], 1)
    print(f"max relative difference of a pair's gradient from one pair per pass, both terms: {worst:.1e}  ({a.repeats} timed batches)")
    print(f"tokens through the model: {tokens[0]} by sequence, {tokens[1]} with each pair's shared prefix and the batch's "
          f"system turn run once (a training step): {floor:.2f}x. Both terms need each sequence's gradient apart, which a shared prefix mixes, "
          f"so that ratio is the by-sequence way's floor against a training step")
    print(f"with padding: {padded[0]} by sequence, {padded[1]} with the shared prefix: {padded[0] / max(padded[1], 1):.2f}x")
    probe_s = t["by sequence, length groups"]          # the way the trainer probes (see `Trainer._snr_probe`)
    steps = probe_s / ts
    print(f"length groups / one group = {probe_s / t['by sequence, one group']:.2f}; a probed batch costs {steps:.2f} training steps, "
          f"its token floor {floor:.2f}")
    d = Config()
    print(f"a default probe differentiates 1 + snr_draws = {1 + d.snr_draws} batches: {(1 + d.snr_draws) * steps:.1f} training steps; "
          f"the method's (experiments/fair.json, snr_draws 3): {4 * steps:.1f}")
    return dict(t, worst=worst, floor=floor, steps=steps, vs_floor=steps / floor)


def default_run(a) -> dict:
    "Run `sage-nb run` (the default config; tiny: a tiny local model) and read its probe seconds and wall-clock."
    with tempfile.TemporaryDirectory() as tmp:
        env, args = dict(os.environ, SAGE_NB_CACHE=str(Path(tmp)/"cache")), ["run", "--out-dir", str(Path(tmp)/"run")]
        if a.tiny:
            from sage_nb.models import tiny_model
            m, tok = tiny_model(lora=False, seed=1); m.save_pretrained(Path(tmp)/"tiny"); tok.save_pretrained(Path(tmp)/"tiny")
            args += ["--model", str(Path(tmp)/"tiny"), *TINY_RUN]
        print(f"$ sage-nb {' '.join(args)}", flush=True)
        p = subprocess.run([sys.executable, "-m", "sage_nb.cli", *args], env=env, capture_output=True, text=True)
        if p.returncode: sys.exit(f"sage-nb run failed (exit {p.returncode}):\n{(p.stdout + p.stderr)[-4000:]}")
        wall = re.search(r"wall-clock (\d+(?:\.\d+)?) s: (.*)", p.stdout)
        if not wall: sys.exit(f"no wall-clock line in the run's printout:\n{p.stdout[-2000:]}")
        summ = json.loads(next((Path(tmp)/"run").rglob("summary.json")).read_text())
        snr_rows = [json.loads(l) for l in next((Path(tmp)/"run").rglob("snr.jsonl")).read_text().splitlines() if l.strip()]
    tm, wall_s = summ["time"], float(wall[1])
    print(f"the run: wall-clock {wall_s:.0f} s ({wall[2]})")
    print(f"probes at steps {[r['step'] for r in snr_rows]} ({', '.join(sorted({r['reason'] for r in snr_rows}))}), "
          f"{snr_rows[0]['draws'] if snr_rows else 0} uniform draws each: {tm['snr_s']:.0f} s, {tm['snr_s'] / max(len(snr_rows), 1):.1f} s a probe; "
          f"{tm['snr_s'] / max(tm['total_s'], 1e-9):.1%} of the training loop ({tm['total_s']:.0f} s), "
          f"{tm['snr_s'] / wall_s:.1%} of the wall-clock")
    stage = {k: float(v) for k, v in re.findall(r"(\w+) (\d+(?:\.\d+)?) s", wall[2])}
    rerun_s = wall_s - stage.get("pairs", 0.0) - stage.get("reference", 0.0)
    print(f"a first run, empty caches: wall-clock {wall_s:.0f} s ({wall_s / 60:.1f} min); after its pairs and reference stages "
          f"{rerun_s:.0f} s, of which the probes are {tm['snr_s'] / max(rerun_s, 1e-9):.1%} (a rerun reading both from its caches)")
    return dict(snr_s=tm["snr_s"], total_s=tm["total_s"], wall_s=wall_s, share=tm["snr_s"] / wall_s, probes=len(snr_rows),
                rerun_share=tm["snr_s"] / max(rerun_s, 1e-9))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch-size", type=int, default=Config().batch_size)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--skip-run", action="store_true", help="leave out the default run (the share of a run is then not measured)")
    ap.add_argument("--tiny", action="store_true", help="tiny random model and synthetic pairs instead of the default run's")
    a = ap.parse_args(argv)
    res = per_batch(a, Config(device="cpu"))
    run = None if a.skip_run else default_run(a)
    goal("snr_probe_vs_token_floor", res["vs_floor"], FLOOR_TARGET)
    goal("snr_probe_share_of_run", float("nan") if run is None else run["share"], SHARE_TARGET)
    return dict(res, run=run)


if __name__ == "__main__":
    main()
