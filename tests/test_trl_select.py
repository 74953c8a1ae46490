"SageDPOTrainer on a tiny model: TRL trains exactly the selector's picks, scores agree with PairStore's, margins with TRL's logs, resume continues the same picks."
import json, os, shutil
from pathlib import Path
import numpy as np, pytest, torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch.set_num_threads(1)
trl = pytest.importorskip("trl")
from trl import DPOConfig
from sage_nb.config import Config
from sage_nb.models import tiny_model, chat_prompt
import datasets
from sage_nb.pairstore import PairStore
from sage_nb.trl_select import SageDPOTrainer, SELECTOR_STATE, check_trl_version, check_dpo_args

ROOT = Path(__file__).resolve().parents[1]


def _pairs(tok, n=24):
    rows = []
    for i in range(n):
        a, b = i + 2, 2*i + 3
        rows.append(dict(pair_id=f"q{i}", prompt=chat_prompt(tok, f"What is {a}+{b}?"), chosen=f"{a}+{b}={a+b}. #### {a+b}",
                         rejected=f"{a}+{b}={a+b+1 + i % 4}. #### {a+b+1 + i % 4}", problem_id=f"p{i}", difficulty=i % 3))
    return datasets.Dataset.from_list(rows)


def _args(out, steps, **kw):
    kw = dict(output_dir=str(out), max_steps=steps, per_device_train_batch_size=2, gradient_accumulation_steps=2,
              learning_rate=2e-2, precompute_ref_log_probs=True, logging_steps=1, save_steps=1000, report_to=[],
              use_cpu=True, max_length=96, disable_tqdm=True, seed=0, lr_scheduler_type="constant") | kw
    return DPOConfig(**kw)


class Recording(SageDPOTrainer):
    "Keeps every micro-batch TRL's training_step receives."
    def training_step(self, model, inputs, num_items_in_batch=None):
        self.seen = getattr(self, "seen", [])
        self.seen.append((self.state.global_step + 1, {k: v.detach().clone() for k, v in inputs.items()}))
        return super().training_step(model, inputs, num_items_in_batch)


def _train(out, selector, steps=6, ref=True, cls=Recording, cfg_kw=None, **kw):
    "A tiny run: policy = LoRA on a random Llama, reference = another random Llama (so margins differ from the start)."
    model, tok = tiny_model(seed=0)
    ref_model = tiny_model(lora=False, seed=1)[0] if ref else None
    cfg = Config(batch_size=4, refresh_every=2, selector=selector, score_batch_size=8, seed=3, n_strata=2, **(cfg_kw or {}))
    tr = cls(model=model, ref_model=ref_model, args=_args(out, steps, **kw), train_dataset=_pairs(tok),
             processing_class=tok, sage_config=cfg)
    picks = []
    nb = tr.sage_selector.next_batch
    tr.sage_selector.next_batch = lambda step: picks.append((step, list(nb(step)))) or picks[-1][1]
    tr.picks = picks
    return tr


@pytest.fixture(scope="module")
def sage_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("trl")/"sage"
    tr = _train(out, "sage", save_steps=3)
    tr.train()
    return tr


def _collated(tr, ids):
    rows = tr.train_dataset.select([tr.sage_store.positions([i])[0] for i in ids])
    cols = ["prompt_ids", "chosen_ids", "rejected_ids", "ref_chosen_logps", "ref_rejected_logps"]
    return tr.data_collator([{c: r[c] for c in cols} for r in rows])


def test_micro_batches_are_the_picks(sage_run):
    tr = sage_run
    assert [s for s, _ in tr.picks] == list(range(1, 7))
    assert [e["step"] for e in tr.sage_log.read("events") if e["kind"] == "refresh"] == [1, 3, 5]   # refreshes inside the run
    by_step = {}
    for step, inputs in tr.seen: by_step.setdefault(step, []).append(inputs)
    for step, ids in tr.picks:
        assert len(by_step[step]) == 2 and len(ids) == 4                     # gradient accumulation: 2 micro-batches of 2
        for k, inputs in enumerate(by_step[step]):
            want = _collated(tr, ids[2*k:2*k + 2])
            assert set(inputs) == set(want)
            for key in want: assert torch.equal(inputs[key].cpu(), want[key]), (step, k, key)


def test_observed_margins_agree_with_trl_logs(sage_run):
    tr = sage_run
    trl_m = {r["step"]: r["rewards/margins"] for r in tr.state.log_history if "rewards/margins" in r}
    mine = {r["step"]: r for r in tr.sage_log.read("metrics")}
    assert sorted(trl_m) == sorted(mine) == list(range(1, 7))
    for s in trl_m: assert mine[s]["rewards/margins"] == pytest.approx(trl_m[s], abs=1e-6)
    train_rows = [r for r in tr.sage_log.read("pairs") if r["origin"] == "train"]
    for s, ids in tr.picks:                                  # the selector's records hold each trained pair's margin
        u = [r["u"] for r in train_rows if r["step"] == s]
        assert [r["pair_id"] for r in train_rows if r["step"] == s] == ids
        assert np.mean(u) == pytest.approx(trl_m[s], abs=1e-6)
    logged = [r for r in tr.state.log_history if "sage/pool_size" in r]
    assert logged and all(r["sage/pool_size"] > 0 for r in logged) and "sage/score_s" in logged[0] and "sage/selected" in logged[0]


