"""Every selector for a few steps through the real trainer on the tiny model: batches, logs and events fit the
contracts, the scoring time is accounted, and a run resumes from a checkpoint with the selector's state."""
import json
from pathlib import Path
import pytest

trainer = pytest.importorskip("sage_nb.trainer", reason="sage_nb.trainer is not exported yet")
from sage_nb.config import Config
from sage_nb.data import make_pair, pairs_dataset
from sage_nb.models import tiny_model, chat_prompt
from sage_nb.selectors import SELECTORS, make_selector

NAMES = ["uniform", "random", "margin_greedy", "small_margin", "beta_dpo", "easy_to_hard",
         "sage", "sage_no_curriculum", "sage_no_filter", "sage_random_order", "sage_robust"]
REFRESH_KEYS = {"step", "kind", "pool_by_stratum", "competence", "competence_n", "competence_low_n", "unlocked", "retired_total",
                "counts", "score_s", "scored"}
ROW_KEYS = {"step", "pair_id", "stratum", "u", "s", "c", "energy", "z", "class", "std", "origin"}


def _cfg(name, **kw):
    return Config(selector=name, steps=4, batch_size=2, refresh_every=2, pool_factor=2, score_batch_size=4, snr_every=0,
                  eval_every=0, checkpoint_every=0, max_length=64, max_prompt_length=48, seed=0).replace(**kw)


@pytest.fixture(scope="module")
def pairs():
    _, tok = tiny_model(lora=False)
    rows = []
    for i in range(18):
        a, b = i + 2, 2*i + 3
        q = f"What is {a}+{b}?"
        rows.append(make_pair(chat_prompt(tok, q), f"{a}+{b}={a+b}. #### {a+b}", f"{a}+{b}={a+b+1}. #### {a+b+1}",
                              problem_id=f"p{i}", difficulty=i % 3, pass_rate=float("nan"), question=q, gold=str(a+b)))
    from sage_nb.reference import cache_reference
    return cache_reference(tiny_model(seed=0)[0], tok, pairs_dataset(rows), _cfg("uniform"), progress=False)


def _read(d, name): return [json.loads(l) for l in (Path(d)/f"{name}.jsonl").read_text().splitlines() if l.strip()]


def test_all_selectors_registered():
    assert set(NAMES) <= set(SELECTORS)


@pytest.mark.parametrize("name", NAMES)
def test_selector_through_trainer(name, pairs, tmp_path):
    model, tok = tiny_model(seed=0)
    cfg = _cfg(name)
    tr = trainer.Trainer(model, tok, pairs, cfg, run_dir=tmp_path, progress=False)
    summary = tr.train()
    assert summary["steps"] == cfg.steps
    metrics, events, rows = _read(tmp_path, "metrics"), _read(tmp_path, "events"), _read(tmp_path, "pairs")
    assert [m["step"] for m in metrics] == [1, 2, 3, 4]
    refresh = [e for e in events if e["kind"] == "refresh"]
    assert [e["step"] for e in refresh] == [1, 3]
    for e in refresh: assert set(e) == REFRESH_KEYS
    assert rows and all(set(r) == ROW_KEYS for r in rows)
    assert sum(r["origin"] == "train" for r in rows) == cfg.steps * cfg.batch_size
    sel = tr.selector
    if sel.scores:
        assert sum(r["origin"] == "score" for r in rows) == sum(e["scored"] for e in refresh) > 0
        assert summary["time"]["score_s"] > 0 and sel.score_seconds > 0
        assert abs(sum(e["score_s"] for e in refresh) - sel.score_seconds) < 1e-6
        assert set(sel.classes().values()) <= {"trivial", "unstable", "selected", "eligible", "fill"}
    else:
        assert all(e["scored"] == 0 for e in refresh)


@pytest.mark.parametrize("name", ["sage", "uniform"])
def test_resume_continues_selection(name, pairs, tmp_path):
    "A run stopped at a checkpoint and resumed trains the same pairs as an uninterrupted one."
    full = tmp_path/"full"; part = tmp_path/"part"
    kw = dict(checkpoint_every=2, scheduler="constant", warmup_steps=0)    # the same LR at every step in both runs
    m, tok = tiny_model(seed=0)
    trainer.Trainer(m, tok, pairs, _cfg(name, steps=6, **kw), run_dir=full, progress=False).train()
    m, tok = tiny_model(seed=0)
    trainer.Trainer(m, tok, pairs, _cfg(name, steps=3, **kw), run_dir=part, progress=False).train()
    m, tok = tiny_model(seed=0)
    trainer.Trainer(m, tok, pairs, _cfg(name, steps=6, **kw), run_dir=part, resume=True, progress=False).train()
    trained = lambda d: [(r["step"], r["pair_id"]) for r in _read(d, "pairs") if r["origin"] == "train"]
    assert sorted(trained(full)) == sorted(trained(part))
