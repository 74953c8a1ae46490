"""The live dashboard in real JupyterLab, driven through Debian's chromium: it renders, its plots fill in while a run
trains and fit their output area, its Stop button ends the run (with a checkpoint) while a cell waits in
`trainer.join()`, and a notebook executed with it saves small.

Screenshots go to test_outputs/ (jupyterlab_*.png); with SAGE_NB_SCREENSHOT=1 the live dashboard's is also saved as
nbs/images/dashboard.png (the picture the docs show)."""
import json, os, shutil, socket, subprocess, sys, tempfile, time, uuid
from pathlib import Path
from urllib.request import Request, urlopen
import pytest

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT/"test_outputs"
CHROMIUM = os.environ.get("SAGE_NB_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
TALL = 1700              # the whole dashboard in view, for its screenshot
WAIT_MS = 120_000       # any one condition in the page (generous: the machine may be shared and slow)
MAX_SAVED_MB = 7.0      # one plotly bundle (~5 MB) plus the widgets' state; four bundles would be ~20 MB

def _missing():
    if not Path(CHROMIUM).exists(): return f"no chromium at {CHROMIUM} (apt-get install -y chromium, or set SAGE_NB_CHROMIUM)"
    for mod in ("jupyterlab", "playwright", "jupyter_ui_poll"):
        try: __import__(mod)
        except ImportError: return f"{mod} is not installed (make setup installs the dev requirements)"

pytestmark = pytest.mark.skipif(_missing() is not None, reason=_missing() or "")

SETUP = '''import time
from sage_nb.config import Config
from sage_nb.models import tiny_model, chat_prompt
from sage_nb.data import make_pair, pairs_dataset
from sage_nb.reference import cache_reference
from sage_nb.trainer import Trainer
from sage_nb.dashboard import Dashboard
model, tok = tiny_model()
rows = [make_pair(chat_prompt(tok, f"What is {i+2}+{2*i+3}?"), f"#### {3*i+5}", f"#### {3*i+6}", problem_id=f"p{i}",
                  difficulty=i % 3, pass_rate=0.5) for i in range(12)]
cfg = Config(steps=STEPS, batch_size=2, refresh_every=2, snr_every=2, checkpoint_every=0, score_batch_size=4,
             max_length=64, max_prompt_length=48, selector="sage", seed=0)
pairs = cache_reference(model, tok, pairs_dataset(rows), cfg, progress=False)
class Pace:
    def on_step(self, m): time.sleep(PAUSE)'''
START = '''dash = Dashboard(cfg, total_steps=cfg.steps, min_interval=0.5, budget=0.5)
trainer = Trainer(model, tok, pairs, cfg, run_dir=RUN_DIR, callbacks=[dash, Pace()], progress=False)
dash.bind(trainer).show()
trainer.start();'''
JOIN = "summary = trainer.join()"

def _notebook(path, run_dir, steps, pause):
    import nbformat
    setup = SETUP.replace("STEPS", str(steps)).replace("PAUSE", str(pause))
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in
                                         (setup, START.replace("RUN_DIR", repr(str(run_dir))), JOIN)])
    nb.metadata["kernelspec"] = dict(name="python3", display_name="Python 3", language="python")
    nbformat.write(nb, path)

def _free_port():
    with socket.socket() as s: s.bind(("127.0.0.1", 0)); return s.getsockname()[1]

def _env(tmp):
    env = dict(os.environ, PYTHONPATH=str(ROOT), JUPYTER_CONFIG_DIR=str(tmp/"cfg"), JUPYTER_RUNTIME_DIR=str(tmp/"rt"),
               IPYTHONDIR=str(tmp/"ipy"), JUPYTER_PLATFORM_DIRS="1", JUPYTERLAB_SETTINGS_DIR=str(tmp/"settings"))
    env.pop("IN_TEST", None)
    return env

@pytest.fixture
def work():
    "A private folder for the server, the runs and the screenshots (pytest's own tmp folders can be pruned by other\
    pytest processes on the machine mid-run); the screenshots are copied to test_outputs/ at the end."
    d = Path(tempfile.mkdtemp(prefix="sage_nb_lab_"))
    OUT.mkdir(exist_ok=True)
    for f in OUT.glob("jupyterlab_*"): f.unlink()        # no failure.png left from an earlier run
    yield d
    for f in [*d.glob("*.png"), *d.glob("*.log")]: shutil.copy(f, OUT/f"jupyterlab_{f.name}")
    if not os.environ.get("SAGE_NB_KEEP"): shutil.rmtree(d, ignore_errors=True)

