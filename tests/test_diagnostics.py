"Diagnostics from run folders: log loading, figure data models, the dashboard fed by callbacks, the HTML report, synthetic runs."
import json, re, threading, time
from pathlib import Path
import pandas as pd
import pytest
from sage_nb.config import Config
from sage_nb.runs import load_run, replay, run_summary
from sage_nb.figures import (CLASS_COLORS, CONFIDENT, SCATTER_TRACES, latest_pairs, margin_stability_figure, pool_dynamics_figure,
                             snr_figure, training_figure)
from sage_nb.dashboard import Dashboard
from sage_nb.report import check_notebook_outputs, write_report
from sage_nb.synthetic import synthetic_run
from sage_nb.scoring import CLASSES

NBS = Path(__file__).resolve().parents[1]/"nbs"

@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return synthetic_run(tmp_path_factory.mktemp("runs")/"sage", steps=30, seed=3)

def test_synthetic_run_matches_the_log_schema(run_dir):
    rows = lambda f: [json.loads(l) for l in (run_dir/f).read_text().splitlines()]
    assert all(set(r) == {"step", "pair_id", "stratum", "u", "s", "c", "energy", "z", "class", "std", "origin"} for r in rows("pairs.jsonl"))
    assert all(r["origin"] in ("score", "train") for r in rows("pairs.jsonl"))
    ref = [e for e in rows("events.jsonl") if e["kind"] == "refresh"]
    assert ref and all({"pool_by_stratum", "competence", "unlocked", "retired_total", "counts", "score_s", "scored"} <= set(e) for e in ref)
    assert all(isinstance(k, str) for e in ref for k in e["pool_by_stratum"])
    assert all(set(r) == {"step", "accuracy", "n_correct", "n", "by_level"} for r in rows("eval.jsonl"))
    assert {"refresh", "unlock", "retire", "checkpoint"} <= {e["kind"] for e in rows("events.jsonl")}
    assert {r["class"] for r in rows("pairs.jsonl")} - {None} <= set(CLASSES)
    cfg = Config.from_json(run_dir/"config.json")
    assert cfg.model == "simulated" and json.loads((run_dir/"summary.json").read_text())["simulated"] is True

def test_load_run_reads_config_with_the_one_reader(run_dir, tmp_path):
    r = load_run(run_dir)
    assert isinstance(r["config"], Config) and r["config"] == Config.from_json(run_dir/"config.json")
    d = synthetic_run(tmp_path/"r", steps=3)
    cfg = json.loads((d/"config.json").read_text()); cfg["old_knob"] = 1
    (d/"config.json").write_text(json.dumps(cfg))
    with pytest.raises((TypeError, ValueError), match="old_knob"): load_run(d)

def test_load_run_tolerates_a_crash(tmp_path):
    d = synthetic_run(tmp_path/"r", steps=8, truncate=True)
    with open(d/"events.jsonl", "a") as f: f.write('{"step": 8, "kind": "ref')
    r = load_run(d)
    assert sorted(r["truncated"]) == ["events.jsonl", "metrics.jsonl"] and len(r["metrics"]) == 8 and r["summary"] is None
    (d/"snr.jsonl").write_text('{"step": 0}\nnot json\n{"step": 2}\n')
    with pytest.raises(ValueError, match="line 2"): load_run(d)

def test_load_run_of_an_empty_run(tmp_path):
    Config().to_json(tmp_path/"config.json")
    r = load_run(tmp_path)
    assert len(r["metrics"]) == 0 and r["events"] == []
    for f in (margin_stability_figure(r["pairs"], r["config"]), pool_dynamics_figure(r["events"]), snr_figure(r["snr"]),
              training_figure(r["metrics"], r["eval"])):
        assert all(len(t.x) == 0 for t in f.data if t.x is not None)

def test_margin_figure_classes(run_dir):
    r = load_run(run_dir)
    f = margin_stability_figure(r["pairs"], r["config"], prompts=r["pair_table"])
    assert [t.name for t in f.data] == SCATTER_TRACES
    for t in f.data:
        assert t.marker.color == CLASS_COLORS["selected" if t.name == CONFIDENT else t.name]
    latest = latest_pairs(r["pairs"])
    got = {t.name: len(t.x) for t in f.data}
    want = latest["class"].value_counts().to_dict()
    assert got["selected"] + got[CONFIDENT] == want.get("selected", 0)
    assert all(got[k] == want.get(k, 0) for k in ("eligible", "unstable", "trivial", "fill"))
    u_conf = r["config"].u_conf
    conf = latest[(latest["class"] == "selected") & (latest["u"] < -u_conf)]
    assert sorted(f.data[1].customdata) == sorted(conf["pair_id"])
    assert all("stratum" in h for t in f.data for h in t.hovertext)

def test_margin_figure_unknown_classes_and_dataframe_prompts():
    df = pd.DataFrame([dict(step=0, pair_id="x", stratum=0, u=0.1, std=None, origin="score", **{"class": None}),
                       dict(step=0, pair_id="y", stratum=1, u=-0.4, std=0.3, origin="score", **{"class": "eligible"})])
    f = margin_stability_figure(df, prompts={"y": "<|im_start|>user\nHow many apples?<|im_end|>"})
    got = {t.name: len(t.x) for t in f.data if len(t.x)}
    assert got == {"other": 1, "eligible": 1}
    assert "How many apples?" in f.data[SCATTER_TRACES.index("eligible")].hovertext[0]

