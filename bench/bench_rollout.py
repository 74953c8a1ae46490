"""Sampling and greedy-evaluation throughput: sage_nb's KV-cache loop vs `model.generate`, same prompts, one run.

    .venv/bin/python bench/bench_rollout.py [--per-level 32] [--levels 0 1] [--k 4] [--max-new-tokens 64]
                                            [--batch-size 32] [--threads 1] [--lora] [--tiny]

Both paths get the same prompts, the same token budget, the same rows in flight (`--batch-size`: prompts x k
per `generate` call; the loop's queue keeps that many rows running) and the same torch thread count.
Useful tokens = generated tokens up to and including each row's end token (what `generate` computes for a
row after it ended does not count). The loop runs without its stop-after-`####`-line rule so that both
paths decode the same kind of sequences; greedy outputs of the two paths are compared token by token.
Tokens/s are given per wall-clock second and per second of this process's CPU time; the GOAL ratios use
CPU time, which other jobs on a shared machine do not inflate (with one torch thread it is the compute spent).
It prints the loop's decode forwards, row-steps and prefill forwards (counts that do not depend on the machine's
load) next to the steps of `generate`'s calls, and the bound: the row-steps `generate` decoded per useful token, at equal rows in flight the most that
dropping finished rows can save of the decoding (the loop also prefills each prompt once for its k rows).
Each GOAL value is the loop's speedup (useful tokens per CPU second, loop / `generate`) divided by that bound, both
from the same run; it equals the loop's useful tokens per CPU second as a share of the row-steps `generate` decodes
per CPU second: at 1, the loop spends on a useful token what `generate` spends on any row-step.
The default 32 prompts a level give greedy evaluation more prompts than rows in flight, as an evaluation has
(100 problems in batches of 32), so the loop refills its rows as it does there.
Greedy evaluation then runs once more through the loop with the prompts queued longest answer first (the lengths
taken from its own first pass): the same share, printed beside the queue-order one, is what the loop's mechanics
reach when the queue's order does not leave long answers to decode alone at the end (not a GOAL: a first
evaluation does not know its answers' lengths).
It also times one draw of the next tokens for a full batch of rows, the loop's inverse transform
(`rollout._sample_next`) against `torch.multinomial` on the same probabilities, and sampling through a policy whose
LoRA adapter is still zero (as when a run samples its pairs): decoded through the base model, the loop's default
(`rollout.base_while_zero`), against through the adapter, with the rows of the two compared token by token.
`--tiny` runs a random tiny model in seconds (it checks the script, its numbers mean nothing).
The last lines read `GOAL sampling_vs_bound <v> 0.95 PASS|FAIL` and `GOAL greedy_eval_vs_bound <v> 0.9 PASS|FAIL`.
"""
import argparse, heapq, os, time
import torch
from sage_nb.models import load_policy, tiny_model
from sage_nb.data import make_problems, format_prompt
from sage_nb import rollout
from sage_nb.rollout import kv_generate, longest_first, _stop_ids, _sample_next, _full_cache

TARGETS = dict(sampling_vs_bound=0.95, greedy_eval_vs_bound=0.9)   # share of the waste-removal bound


def useful(rows, stops, budget):
    "Tokens up to and including the first end token of each row (at most `budget`)."
    n = 0
    for r in rows:
        r = r[:budget]
        n += next((i + 1 for i, t in enumerate(r) if t in stops), len(r))
    return n


def schedule_forwards(steps, slots, order=None):
    "Decode forwards a loop runs when row i takes `steps[i]` of them and a free slot takes the next row of `order` at once."
    ends, t = [], 0
    for i in (range(len(steps)) if order is None else order):
        if len(ends) == slots: t = heapq.heappop(ends)          # the first slot to free up
        heapq.heappush(ends, t + steps[i])
    return max(ends, default=0)


def strip(rows, stops):
    "Each row cut before its first end token (the loop's output format)."
    return [r[:next((i for i, t in enumerate(r) if t in stops), len(r))] for r in rows]


def hf_generate(model, tok, prompts, k, max_new_tokens, temperature, stops, seed):
    "New-token rows from `model.generate` on one left-padded batch (k rows per prompt; temperature 0 = greedy)."
    torch.manual_seed(seed)
    tok.padding_side = "left"
    enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    kw = dict(do_sample=True, temperature=temperature, top_p=1.0, top_k=0) if temperature > 0 else dict(do_sample=False)
    with torch.inference_mode():
        out = model.generate(**enc, **kw, num_return_sequences=k, max_new_tokens=max_new_tokens,
                             pad_token_id=tok.pad_token_id, eos_token_id=sorted(stops))
    return out[:, enc.input_ids.shape[1]:].tolist()


