"The selection-overhead benchmark reads finished runs: it reports each scoring run's score/train ratio and skips the rest."
import json, subprocess, sys
from pathlib import Path
import pytest
from sage_nb.config import Config

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT/"bench"))
import bench_selection


def _run(d: Path, selector: str, train_s: float, score_s: float, **kw):
    d.mkdir(parents=True)
    Config(selector=selector, out_dir=str(d), **kw).to_json(d/"config.json")
    (d/"summary.json").write_text(json.dumps({"steps": 30, "time": {"train_s": train_s, "score_s": score_s}}))
    ev = [{"step": 1, "kind": "refresh", "scored": 40}, {"step": 3, "kind": "unlock", "stratum": 1},
          {"step": 11, "kind": "refresh", "scored": 25}]
    (d/"events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in ev))


def test_overhead_from_runs(tmp_path, capsys):
    _run(tmp_path/"sage-s0", "sage", 100.0, 30.0)
    _run(tmp_path/"sage-s1", "sage", 120.0, 48.0)
    _run(tmp_path/"uniform-s0", "uniform", 90.0, 0.0)
    _run(tmp_path/"sft-s0", "uniform", 90.0, 0.0, loss_type="sft")
    (tmp_path/"unfinished").mkdir(); Config(out_dir="x").to_json(tmp_path/"unfinished"/"config.json")
    out = bench_selection.main(["--runs", str(tmp_path)])
    assert [r["run"] for r in out] == ["sage-s0", "sage-s1"]
    assert out[0]["ratio"] == pytest.approx(0.3) and out[1]["ratio"] == pytest.approx(0.4)
    assert out[0]["scored"] == [40, 25] and out[0]["at"] == [1, 11]
    assert "mean 35.0%" in capsys.readouterr().out


def test_overhead_from_runs_needs_a_scoring_run(tmp_path):
    _run(tmp_path/"uniform-s0", "uniform", 90.0, 0.0)
    with pytest.raises(SystemExit, match="No finished run of a scoring selector"):
        bench_selection.main(["--runs", str(tmp_path)])
