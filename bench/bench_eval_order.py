"""A run's later evaluations, queued by its first evaluation's answer lengths: decode forwards and CPU time against queue order.

    .venv/bin/python bench/bench_eval_order.py RUN_DIR [--threads 1]   # a finished `sage-nb run` folder
    .venv/bin/python bench/bench_eval_order.py --tiny                  # tiny random model and adapter (checks the script)

A run evaluates the same held-out problems before and after training. Its first evaluation (the base model's) records
each answer's length, and every later one queues the problems longest answer first by those lengths (`evaluate`'s
`prior_lengths`), so that long answers do not decode alone at the end of the queue. This bench evaluates the run's
trained adapter on the run's held-out problems three times, same rows in flight: in queue order (what the first
evaluation does), queued by the base model's lengths from the run's summary (what the run's later evaluations do),
and queued by the adapter's own lengths from the first pass (an order known only once decoded: the best a known order
gives). Each pass prints its decode forwards (a count that does not depend on the machine's load), its CPU seconds and
how many answers equal the queue-order pass's. The base model's lengths predict the trained adapter's only as far as
training left its answers' lengths alone: that is what the middle pass measures.
"""
from __future__ import annotations
import argparse, json, sys, time
from pathlib import Path
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def passes(model, tok, problems, prior, cfg, instruction=None) -> list[dict]:
    "The three evaluations: queue order, `prior` lengths, the adapter's own lengths; each with its forwards and CPU time."
    from sage_nb.evaluate import evaluate
    from sage_nb.data import INSTRUCTION
    def one(name, lengths):
        c0 = time.process_time()
        r = evaluate(model, tok, problems, max_new_tokens=cfg.max_new_tokens, batch_size=cfg.generation_batch_size,
                     instruction=instruction or INSTRUCTION, return_responses=True, prior_lengths=lengths)
        return dict(r, name=name, cpu=time.process_time() - c0)
    q = one("queue order", None)
    return [q, one("base model's lengths", prior), one("its own lengths", q["lengths"])]


def report(res: list[dict], prior) -> dict:
    "Print each pass's forwards, CPU time and answers as in queue order; return them by pass name."
    q, out = res[0], {}
    print(f"{q['n']} problems; answer tokens: {sum(x for x in prior if x is not None)} by the base model, "
          f"{sum(q['lengths'])} by the adapter:")
    for r in res:
        d = out[r["name"]] = dict(forwards=r["decode_forwards"], cpu=r["cpu"],
                                  same=sum(a == b for a, b in zip(r["responses"], q["responses"])))
        print(f"  {r['name']:22s} {d['forwards']:4d} decode forwards, {d['cpu']:6.1f} s CPU "
              f"({d['cpu'] / q['cpu']:.2f} of queue order's), accuracy {r['accuracy']:.3f}, answers as in queue order: "
              f"{d['same']}/{r['n']}")
    return out


def from_run(run: Path):
    "(model with the run's adapter, tokenizer, held-out problems, instruction, config, base-model lengths) of a finished run."
    from peft import PeftModel
    from sage_nb.models import load_policy
    from sage_nb.data import prompt_setup
    from sage_nb.evaluate import balanced_subset
    from sage_nb.pipeline import eval_config, get_problems, prior_lengths_for
    if not (run/"summary.json").exists() or not (run/"adapter"/"adapter_config.json").exists():
        raise SystemExit(f"{run}: not a finished run folder (summary.json and adapter/ are needed)")
    cfg = eval_config(run)
    first = json.loads((run/"summary.json").read_text()).get("eval_before")
    problems = get_problems(cfg, "eval")
    prior = prior_lengths_for(first, list(range(len(problems))), balanced_subset(problems, cfg.eval_subset), len(problems))
    if prior is None: raise SystemExit(f"{run}: its first evaluation recorded no answer lengths (a run of an older sage_nb)")
    problems, instruction = prompt_setup(problems, cfg.prompt_template)
    model, tok = load_policy(cfg.model, quantize=cfg.quantize, lora=False, device="cpu")
    return PeftModel.from_pretrained(model, str(run/"adapter")).eval(), tok, problems, instruction, cfg, prior


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", nargs="?", help="a finished `sage-nb run` folder")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    ap.add_argument("--tiny", action="store_true", help="tiny random model with a random adapter, a few problems")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    if a.tiny:
        from sage_nb.config import Config
        from sage_nb.data import make_problems
        from sage_nb.evaluate import evaluate
        from sage_nb.models import tiny_model
        cfg = Config(max_new_tokens=8, generation_batch_size=4)
        model, tok = tiny_model(lora=True)
        problems = make_problems(10, levels=(0, 1), split="eval")
        prior = evaluate(model, tok, problems, max_new_tokens=8, batch_size=4)["lengths"]   # the base model's
        torch.manual_seed(1)
        with torch.no_grad():
            for n, p in model.named_parameters():
                if "lora_B" in n: p.normal_(0, 0.5)                       # a "trained" adapter
        instruction = None
    elif a.run: model, tok, problems, instruction, cfg, prior = from_run(Path(a.run))
    else: ap.error("give a run folder, or --tiny")
    print(f"model={'tiny' if a.tiny else cfg.model}, adapter={'random' if a.tiny else Path(a.run)/'adapter'}, "
          f"rows in flight={cfg.generation_batch_size}, max_new_tokens={cfg.max_new_tokens}, threads={torch.get_num_threads()}")
    return report(passes(model, tok, problems, prior, cfg, instruction), prior)


if __name__ == "__main__":
    main()