def measure(model, tok, prompts, k, a, stops):
    "{path: (useful tokens, seconds, rows)} for the loop and for `generate` at temperature `a.temperature` or 0."
    temp = a.temperature if k > 1 else 0.0
    res = {}
    fr = []                                        # rows of each decode forward (one new token a row)
    hook = model.register_forward_pre_hook(lambda m, args, kw: fr.append(kw["input_ids"].shape[0])
                                           if kw.get("input_ids") is not None and kw["input_ids"].shape[1] == 1 else None,
                                           with_kwargs=True)
    t0, c0, st = time.perf_counter(), time.process_time(), {}
    try: rows = kv_generate(model, tok, prompts, k, a.max_new_tokens, temp, 1.0, torch.Generator().manual_seed(a.seed),
                            stop_after_answer=False, stats=st, batch_size=a.batch_size)
    finally: hook.remove()
    res["kv_loop"] = (st["tokens"], time.perf_counter() - t0, time.process_time() - c0, rows)
    res["loop_steps"] = dict(st, forward_rows=fr)
    per, t0, c0, rows, steps = max(1, a.batch_size // k), time.perf_counter(), time.process_time(), [], 0
    for i in range(0, len(prompts), per):
        rows += (out := hf_generate(model, tok, prompts[i:i + per], k, a.max_new_tokens, temp, stops, a.seed + i))
        steps += len(out[0])                       # a call decodes as many steps as its longest row
    res["generate"] = (useful(rows, stops, a.max_new_tokens), time.perf_counter() - t0, time.process_time() - c0,
                       strip(rows, stops))
    res["row_steps"] = sum(map(len, rows))         # every row of a generate call runs until its longest row ends
    res["generate_steps"] = steps
    return res


def ordered_pass(model, tok, prompts, a, g, rate):
    """The greedy loop again, prompts queued by the length of their answers in `g` (longest first): what a known order buys.
    `rate`: generate's row-steps per CPU second in `g`, the GOAL's denominator."""
    rows = g["kv_loop"][3]
    order = longest_first([len(r) for r in rows])
    c0, st = time.process_time(), {}
    out = kv_generate(model, tok, [prompts[i] for i in order], 1, a.max_new_tokens, 0.0, 1.0, None,
                      stop_after_answer=False, stats=st, batch_size=a.batch_size)
    cpu = time.process_time() - c0
    return dict(tokens=st["tokens"], cpu=cpu, forwards=st["forwards"], share=st["tokens"] / cpu / rate,
                identical=sum(out[j] == rows[i] for j, i in enumerate(order)))


def report(res, rows_in_flight, budget):
    "Print tokens/s per path (wall clock and process CPU time) and the row-step bound; return (CPU-time speedup, bound)."
    steps, st, g_steps = res.pop("row_steps"), res.pop("loop_steps"), res.pop("generate_steps")
    wall = {p: r[0] / r[1] for p, r in res.items()}
    cpu = {p: r[0] / r[2] for p, r in res.items()}
    for p, (u, s, c, _) in res.items():
        print(f"  {p:9s} {u:6d} useful tokens in {s:7.1f} s wall ({wall[p]:7.1f} tokens/s), {c:7.1f} s CPU "
              f"({cpu[p]:7.1f} tokens/s)", flush=True)
    print(f"  kv_loop ran {st['forwards']} decode forwards ({st['row_steps']} row-steps, {st['row_steps'] / st['forwards']:.1f} "
          f"rows each; {st['row_steps'] / rows_in_flight:.1f} full forwards would hold them) and {st['prefills']} "
          f"prefill forwards; generate's calls ran {g_steps} steps")
    steps_i = [len(r) - (len(r) >= budget) for r in res["kv_loop"][3]]   # decode forwards a row takes after its prefill
    fifo, best = schedule_forwards(steps_i, rows_in_flight), schedule_forwards(steps_i, rows_in_flight, longest_first(steps_i))
    print(f"  with these rows' lengths, a loop that refilled every free row at once in queue order would run {fifo} decode "
          f"forwards, and {best} with the longest rows first (an order only known once they are decoded)")
    print(f"  ratio kv_loop / generate = {wall['kv_loop'] / wall['generate']:.2f}x wall, "
          f"{cpu['kv_loop'] / cpu['generate']:.2f}x CPU time")
    print(f"  generate decoded {steps} row-steps for {res['generate'][0]} useful tokens: at equal rows in flight, dropping "
          f"finished rows can save at most {steps / max(res['generate'][0], 1):.2f}x of the decoding (if a step's cost were "
          f"proportional to its rows; prefill is saved besides: the loop runs each prompt once for its k rows)")
    print(f"  the loop's useful tokens per CPU second are {cpu['kv_loop'] / (steps / res['generate'][2]):.2f} of the row-steps "
          f"generate decodes per CPU second ({steps / res['generate'][2]:.1f}/s)")
    return cpu["kv_loop"] / cpu["generate"], steps / max(res["generate"][0], 1)


def decode_cost(model, rows, width=128, reps=7):
    "CPU seconds of one decode forward of `rows` rows on a KV cache `width` columns wide (the median of `reps`)."
    ids = torch.randint(100, 1000, (rows, width), generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        c = model(input_ids=ids, cache=_full_cache(), use_cache=True, logits_to_keep=1).cache
        mask, ts = torch.ones(rows, width, dtype=torch.long), []
        for s in range(reps):
            mask = torch.cat([mask, mask.new_ones(rows, 1)], 1); t0 = time.process_time()
            c = model(input_ids=ids[:, :1], attention_mask=mask, position_ids=torch.full((rows, 1), width + s), cache=c,
                      use_cache=True).cache
            ts.append(time.process_time() - t0)
    return sorted(ts)[len(ts) // 2]


def partial_forwards(model, st, rows_in_flight, loop_cpu, useful, rate):
    """What the loop's partly filled decode forwards cost beyond their rows' share of a full one, from a decode forward's
    measured cost at 1 row and at `rows_in_flight` (a fixed part + a part per row): (fixed s, per-row s, excess s, share
    the loop's useful tokens per CPU second would reach without that excess, over generate's row-steps per CPU second `rate`)."""
    c1, cR, R = decode_cost(model, 1), decode_cost(model, rows_in_flight), rows_in_flight
    fixed, per_row = max((R * c1 - cR) / (R - 1), 0.0), (cR - c1) / (R - 1)
    excess = fixed * sum(1 - r / R for r in st["forward_rows"])      # a + b*r, against r/R of a full forward's a + b*R
    return fixed, per_row, excess, useful / max(loop_cpu - excess, 1e-9) / rate


def draw_cost(rows, vocab, temperature, reps=20, seed=0):
    "Milliseconds a draw of `rows` next tokens over `vocab` takes: (torch.multinomial, the loop's inverse transform)."
    g, logits = torch.Generator().manual_seed(seed), torch.randn(rows, vocab, generator=torch.Generator().manual_seed(seed)) * 3
    paths = dict(multinomial=lambda: torch.multinomial(torch.softmax(logits / temperature, -1), 1, generator=g),
                 inverse=lambda: _sample_next(logits, temperature, 1.0, g))
    ms = {}
    for name, f in paths.items():
        f(); t = time.perf_counter()
        for _ in range(reps): f()
        ms[name] = (time.perf_counter() - t) / reps * 1000      # the mean of `reps` draws after a warm-up
    return ms["multinomial"], ms["inverse"]


def zero_adapter_cost(prompts, a, reps=2):
    """CPU seconds (the fastest of `reps`) to sample `prompts` (k rows each) through a fresh LoRA policy (B = 0): with the
    adapter disabled, the loop's default, and through it; and whether the two gave the same rows."""
    model, tok = tiny_model(lora=True) if a.tiny else load_policy(lora=True)
    sec, rows = {True: [], False: []}, {}
    try:
        for _ in range(reps):
            for base in (True, False):
                rollout.BASE_WHEN_ZERO = base; c0 = time.process_time()
                rows[base] = kv_generate(model, tok, prompts, a.k, a.max_new_tokens, a.temperature, 1.0,
                                         torch.Generator().manual_seed(a.seed), batch_size=a.batch_size)
                sec[base].append(time.process_time() - c0)
    finally: rollout.BASE_WHEN_ZERO = True
    return min(sec[True]), min(sec[False]), rows[True] == rows[False]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--per-level", type=int, default=32, help="prompts per level")
    ap.add_argument("--levels", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--batch-size", type=int, default=32, help="rows in flight (prompts x k), both paths")
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--temperature", type=float, default=0.8)
    ap.add_argument("--lora", action="store_true", help="generate through a peft LoRA policy")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    ap.add_argument("--tiny", action="store_true", help="random tiny model, a few prompts: checks the script in seconds")
    a = ap.parse_args(argv)
    if a.tiny: a.per_level, a.max_new_tokens = min(a.per_level, 3), min(a.max_new_tokens, 8)
    torch.set_num_threads(a.threads)
    model, tok = tiny_model(lora=a.lora) if a.tiny else load_policy(lora=a.lora)
    model.eval()
    probs = make_problems(a.per_level * len(a.levels), levels=a.levels, split="eval", seed=a.seed)
    prompts = [format_prompt(tok, p["question"]) for p in probs]
    stops = _stop_ids(tok, model)
    print(f"model={'tiny' if a.tiny else 'embedded'}{'+lora' if a.lora else ''}, {len(prompts)} prompts (levels "
          f"{a.levels}), k={a.k}, max_new_tokens={a.max_new_tokens}, rows in flight={a.batch_size}, "
          f"threads={torch.get_num_threads()}, load average {os.getloadavg()[0]:.1f}", flush=True)
    print(f"sampling (temperature {a.temperature}, k={a.k}):")
    sp_s, b_s = report(measure(model, tok, prompts, a.k, a, stops), a.batch_size, a.max_new_tokens)
    m_ms, i_ms = draw_cost(a.batch_size, model.get_output_embeddings().weight.shape[0], a.temperature)
    print(f"  one draw for {a.batch_size} rows: torch.multinomial {m_ms:.1f} ms, the loop's inverse transform {i_ms:.1f} ms "
          f"({i_ms / m_ms:.2f})")
    z_base, z_lora, z_same = zero_adapter_cost(prompts[:len(prompts) // 4], a)
    print(f"  sampling {len(prompts) // 4} prompts x {a.k} through a zero LoRA adapter: decoded through the base model "
          f"{z_base:.1f} s CPU, through the adapter {z_lora:.1f} s ({z_base / z_lora:.2f}); identical rows: {z_same}")
    print("greedy evaluation (k=1):")
    g = measure(model, tok, prompts, 1, a, stops)
    g_rate = g["row_steps"] / g["generate"][2]            # generate's row-steps per CPU second (report pops it)
    g_st, g_useful, g_cpu = g["loop_steps"], g["kv_loop"][0], g["kv_loop"][2]
    sp_g, b_g = report(g, a.batch_size, a.max_new_tokens)
    g_share = sp_g / b_g
    fixed, per_row, excess, floor_share = partial_forwards(model, g_st, a.batch_size, g_cpu, g_useful, g_rate)
    R, F = a.batch_size, len(g_st["forward_rows"])
    print(f"  a decode forward costs {fixed * 1000:.0f} ms + {per_row * 1000:.1f} ms a row ({(fixed + per_row) * 1000:.0f} ms "
          f"at 1 row, {(fixed + R * per_row) * 1000:.0f} ms at {R}); the loop's {F} decode forwards held "
          f"{sum(g_st['forward_rows'])} row-steps, {sum(1 - r / R for r in g_st['forward_rows']):.1f} full forwards' "
          f"worth of empty rows, whose fixed part ({excess:.1f} s of {g_cpu:.1f} s CPU) the bound does not charge; "
          f"without it the share would read {floor_share:.2f} (the queue-order pass: {g_share:.2f})")
    same = sum(x == y for x, y in zip(g["kv_loop"][-1], g["generate"][-1]))
    print(f"  greedy outputs identical to generate's: {same}/{len(prompts)}; load average {os.getloadavg()[0]:.1f}")
    o = ordered_pass(model, tok, prompts, a, g, g_rate)
    print(f"greedy evaluation, the same prompts queued longest answer first (lengths from the pass above, as a run's later "
          f"evaluation of the same problems could know them):\n  kv_loop {o['tokens']} useful tokens in {o['cpu']:.1f} s CPU, "
          f"{o['forwards']} decode forwards; its useful tokens per CPU second are {o['share']:.2f} of the row-steps generate "
          f"decodes per CPU second (the queue-order pass above: {g_share:.2f}); outputs identical to the pass above: "
          f"{o['identical']}/{len(prompts)}")
    res = dict(sampling_vs_bound=sp_s / b_s, greedy_eval_vs_bound=sp_g / b_g)
    print(f"  speedup / bound: sampling {sp_s:.2f}x / {b_s:.2f}x, greedy {sp_g:.2f}x / {b_g:.2f}x")
    for name, v in res.items():
        print(f"GOAL {name} {v:.2f} {TARGETS[name]} {'PASS' if v >= TARGETS[name] else 'FAIL'}")
    return dict(res, sampling=sp_s, greedy=sp_g, sampling_bound=b_s, greedy_bound=b_g, greedy_identical=same,
                n=len(prompts), greedy_ordered=o["share"], ordered_identical=o["identical"], draw_ms=(m_ms, i_ms), greedy_without_partial=floor_share,
                zero_adapter_s=(z_base, z_lora), zero_adapter_identical=z_same)


if __name__ == "__main__":
    main()
