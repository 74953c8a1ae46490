"The command line end to end on a tiny local model: run, resume, eval, report, compare, and clear errors for bad input."
import json, math
import numpy as np, pandas as pd
import pytest
from sage_nb.cli import main
from sage_nb.runlog import read_jsonl

ARGS = ["--n-train-problems", "6", "--n-eval-problems", "4", "--k", "2", "--max-new-tokens", "8", "--steps", "2",
        "--batch-size", "2", "--refresh-every", "1", "--snr-every", "1", "--checkpoint-every", "1", "--levels", "0,1"]

@pytest.fixture(autouse=True)
def cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("SAGE_NB_CACHE", str(tmp_path_factory.getbasetemp()/"cache"))

def test_run_resume_eval_report(tiny_dir, tmp_path, capsys):
    out = tmp_path/"run"
    main(["run", "--model", str(tiny_dir), "--out-dir", str(out), *ARGS])
    s = json.loads((out/"summary.json").read_text())
    assert s["steps"] == 2 and (out/"report.html").exists() and (out/"adapter"/"adapter_config.json").exists()
    assert json.loads((out/"config.json").read_text())["model"] == str(tiny_dir)
    # a second run with the same out_dir does not overwrite the first
    main(["run", "--model", str(tiny_dir), "--out-dir", str(out), *ARGS])
    assert (tmp_path/"run-2"/"summary.json").exists()
    # resuming a finished run trains nothing more and keeps its logs
    n = len((out/"metrics.jsonl").read_text().splitlines())
    main(["run", "--resume", str(out)])
    assert len((out/"metrics.jsonl").read_text().splitlines()) == n
    main(["eval", str(out)])
    assert "held-out accuracy" in capsys.readouterr().out
    (out/"report.html").unlink(); main(["report", str(out)])
    assert (out/"report.html").exists()

def test_compare_writes_table_and_report(tiny_dir, tmp_path):
    root = tmp_path/"cmp"
    main(["compare", "--model", str(tiny_dir), "--selectors", "sage,uniform", "--seeds", "2", "--root", str(root), *ARGS])
    md = (root/"comparison.md").read_text()
    assert md.startswith("Candidates: ") and "pair-updates a run" in md, md
    for arm in ("sage", "uniform", "sft"): assert f"| {arm} | 2 |" in md
    assert "| sage − uniform | 2 |" in md and "| sage − sft | 2 |" in md, md     # SAGE paired with every other arm
    runs = pd.read_csv(root/"runs.csv").set_index(["arm", "seed"])
    for d in ("sage-s0", "uniform-s0"):          # the table's SNR columns are the means of each run's probes
        snr = pd.DataFrame(read_jsonl(root/d/"snr.jsonl")); arm = d.split("-")[0]
        assert np.isclose(runs.loc[(arm, 0), "snr"], snr.snr_selected.mean())
        assert np.isclose(runs.loc[(arm, 0), "snr_pool"], snr.snr_uniform.mean())
    t = json.loads((root/"sage-s0"/"summary.json").read_text())["time"]
    assert runs.loc[("sage", 0), "score_share"] == pytest.approx(t["score_s"]/t["train_s"]) and t["score_s"] > 0
    assert runs.loc[("uniform", 0), "score_share"] == 0
    assert (root/"report.html").exists()
    for d in ("sage-s0", "uniform-s1", "sft-s0"): assert (root/d/"summary.json").exists()
    sft = json.loads((root/"sft-s0"/"config.json").read_text())
    assert sft["loss_type"] == "sft" and sft["selector"] == "uniform"
    # the noisy-label condition, paired with the clean runs above: each arm's accuracy lost, same arm and seed
    noisy = tmp_path/"cmp-noisy"
    main(["compare", "--model", str(tiny_dir), "--selectors", "uniform", "--seeds", "1", "--root", str(noisy), "--no-sft-control",
          "--label-noise", "0.5", "--clean-root", str(root), *ARGS])
    md = (noisy/"comparison.md").read_text()
    assert "accuracy lost to 50% flipped labels" in md and "| uniform | 1 (1) |" in md, md

@pytest.mark.parametrize("argv,needle", [
    (["run", "--model", "/nonexistent/model"], "not found"),
    (["run", "--steps", "x"], "--steps 'x': expected a whole number"),
    (["run", "--pairs", "/nonexistent/prefs.jsonl"], "prefs.jsonl"),
    (["eval", "/nonexistent/run"], "no PEFT adapter"),
    (["report", "/nonexistent/run"], "/nonexistent/run"),
])
def test_bad_input_is_one_clear_line(argv, needle, capsys):
    with pytest.raises(SystemExit) as e: main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err

def test_a_local_problem_file_splits_into_disjoint_train_and_eval(tmp_path):
    from sage_nb.config import Config
    from sage_nb.pipeline import get_problems
    f = tmp_path/"gsm.jsonl"
    f.write_text("".join(json.dumps({"question": f"What is {i}+{i+1}?", "answer": f"#### {2*i+1}"}) + "\n" for i in range(40)))
    c = Config(problems=str(f), n_train_problems=100, n_eval_problems=100)
    tr, ev = get_problems(c, "train"), get_problems(c, "eval")
    assert tr and ev and len(tr) + len(ev) == 40
    assert not {p["question"] for p in tr} & {p["question"] for p in ev}


def test_a_bad_config_file_is_a_usage_error(tmp_path, capsys):
    for bad, needle in (({"betta": 0.2}, "betta"), ({"levels": 5}, "levels (--levels) must be a list of whole numbers, got int 5")):
        f = tmp_path/"c.json"; f.write_text(json.dumps(bad))
        with pytest.raises(SystemExit) as e: main(["run", "--config", str(f)])
        assert e.value.code == 2
        err = capsys.readouterr().err
        assert needle in err and "c.json" in err and "Traceback" not in err

def test_a_value_error_from_the_job_is_a_usage_error(monkeypatch, capsys):
    import sage_nb.cli as cli
    def reject(cfg, resume=None): raise ValueError(f"Unknown selector {cfg.selector!r}")
    monkeypatch.setattr(cli, "run", reject)
    with pytest.raises(SystemExit) as e: main(["run", "--selector", "nosuch"])
    assert e.value.code == 2 and "'nosuch'" in capsys.readouterr().err

def test_a_type_error_from_the_code_keeps_its_traceback(monkeypatch):
    import sage_nb.cli as cli
    def bug(cfg, resume=None): return cfg.steps + "1"
    monkeypatch.setattr(cli, "run", bug)
    with pytest.raises(TypeError): main(["run", "--steps", "2"])

def test_every_config_flag_says_what_it_means(capsys):
    import dataclasses
    from sage_nb.config import Config
    from sage_nb.cli import build_parser
    run_parser = build_parser()._subparsers._group_actions[0].choices["run"]
    import argparse
    helps = {a.dest: a.help for a in run_parser._actions if a.help != argparse.SUPPRESS}   # hidden: underscore and TRL spellings
    for f in dataclasses.fields(Config):
        meaning, _, default = helps[f.name].partition(" (default: ")
        assert meaning.strip() and default.endswith(")"), f"--{f.name}: {helps[f.name]!r}"
    with pytest.raises(SystemExit) as e: main(["run", "--help"])
    out = capsys.readouterr().out
    assert e.value.code == 0 and "--refresh-every" in out and "re-scorings of the pool" in out