@pytest.fixture
def lab(work):
    "A JupyterLab server on a free port with a token, rooted in `work`; stopped with its kernels afterwards."
    tmp_path = work
    news = tmp_path/"settings"/"@jupyterlab"/"apputils-extension"/"notification.jupyterlab-settings"
    news.parent.mkdir(parents=True); news.write_text(json.dumps({"fetchNews": "false"}))   # no news toast over the page
    port, token = _free_port(), uuid.uuid4().hex
    log = open(tmp_path/"lab.log", "w")
    p = subprocess.Popen([sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}", "--ip=127.0.0.1",
                          f"--IdentityProvider.token={token}", "--allow-root", f"--ServerApp.root_dir={tmp_path}", "--ServerApp.password=",
                          f"--LabApp.workspaces_dir={tmp_path/'ws'}", "--LabApp.news_url=None",
                          "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
                         cwd=tmp_path, env=_env(tmp_path), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    def api(path, method="GET"):
        with urlopen(Request(base + path, method=method, headers={"Authorization": f"token {token}"}), timeout=10) as r:
            body = r.read(); return json.loads(body) if body else None
    t0 = time.time()
    while True:
        try: api("/api/status"); break
        except Exception:
            assert p.poll() is None and time.time() - t0 < 60, (tmp_path/"lab.log").read_text()[-3000:]
            time.sleep(0.3)
    try: yield dict(base=base, token=token, api=api, dir=tmp_path)
    finally:
        import psutil
        try:
            for k in api("/api/kernels"): api(f"/api/kernels/{k['id']}", "DELETE")
        except Exception: pass
        children = psutil.Process(p.pid).children(recursive=True) if p.poll() is None else []
        p.terminate()
        try: p.wait(20)
        except subprocess.TimeoutExpired: p.kill(); p.wait()
        for c in children:
            if c.is_running(): c.kill()
        log.close()

PLOTS_JS = """() => Array.from(document.querySelectorAll('.jp-OutputArea-output .js-plotly-plot')).map(p => {
    const xs = (p.data || []).flatMap(t => Array.from(t.x || []));
    const ys = (p.data || []).flatMap(t => Array.from(t.y || []));
    const svg = p.querySelector('.main-svg'), out = p.closest('.jp-OutputArea-output');
    return {points: xs.length, sig: JSON.stringify([xs, ys]).length + ':' + JSON.stringify(ys).slice(-40),
            svg: svg ? svg.getBoundingClientRect().width : 0, out: out.getBoundingClientRect().width,
            title: (p.querySelector('.gtitle') || {}).textContent || ''}; })"""

def _plots(page):
    "Per live plot (document order): points drawn (x values over all traces), a fingerprint of them, widths."
    return page.evaluate(PLOTS_JS)

def _wait_plots(page, cond: str, arg=None):
    "Wait until `cond` (a JS expression over `plots`, the list `_plots` returns, and `arg`) holds."
    page.wait_for_function(f"arg => {{ const plots = ({PLOTS_JS})(); return plots.length == 4 && ({cond}); }}", arg=arg,
                           timeout=WAIT_MS)

def _status(page): return page.locator(".jp-OutputArea-output .widget-html-content").first.inner_text()

def _check_fit(plots):
    assert len(plots) == 4, plots
    for p in plots: assert 0 < p["svg"] <= p["out"] + 1, ("plot wider than its output area", p)

def _executed_size(tmp):
    "Execute the same notebook (a short run) headless with nbconvert, widget state saved; its size in MB."
    nb = tmp/"executed.ipynb"; _notebook(nb, tmp/"run_nbconvert", steps=4, pause=0)
    r = subprocess.run([sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute", "--inplace",
                        "--ExecutePreprocessor.timeout=300", str(nb)], env=_env(tmp), capture_output=True, text=True, timeout=400)
    assert r.returncode == 0, r.stderr[-3000:]
    saved = json.loads(nb.read_text())
    state = saved["metadata"]["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    assert len(state) >= 4 and (tmp/"run_nbconvert"/"summary.json").exists()
    return nb.stat().st_size / 1e6

def test_dashboard_in_jupyterlab(lab, work):
    tmp_path = work
    from playwright.sync_api import sync_playwright
    run_dir = tmp_path/"run"
    _notebook(tmp_path/"dash.ipynb", run_dir, steps=400, pause=0.2)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": TALL})
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        try: _drive(page, lab, tmp_path, errors)
        except BaseException:
            page.screenshot(path=str(tmp_path/"failure.png")); raise
        finally: browser.close()
    _check_run(run_dir)
    if os.environ.get("SAGE_NB_SCREENSHOT") == "1":
        shutil.copy(tmp_path/"dashboard_wide.png", ROOT/"nbs"/"images"/"dashboard.png")
    size = _executed_size(tmp_path)
    print(f"nbconvert-executed notebook with the dashboard: {size:.1f} MB")
    assert size < MAX_SAVED_MB, size

def _check_run(run_dir):
    "Stopped early, with a checkpoint at the step it stopped."
    summary = json.loads((run_dir/"summary.json").read_text())
    assert summary["stopped"] and 0 < summary["steps"] < 400, summary
    assert (run_dir/"checkpoints"/f"step-{summary['steps']}").is_dir(), list((run_dir/"checkpoints").iterdir())

def _step(status: str) -> int: return int(status.split("step")[1].split("/")[0])

def _drive(page, lab, tmp_path, errors):
    "Run the notebook in Lab, watch the plots fill in, check they fit, press Stop while the join cell waits."
    page.goto(f"{lab['base']}/lab/workspaces/{uuid.uuid4().hex[:8]}/tree/dash.ipynb?reset&token={lab['token']}")
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=WAIT_MS)
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=WAIT_MS)
    page.wait_for_selector(".jp-StatusBar-Widget:has-text('Idle')", timeout=WAIT_MS)
    prompt = lambda i: page.locator(".jp-Cell").nth(i).locator(".jp-InputPrompt")
    for attempt in range(3):          # Run All before the kernel's connection is ready does nothing: try again
        page.locator(".lm-MenuBar-item", has_text="Run").first.click()
        page.locator(".lm-Menu-item:visible", has_text="Run All Cells").first.click()
        try: page.wait_for_function("""() => /\\[(\\*|\\d+)\\]/.test(document.querySelector('.jp-Cell .jp-InputPrompt').textContent)""",
                                    timeout=20_000); break
        except Exception:
            if attempt == 2: raise
    # widgets render: the Stop button, the status line, four plots
    stop = page.locator(".jp-OutputArea-output button.jupyter-button", has_text="Stop")
    stop.wait_for(timeout=WAIT_MS)
    setup_out = page.locator(".jp-Cell").nth(0).locator(".jp-OutputArea")
    assert "Warning" not in setup_out.inner_text(), setup_out.inner_text()    # the setup cell runs quietly
    page.wait_for_function("document.querySelectorAll('.jp-OutputArea-output .js-plotly-plot .main-svg').length >= 4",
                           timeout=WAIT_MS)
    page.wait_for_function("""() => { const s = document.querySelector('.jp-OutputArea-output .widget-html-content');
                                      return s && /step<\\/b> [1-9]/.test(s.innerHTML); }""", timeout=WAIT_MS)
    # the plots fill in and the status advances while the run trains (and the join cell waits)
    assert "[*]" in prompt(2).inner_text(), prompt(2).inner_text()
    first, status1 = _plots(page), _status(page)
    _wait_plots(page, "plots.every((b, i) => b.points > 0 && b.points >= arg[i].points && b.sig != arg[i].sig) && "
                      "plots.filter((b, i) => b.points > arg[i].points).length >= 3", first)
    second, status2 = _plots(page), _status(page)
    for a, b in zip(first, second):
        assert b["points"] > 0 and b["points"] >= a["points"] and b["sig"] != a["sig"], (a, b)   # drawn, and moving
    assert sum(b["points"] > a["points"] for a, b in zip(first, second)) >= 3, (first, second)  # time series grow
    assert _step(status2) > _step(status1), (status1, status2)
    _check_fit(second)
    page.wait_for_function("""() => { const s = document.querySelector('.jp-OutputArea-output .widget-html-content');
                                      const m = s && s.textContent.match(/step (\\d+)/); return m && +m[1] >= 24; }""",
                           timeout=WAIT_MS)   # a few refreshes in, for a fuller picture
    page.mouse.move(0, TALL - 1)              # no hover toolbar over a plot
    dash_out = page.locator(".jp-OutputArea-output", has=page.locator(".js-plotly-plot")).first
    dash_out.screenshot(path=str(tmp_path/"dashboard_wide.png"))
    # a narrow window (Colab's column is about this wide): the plots stack and refit
    page.set_viewport_size({"width": 760, "height": TALL})
    _wait_plots(page, "plots.every(p => p.out < 760 && 0 < p.svg && p.svg <= p.out + 1)")
    _check_fit(_plots(page))
    dash_out.screenshot(path=str(tmp_path/"dashboard_narrow.png"))
    page.set_viewport_size({"width": 1400, "height": TALL})
    _wait_plots(page, "plots.every(p => p.out > 760 && 0 < p.svg && p.svg <= p.out + 1)")
    # Stop while the third cell waits in trainer.join(): the run ends early, with a checkpoint
    assert "[*]" in prompt(2).inner_text(), prompt(2).inner_text()
    stop.click()
    page.wait_for_function("""() => { const s = document.querySelector('.jp-OutputArea-output .widget-html-content');
                                      return s && s.textContent.includes('finished (stopped)'); }""", timeout=WAIT_MS)
    page.wait_for_function("""() => Array.from(document.querySelectorAll('.jp-OutputArea-output button.jupyter-button'))
                                 .some(b => b.textContent.trim() == 'Stopped' && b.disabled)""", timeout=WAIT_MS)
    page.wait_for_function("""() => { const p = document.querySelectorAll('.jp-Cell .jp-InputPrompt')[2];
                                      return p && /\\[\\d+\\]/.test(p.textContent); }""", timeout=WAIT_MS)
    assert (tmp_path/"run"/"summary.json").exists()
    page.screenshot(path=str(tmp_path/"lab.png"))
    assert errors == [], errors
