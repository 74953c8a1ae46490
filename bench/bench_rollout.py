"""Sampling throughput: sage_nb's KV-cache loop vs `model.generate`, same prompts, same k, one run.

    .venv/bin/python bench/bench_rollout.py [--problems 8] [--k 4] [--max-new-tokens 64] [--lora] [--threads N]

Useful tokens = generated tokens up to and including each row's end token (padding after a row ended
does not count). Both paths sample at the same temperature; the KV loop is run without its
stop-after-`####`-line rule so both decode the same kind of sequences.
"""
import argparse, time
import torch
from sage_nb.models import load_policy
from sage_nb.data import make_problems, format_prompt
from sage_nb.rollout import kv_generate


def hf_generate(model, tok, prompts, k, max_new_tokens, temperature, seed):
    "Useful tokens from `model.generate` on left-padded batches with num_return_sequences=k."
    torch.manual_seed(seed)
    tok.padding_side = "left"
    enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    out = model.generate(**enc, do_sample=True, temperature=temperature, top_p=1.0, top_k=0, num_return_sequences=k,
                         max_new_tokens=max_new_tokens, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
    new = out[:, enc.input_ids.shape[1]:]
    useful = 0
    for row in new.tolist():
        useful += (row.index(tok.eos_token_id) + 1) if tok.eos_token_id in row else len(row)
    return useful


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--problems", type=int, default=8)
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--batch-size", type=int, default=16, help="rows in flight (prompts x k)")
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--temperature", type=float, default=0.8)
    ap.add_argument("--lora", action="store_true", help="sample through a peft LoRA policy")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    a = ap.parse_args()
    if a.threads: torch.set_num_threads(a.threads)
    model, tok = load_policy(lora=a.lora)
    model.eval()
    probs = make_problems(a.problems, levels=(0, 1, 2), split="eval", seed=a.seed)
    prompts = [format_prompt(tok, p["question"]) for p in probs]
    per = max(1, a.batch_size // a.k)
    print(f"{len(prompts)} prompts x k={a.k}, {per} prompts per batch, max_new_tokens={a.max_new_tokens}, "
          f"device={next(model.parameters()).device}, threads={torch.get_num_threads()}", flush=True)
    res = {}
    for name in ("kv_loop", "generate"):
        t0, useful = time.perf_counter(), 0
        g = torch.Generator().manual_seed(a.seed)
        for i in range(0, len(prompts), per):
            batch = prompts[i:i + per]
            if name == "kv_loop":
                st = {}
                kv_generate(model, tok, batch, a.k, a.max_new_tokens, a.temperature, 1.0, g, stop_after_answer=False, stats=st)
                useful += st["tokens"]
            else:
                with torch.no_grad(): useful += hf_generate(model, tok, batch, a.k, a.max_new_tokens, a.temperature, a.seed + i)
        secs = time.perf_counter() - t0
        res[name] = useful / secs
        print(f"{name:9s} {useful:6d} useful tokens in {secs:6.1f} s = {res[name]:6.1f} tokens/s", flush=True)
    print(f"ratio kv_loop / generate = {res['kv_loop'] / res['generate']:.2f}x")


if __name__ == "__main__":
    main()