def test_checkpoint_holds_selector_state_and_resume_picks_the_same(sage_run, tmp_path):
    ck = Path(sage_run.args.output_dir)/"checkpoint-3"
    d = json.loads((ck/SELECTOR_STATE).read_text())
    assert d["step"] == 3 and d["selector_name"] == "sage" and "tracker" in d["selector"]
    out = tmp_path/"resumed"; shutil.copytree(sage_run.args.output_dir, out); shutil.rmtree(out/"checkpoint-6")
    tr = _train(out, "sage", save_steps=3)
    tr.train(resume_from_checkpoint=str(out/"checkpoint-3"))
    assert tr.picks == sage_run.picks[3:]
    first = {r["step"]: r["rewards/margins"] for r in sage_run.sage_log.read("metrics")}
    again = {r["step"]: r["rewards/margins"] for r in tr.sage_log.read("metrics")}
    assert sorted(again) == list(range(1, 7))                                    # the log was rolled back to step 3, then continued
    for s in range(4, 7): assert again[s] == pytest.approx(first[s], abs=1e-6)


def test_first_scored_batch_is_native_lowest_margin(tmp_path):
    tr = _train(tmp_path/"mg", "margin_greedy", steps=1, cfg_kw=dict(pool_factor=3))   # the pool holds all 24 pairs
    tr.train()
    ds = tr.train_dataset
    rows = [dict(pair_id=p, prompt=a, chosen=b, rejected=c, ref_logp_chosen=x, ref_logp_rejected=y) for p, a, b, c, x, y in
            zip(ds["pair_id"], _pairs(tr.processing_class)["prompt"], _pairs(tr.processing_class)["chosen"],
                _pairs(tr.processing_class)["rejected"], ds["ref_chosen_logps"], ds["ref_rejected_logps"])]
    model, tok = tiny_model(seed=0)                                              # the policy before the update, scored natively
    store = PairStore(rows, tok, tr.sage_config.replace(max_length=96, max_prompt_length=64))
    u = store.score(model, store.ids, reuse_reference=False)["u"]
    assert np.ptp(u) > 1e-3                                                      # margins differ, so the order means something
    lowest = [store.ids[i] for i in np.argsort(u, kind="stable")[:4]]
    assert tr.picks[0][1] == lowest
    scored = [r for r in tr.sage_log.read("pairs") if r["origin"] == "score"]
    got = {r["pair_id"]: r["u"] for r in scored}
    assert np.allclose([got[p] for p in store.ids], u, atol=1e-5)


def test_sage_picks_differ_from_uniform_and_uniform_scores_nothing(sage_run, tmp_path):
    tr = _train(tmp_path/"uni", "uniform", steps=6)
    tr.train()
    assert [s for s, _ in tr.picks] == [s for s, _ in sage_run.picks]
    assert [i for _, i in tr.picks] != [i for _, i in sage_run.picks]
    assert all(r["time/score_s"] == 0 for r in tr.sage_log.read("metrics"))     # the light path: no scoring pass
    assert sorted(p for _, ids in tr.picks[:6] for p in ids) == sorted(tr.train_dataset["pair_id"])   # one shuffled epoch
    by_step = {}
    for step, inputs in tr.seen: by_step.setdefault(step, []).append(inputs)
    for step, ids in tr.picks:
        for k, inputs in enumerate(by_step[step]): assert torch.equal(inputs["input_ids"].cpu(), _collated(tr, ids[2*k:2*k + 2])["input_ids"])


def test_unsupported_settings_fail_before_loading(tmp_path):
    cfg = Config(batch_size=4)
    ok = _args(tmp_path, 2)
    check_dpo_args(ok, cfg)
    for kw, msg in [(dict(precompute_ref_log_probs=False), "precompute_ref_log_probs=True"),
                    (dict(loss_type=["aot"]), "aot"), (dict(beta=0.2), "beta"), (dict(max_steps=-1), "max_steps"),
                    (dict(ld_alpha=0.5), "ld_alpha"), (dict(use_liger_kernel=True), "use_liger_kernel"),
                    (dict(per_device_train_batch_size=4), "batch_size")]:
        with pytest.raises(ValueError, match=msg): check_dpo_args(_args(tmp_path, 2, **kw), cfg)
    with pytest.raises(ImportError, match="trl>=1.16,<2"): check_trl_version("2.0.0")
    with pytest.raises(ImportError, match="found trl 1.15"): check_trl_version("1.15.2")
    model, tok = tiny_model()
    ds = _pairs(tok, 4)
    dup = ds.map(lambda r: {"pair_id": "same"})
    with pytest.raises(ValueError, match="row 1: pair_id 'same' appears twice"):
        SageDPOTrainer(model=model, args=ok, train_dataset=dup, processing_class=tok, sage_config=cfg)
    with pytest.raises(TypeError, match="map-style"):
        SageDPOTrainer(model=model, args=ok, train_dataset=ds.to_iterable_dataset(), processing_class=tok, sage_config=cfg)


