"The data-parallel benchmark runs both arms (1 process x 2 threads, 2 gloo processes x 1 thread) through the Trainer and prints its ratio."
import math, os, re, subprocess, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

def test_bench_ddp_tiny_prints_the_ratio():
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    p = subprocess.run([sys.executable, str(ROOT/"bench"/"bench_ddp.py"), "--tiny"], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, (p.stdout + p.stderr)[-4000:]
    out = p.stdout
    m = re.search(r"^RESULT ddp_2x1_vs_1x2 (\S+)$", out, re.M)
    assert m, out
    r = float(m.group(1))
    assert math.isfinite(r) and r > 0
    assert re.search(r"^fastest timed step: a \S+ s, b \S+ s", out, re.M)
    assert "losses of a and b agree" in out                  # same global batch: the two arms trained alike
    assert out.count("load at start:") == 1 and out.count("load at end:") == 1
    assert re.search(r"^a\. 1 process  x 2 threads: .* pairs/s", out, re.M)
    assert re.search(r"^b\. 2 processes x 1 thread : .* pairs/s", out, re.M)
