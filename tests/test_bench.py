"""The benchmarks cannot rot: every bench runs in its --tiny mode and prints its GOAL lines; the selection-overhead
benchmark reads finished runs, reporting each scoring run's score/train ratio and skipping the rest."""
import json, os, re, subprocess, sys
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
    out = capsys.readouterr().out
    assert "mean 35.0%" in out and "GOAL selection_overhead 0.350 0.3 FAIL" in out
    assert bench_selection.goal(0.303) == "GOAL selection_overhead 0.303 0.3 FAIL"   # shows the side of a near miss


def test_overhead_from_runs_needs_a_scoring_run(tmp_path):
    _run(tmp_path/"uniform-s0", "uniform", 90.0, 0.0)
    with pytest.raises(SystemExit, match="No finished run of a scoring selector"):
        bench_selection.main(["--runs", str(tmp_path)])


import bench_rollout


def test_rollout_bench_tiny_runs_and_prints_goals(capsys):
    res = bench_rollout.main(["--tiny"])
    out = capsys.readouterr().out
    assert res["greedy_identical"] == res["n"] == 6          # greedy loop == greedy generate, token by token
    assert all(ms > 0 for ms in res["draw_ms"]) and "torch.multinomial" in out and "inverse transform" in out
    assert res["zero_adapter_identical"] is True and all(t > 0 for t in res["zero_adapter_s"])   # a zero adapter: same rows
    assert "through a zero LoRA adapter" in out and "identical rows: True" in out
    m = re.search(r"the loop's (\d+) decode forwards held (\d+) row-steps", out)              # counted by a hook on the model
    assert m and int(m[1]) > 0 and int(m[2]) >= int(m[1]), out
    assert f"without it the share would read {res['greedy_without_partial']:.2f}" in out
    assert res["greedy_without_partial"] >= res["greedy_eval_vs_bound"] - 1e-9
    for name, t in (("sampling_vs_bound", 0.95), ("greedy_eval_vs_bound", 0.9)):
        r = res[name]
        assert f"GOAL {name} {r:.2f} {t} {'PASS' if r >= t else 'FAIL'}" in out
    bounds = [float(b) for b in re.findall(r"can save at most ([0-9.]+)x", out)]   # generate's row-steps per useful token
    assert len(bounds) == 2 and all(b >= 1 for b in bounds), out
    shares = [float(x) for x in re.findall(r"loop.s useful tokens per CPU second are ([0-9.]+) of the row-steps", out)]
    assert len(shares) == 2 and all(x > 0 for x in shares), out
    assert res["ordered_identical"] == res["n"]               # queue order changes the time, never an answer
    m = re.search(r"are ([0-9.]+) of the row-steps generate decodes per CPU second \(the queue-order pass above: ([0-9.]+)\)", out)
    assert m and float(m[1]) == round(res["greedy_ordered"], 2) and float(m[2]) == round(res["greedy_eval_vs_bound"], 2), out


def test_rollout_bench_counts_useful_tokens():
    assert bench_rollout.useful([[5, 6, 2, 7], [5, 6, 7], [2]], {2}, 64) == 3 + 3 + 1
    assert bench_rollout.useful([[5, 6, 7]], {2}, 2) == 2
    assert bench_rollout.strip([[5, 2, 7], [5, 6]], {2}) == [[5], [5, 6]]


def test_rollout_bench_schedules_rows():
    assert bench_rollout.schedule_forwards([4, 1, 1, 4], 2) == 6              # the last row waits for the short ones: 2 + 4
    assert bench_rollout.schedule_forwards([4, 1, 1, 4], 2, [0, 3, 1, 2]) == 5
    assert bench_rollout.schedule_forwards([3, 3, 3], 3) == 3 and bench_rollout.schedule_forwards([], 4) == 0
    assert bench_rollout.longest_first([1, 3, 3, 2]) == [1, 2, 3, 0]          # ties keep queue order


import bench_eval_order


def test_eval_order_bench_tiny_runs_three_orders(capsys):
    res = bench_eval_order.main(["--tiny"])
    out = capsys.readouterr().out
    assert list(res) == ["queue order", "base model's lengths", "its own lengths"], out
    for name, r in res.items():
        assert r["same"] == 10 and r["forwards"] > 0, out             # the order changes the time, never an answer
        assert re.search(rf"{re.escape(name)}\s+{r['forwards']} decode forwards", out), out


def test_eval_order_bench_needs_a_finished_run(tmp_path):
    with pytest.raises(SystemExit, match="not a finished run folder"):
        bench_eval_order.main([str(tmp_path)])


GOALS = ("selection_overhead", "snr_probe_share_of_run", "snr_probe_vs_token_floor", "greedy_eval_vs_bound", "sampling_vs_bound",
         "dpo_step_vs_trl")

def test_run_all_tiny_runs_every_bench_and_repeats_every_goal():
    p = subprocess.run([sys.executable, str(ROOT/"bench"/"run_all.py"), "--tiny"], cwd=ROOT, capture_output=True, text=True,
                       timeout=1800, env=dict(os.environ, PYTHONPATH=str(ROOT), TQDM_DISABLE="1"))
    assert p.returncode == 0, (p.stdout + p.stderr)[-4000:]
    summary = p.stdout.split("\n=== goals\n")[-1]
    goals = re.findall(r"^GOAL (\S+) [0-9.]+ [0-9.]+ (?:PASS|FAIL)$", summary, re.M)
    assert goals == list(GOALS) and summary.rstrip().splitlines()[-1].startswith("GOAL dpo_step_vs_trl"), summary
    tok = re.search(r"tokens through the model: (\d+) by sequence, (\d+) with", p.stdout)   # the probe's floor
    assert tok and int(tok[1]) > int(tok[2]), p.stdout[-4000:]
    pad = re.search(r"with padding: (\d+) by sequence, (\d+) with the shared prefix", p.stdout)
    assert pad and int(pad[1]) >= int(tok[1]) and int(pad[2]) >= int(tok[2]), p.stdout[-4000:]


import bench_reference


def test_reference_bench_tiny_compares_the_two_passes(capsys):
    res = bench_reference.main(["--tiny"])
    out = capsys.readouterr().out
    assert res["pairs"] == 24 and res["by_pair_s"] > 0 and res["by_sequence_s"] > 0, out
    assert max(res["max_abs"][c] for c in ("ref_mean_logp_chosen", "ref_mean_logp_rejected")) < 1e-4, out   # same numbers
    assert res["max_rel_energy"] < 1e-4 and f"{res['ratio']:.2f} of the time" in out, out