def _readme_snippet() -> str:
    "The python block of the README's section on TRL, as printed there."
    text = (ROOT/"README.md").read_text()
    sec = text[text.index("## SAGE inside TRL"):]
    return sec[sec.index("```python") + len("```python"):sec.index("```", sec.index("```python") + 9)]

README_SNIPPET = _readme_snippet()


def test_readme_snippet_runs(tmp_path):
    "The README's snippet, as printed there, with a tiny model, a tiny pair file and 2 steps."
    _pairs(tiny_model()[1], 12).to_json(str(tmp_path/"pairs.jsonl"))
    subs = [('load_policy("default")', "tiny_model()"), ("import load_policy", "import load_policy, tiny_model"),
            ('"pairs.jsonl"', repr(str(tmp_path/"pairs.jsonl"))), ('"runs/trl-sage"', repr(str(tmp_path/"run"))),
            ("max_steps=60", "max_steps=2"), ("per_device_train_batch_size=8", "per_device_train_batch_size=2"),
            ("batch_size=8,", "batch_size=2,"), ("refresh_every=10", "refresh_every=1")]
    code = README_SNIPPET
    for old, new in subs:
        assert code.count(old) == 1, old
        code = code.replace(old, new)
    assert len(README_SNIPPET.strip().splitlines()) <= 11
    exec(compile(code, "README snippet", "exec"), {})
    metrics = [json.loads(l) for l in (tmp_path/"run"/"metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [1, 2] and json.loads((tmp_path/"run"/"summary.json").read_text())["selector"] == "sage"


def test_bench_tiny_prints_its_goal(capsys):
    "bench/bench_trl_select.py --tiny runs and ends with its GOAL line (its timings mean nothing on a shared machine)."
    import re, sys
    sys.path.insert(0, str(ROOT/"bench"))
    import bench_trl_select
    res = bench_trl_select.main(["--tiny", "--steps", "3"])
    out = capsys.readouterr().out
    assert re.search(r"^GOAL trl_uniform_step_vs_dpotrainer [0-9.]+ 1.05 (PASS|FAIL)$", out, re.M), out
    assert out.strip().splitlines()[-1].startswith("GOAL trl_uniform_step_vs_dpotrainer")
    assert res["ratio"] > 0 and res["overhead_trl"] > 0 and res["overhead_native"] > 0


@pytest.mark.parametrize("shape", ["conversational", "implicit_prompt"])
def test_any_dataset_shape_trl_reads(tmp_path, shape):
    "Conversational rows and rows whose prompt is implicit in chosen/rejected: TRL prepares them, each step trains the pick."
    model, tok = tiny_model()
    rows = []
    for i in range(8):
        q, good, bad = f"What is {i}+{i+1}?", f"{2*i+1}", f"{2*i+2+i%3}"
        if shape == "conversational":
            rows.append(dict(prompt=[{"role": "user", "content": q}], chosen=[{"role": "assistant", "content": good}],
                             rejected=[{"role": "assistant", "content": bad}]))
        else:
            rows.append(dict(chosen=f"Q: {q} A: {good}", rejected=f"Q: {q} A: {bad}"))
    tr = Recording(model=model, args=_args(tmp_path, 2), train_dataset=datasets.Dataset.from_list(rows), processing_class=tok,
                   sage_config=Config(batch_size=4, refresh_every=1, score_batch_size=8, n_strata=1))
    tr.train()
    assert tr.train_dataset["pair_id"] == [str(i) for i in range(8)]                  # ids: the user's row numbers
    by_step = {}
    for step, inputs in tr.seen: by_step.setdefault(step, []).append(inputs)
    for h in tr.sage_history:
        assert sum(h["micro"], []) == h["ids"]
        for k, inputs in enumerate(by_step[h["step"]]):
            assert torch.equal(inputs["input_ids"].cpu(), _collated(tr, h["micro"][k])["input_ids"])


def test_stop_ends_after_the_step_with_a_checkpoint(tmp_path):
    "What the dashboard's Stop button does: trainer.stop() from a callback ends training after that step, checkpointed."
    tr = _train(tmp_path/"stop", "uniform", steps=5, ref=False)
    class StopAt2:
        def on_step(self, row):
            if row["step"] == 2: tr.stop()
    tr.sage_callbacks.append(StopAt2())
    tr.train()
    assert tr.state.global_step == 2 and [s for s, _ in tr.picks] == [1, 2]
    assert (tmp_path/"stop"/"checkpoint-2"/SELECTOR_STATE).exists()
    assert json.loads((tmp_path/"stop"/"summary.json").read_text())["stopped"] is True
    assert [e["kind"] for e in tr.sage_log.read("events")][-1] == "stop"
