"""Scoring each distinct sequence once (`PairStore.score`'s default) against scoring pair by pair: a 3-refresh SAGE run
on pairs that share prompts and responses writes the same pairs.jsonl and events.jsonl either way (timings aside,
floats to their rounding), and trains on the same pairs."""
import json, math
from functools import partialmethod
from pathlib import Path
import pytest

from sage_nb.config import Config
from sage_nb.data import make_pair, pairs_dataset
from sage_nb.models import tiny_model, chat_prompt
from sage_nb.pairstore import PairStore, pair_sequences
from sage_nb.reference import cache_reference
from sage_nb.trainer import Trainer

TIMING = {"score_s", "time/step_s", "time/score_s", "time"}


def _cfg():
    return Config(selector="sage", steps=6, batch_size=2, refresh_every=2, pool_factor=2, score_batch_size=4, snr_every=0,
                  eval_every=0, checkpoint_every=0, max_length=72, max_prompt_length=48, seed=0)


@pytest.fixture(scope="module")
def pairs():
    "On-policy-like pairs: 6 problems, 2 right and 2 wrong responses each, every right against every wrong, and a gold pair."
    _, tok = tiny_model(lora=False)
    rows = []
    for i in range(6):
        q = f"What is {i + 2}*{i + 3}?"; p, ok = chat_prompt(tok, q), (i + 2) * (i + 3)
        right = [f"{i + 2}*{i + 3}={ok}. #### {ok}", f"We multiply {i + 2} by {i + 3} and get {ok}. #### {ok}"]
        wrong = [f"{i + 2}*{i + 3}={ok + 1}. #### {ok + 1}", f"We multiply {i + 2} by {i + 3}, carry once more: " * 4 + f"{ok + i + 2}. #### {ok + i + 2}"]
        for a in right:
            for b in wrong: rows.append(make_pair(p, a, b, problem_id=f"p{i}", difficulty=i % 3, pass_rate=0.5, question=q, gold=str(ok)))
        rows.append(make_pair(p, f"Gold: {i + 2} times {i + 3} is {ok}. #### {ok}", wrong[0], problem_id=f"p{i}", difficulty=i % 3,
                              pass_rate=0.5, question=q, gold=str(ok), source="gold"))
    return cache_reference(tiny_model(seed=0)[0], tok, pairs_dataset(rows), _cfg(), progress=False)


def _read(d, name):
    "The rows of a log, with the run folder's own path written as RUN (the two runs live in two folders)."
    text = (Path(d)/f"{name}.jsonl").read_text().replace(str(d), "RUN")
    return [json.loads(l) for l in text.splitlines() if l.strip()]


def _same(a, b, path=""):
    "a == b, floats to rel 1e-4 / abs 1e-5, timing keys skipped."
    if isinstance(a, dict):
        assert set(a) == set(b), path
        for k in a:
            if k not in TIMING: _same(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)): _same(x, y, f"{path}[{i}]")
    elif isinstance(a, float) or isinstance(b, float):
        assert math.isclose(a, b, rel_tol=1e-4, abs_tol=1e-5), f"{path}: {a} != {b}"
    else: assert a == b, f"{path}: {a!r} != {b!r}"


def _run(pairs, d):
    model, tok = tiny_model(seed=0)
    Trainer(model, tok, pairs, _cfg(), run_dir=d, progress=False).train()
    return {n: _read(d, n) for n in ("pairs", "events", "metrics")}


def test_pairs_share_sequences(pairs):
    _, tok = tiny_model(lora=False)
    store = PairStore(pairs, tok, _cfg())
    seqs = [s for it in store.items(store.ids) for s in pair_sequences(it)]
    assert len(set(seqs)) <= 0.6 * len(seqs) and any(it["truncated"] for it in store.items(store.ids))


def test_sequence_scoring_writes_the_same_run(pairs, tmp_path, monkeypatch):
    new = _run(pairs, tmp_path/"by_sequence")
    monkeypatch.setattr(PairStore, "score", partialmethod(PairStore.score, by_sequence=False))
    old = _run(pairs, tmp_path/"by_pair")
    assert sum(e["kind"] == "refresh" for e in new["events"]) == 3
    assert any(r["origin"] == "score" for r in new["pairs"])
    for name in ("pairs", "events", "metrics"): _same(new[name], old[name], name)
    trained = lambda run: [(r["step"], r["pair_id"]) for r in run["pairs"] if r["origin"] == "train"]
    assert trained(new) == trained(old) and trained(new)
