"""Run every benchmark and end with one line per goal, so a reader sees every goal at once.

    .venv/bin/python bench/run_all.py           # the embedded model (several minutes on 2 CPU cores)
    .venv/bin/python bench/run_all.py --tiny    # every bench in its --tiny mode (seconds each): checks they still run

Each bench prints its own measurements and, for each goal it measures, a line
`GOAL <name> <value> <target> PASS|FAIL`. This script runs them one after another (never two at once:
they would share the CPU and time each other), shows their output as it comes, and repeats every GOAL
line at the end, in the order of `GOALS` (one line each: a missing or extra goal is reported). It exits 1 when a bench
fails to run; a FAIL goal is a finding, not a crash.
"""
from __future__ import annotations
import argparse, subprocess, sys, time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHES = ["bench_rollout.py", "bench_dpo.py", "bench_scoring.py", "bench_snr_probe.py", "bench_selection.py"]
GOALS = ["selection_overhead", "snr_probe_share_of_run", "snr_probe_vs_token_floor", "greedy_eval_vs_bound", "sampling_vs_bound",
         "dpo_step_vs_trl"]

def in_goal_order(lines: list[str]) -> tuple[list[str], list[str]]:
    "(GOAL lines in `GOALS`' order, names that are missing or came more than once or are not in `GOALS`)."
    by = {}
    for l in lines: by.setdefault(l.split()[1], []).append(l)
    odd = [n for n in GOALS if len(by.get(n, [])) != 1] + [n for n in by if n not in GOALS]
    return [by[n][0] for n in GOALS if n in by], odd

def run_bench(script: str, tiny: bool) -> tuple[int, list[str], float]:
    "(exit code, GOAL lines, seconds) of one bench, its output streamed to ours."
    cmd = [sys.executable, str(HERE/script)] + (["--tiny"] if tiny else [])
    print(f"\n=== {' '.join(cmd[1:])}", flush=True)
    t0, goals = time.perf_counter(), []
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1) as p:
        for line in p.stdout:
            sys.stdout.write(line); sys.stdout.flush()
            if line.startswith("GOAL "): goals.append(line.rstrip())
    return p.returncode, goals, time.perf_counter() - t0

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny", action="store_true", help="each bench's --tiny mode")
    ap.add_argument("--only", nargs="*", default=None, help="bench file names to run (default: all)")
    a = ap.parse_args(argv)
    failed, goals = [], []
    for b in (a.only or BENCHES):
        rc, g, s = run_bench(b, a.tiny)
        goals += g
        if rc != 0: failed.append(f"{b} (exit {rc})")
        print(f"=== {b}: exit {rc}, {s:.0f} s", flush=True)
    print("\n=== goals")
    goals, odd = in_goal_order(goals)
    if a.only: odd = []                       # a subset of the benches measures a subset of the goals
    for g in goals: print(g)
    if odd: print("goals missing or repeated: " + ", ".join(odd))
    if failed: print("benches that did not finish: " + ", ".join(failed))
    return 1 if failed or odd else 0

if __name__ == "__main__":
    sys.exit(main())