def test_pool_dynamics_markers(run_dir):
    r = load_run(run_dir)
    f = pool_dynamics_figure(r["events"], r["config"])
    unlocks = [e for e in r["events"] if e["kind"] == "unlock"]
    names = [t.name for t in f.data]
    assert len(f.data[names.index("unlock")].x) == len(unlocks)
    strata = {k for e in r["events"] if e["kind"] == "refresh" for k in e["pool_by_stratum"]}
    assert {f"stratum {k}" for k in strata} <= set(names)

def test_snr_trace_lengths(run_dir):
    r = load_run(run_dir)
    f = snr_figure(r["snr"], raw=True)
    n = len(r["snr"]); d = n if "snr_selected_dpo" in r["snr"] and r["snr"]["snr_selected_dpo"].notna().any() else 0
    assert [len(t.x) for t in f.data] == [n, n, d, d, n, n]      # total and DPO-term SNR (if logged), selected and uniform, raw

def test_dashboard_replay_equals_static_figures(run_dir):
    r = load_run(run_dir)
    d = Dashboard(r["config"], prompts=r["pair_table"], min_interval=3600)
    replay(r, d)
    static = dict(margin=margin_stability_figure(r["pairs"], r["config"], r["pair_table"]),
                  pool=pool_dynamics_figure(r["events"], r["config"]), snr=snr_figure(r["snr"]),
                  training=training_figure(r["metrics"], r["eval"]))
    for k, f in static.items():
        w = d.figs[k]
        assert [t.name for t in w.data] == [t.name for t in f.data]
        assert [list(t.x) for t in w.data] == [list(t.x) for t in f.data]
        assert [list(t.y) for t in w.data] == [list(t.y) for t in f.data]
    assert d.draws == 2                     # first event, then the final flush of on_end
    assert "finished" in d.status.value

def test_dashboard_status_of_a_skipped_step(tmp_path):
    "A step skipped for a non-finite loss logs loss=None; the status line says so instead of failing to format it."
    r = load_run(synthetic_run(tmp_path/"nan", steps=6, nan_steps=(6,)))
    assert r["metrics"]["loss"].isna().tolist() == [False] * 5 + [True]
    d = Dashboard(r["config"], min_interval=3600)
    replay(r, d)
    assert "<b>loss</b> skipped" in d.status.value and "finished" in d.status.value
    assert run_summary(r)["nan skips"] == 1

def test_dashboard_from_a_training_thread(run_dir):
    "Callbacks arrive on the trainer's thread while the main thread flushes: no exception, all rows kept."
    r = load_run(run_dir)
    d = Dashboard(r["config"], min_interval=0, budget=1.0)
    errors = []
    def feed():
        try: replay(r, d, end=False)
        except Exception as e: errors.append(e)
    t = threading.Thread(target=feed); t.start()
    while t.is_alive(): d.flush(); time.sleep(0.02)   # a notebook's redraws, not a busy loop that starves the feeder
    t.join(); d.on_end({})
    assert errors == [] and len(d.figs["training"].data[0].x) == len(r["metrics"])

def test_stop_button_calls_trainer_stop():
    class T:
        n = 0
        def stop(self): self.n += 1
    d = Dashboard(); assert d.stop_button.disabled
    d.bind(t := T()); d.stop_button.click(); d.stop_button.click()
    assert t.n == 1 and d.stop_button.disabled

def test_report_is_self_contained(run_dir, tmp_path):
    p = write_report(run_dir, out=tmp_path/"r.html")
    s = p.read_text()
    assert not re.search(r"<script[^>]+src=", s) and "<link" not in s
    assert s.count("Plotly.newPlot") == 4 and len(s) > 3_000_000     # plotly.js is inside

def test_report_of_several_runs(tmp_path):
    for sel in ("sage", "uniform"):
        for seed in (0, 1, 2): synthetic_run(tmp_path/sel/f"s{seed}", steps=12, seed=seed, selector=sel)
    synthetic_run(tmp_path/"crashed", steps=5, truncate=True)
    p = write_report(tmp_path)
    s = p.read_text()
    assert p == tmp_path/"report.html" and s.count("Plotly.newPlot") == 1 + 4 * 7
    assert "Side by side" in s and "mid-write" in s
    with pytest.raises(FileNotFoundError): write_report(tmp_path/"sage"/"nope")

def test_committed_notebooks_carry_little_output():
    nbs = sorted(NBS.glob("*.ipynb"))
    assert nbs
    check_notebook_outputs(nbs, max_bytes=20_000)

def test_dashboard_says_what_the_probes_cost(run_dir):
    "The status line gives the SNR probes' seconds and share of the run's time, from the summary's timers."
    r = load_run(run_dir)
    d = Dashboard(r["config"], min_interval=3600)
    replay(r, d)
    tm = r["summary"]["time"]
    want = f"<b>SNR probes</b> {tm['snr_s']:.0f} s ({tm['snr_s'] / tm['total_s']:.0%} of {tm['total_s']:.0f} s)"
    assert tm["total_s"] > 0 and want in d.status.value, d.status.value
    late = Dashboard(r["config"], min_interval=3600)
    late.on_end(dict(r["summary"], time=dict(tm, snr_s=0.25 * tm["total_s"])))
    assert "(25% of" in late.status.value, late.status.value
