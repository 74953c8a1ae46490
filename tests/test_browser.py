"Render the HTML report in a real browser (Debian's chromium via Playwright) and check the plots drew."
import os, shutil
from pathlib import Path
import pytest
from sage_nb.runs import find_runs, load_run
from sage_nb.figures import compare_figure, margin_stability_figure, pool_dynamics_figure, snr_figure, training_figure
from sage_nb.report import write_report
from sage_nb.synthetic import synthetic_run

CHROMIUM = os.environ.get("SAGE_NB_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-quic",
        "--no-first-run", "--disable-component-update", "--disable-sync"]
OUT = Path(__file__).resolve().parents[1]/"test_outputs"

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                reason=f"no chromium at {CHROMIUM} (apt-get install -y chromium, or set SAGE_NB_CHROMIUM)")

@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        b.close()

def _open(browser, html_path, width=1300):
    page = browser.new_page(viewport={"width": width, "height": 900})
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(html_path.resolve().as_uri())
    page.wait_for_function("document.querySelectorAll('.js-plotly-plot .main-svg').length > 0", timeout=30_000)
    page.wait_for_timeout(300)
    return page, errors

def _traces_per_plot(page):
    "Per plot div (document order): its title and the number of SVG scatter traces drawn."
    return page.evaluate("""() => Array.from(document.querySelectorAll('.js-plotly-plot')).map(p => ({
        title: (p.querySelector('.gtitle') || {}).textContent || '',
        traces: p.querySelectorAll('.scatterlayer .trace').length,
        points: p.querySelectorAll('.scatterlayer .trace .points path').length}))""")

def _drawn(fig):
    "Traces plotly.js draws as SVG: the ones with data."
    return sum(1 for t in fig.data if t.x is not None and len(t.x))

def test_single_run_report_renders(browser, tmp_path):
    run = synthetic_run(tmp_path/"run", steps=30, seed=0)
    rep = write_report(run)          # hover text from the run's pair_table.parquet
    page, errors = _open(browser, rep)
    assert errors == []
    plots = _traces_per_plot(page)
    assert len(plots) == 4, plots
    r = load_run(run)
    want = [training_figure(r["metrics"], r["eval"]), snr_figure(r["snr"]),
            margin_stability_figure(r["pairs"], r["config"]), pool_dynamics_figure(r["events"], r["config"])]
    titles = ["Training", "Gradient SNR", "Margin vs stability", "Pool dynamics"]
    for p, f, t in zip(plots, want, titles):
        assert p["title"].startswith(t), (p, t)
        assert p["traces"] == _drawn(f), (t, p, [(x.name, len(x.x)) for x in f.data])
    margin, pool = plots[2], plots[3]
    assert margin["traces"] >= 4 and margin["points"] == r["pairs"]["pair_id"].nunique()   # one marker per pair
    n_unlock = sum(e["kind"] == "unlock" for e in r["events"])
    assert n_unlock >= 1
    assert page.locator(".js-plotly-plot").nth(3).locator(".scatterlayer .trace text").count() == n_unlock
    OUT.mkdir(exist_ok=True)
    page.screenshot(path=str(OUT/"report_single.png"), full_page=True)
    # hover over a scatter point shows the pair id and the prompt's start
    plot = page.locator(".js-plotly-plot").nth(2)
    plot.scroll_into_view_if_needed()
    box = plot.locator(".scatterlayer .trace .points path").first.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.wait_for_timeout(400)
    hover = plot.locator(".hoverlayer").text_content()
    assert "What is" in hover and "pair0" in hover and "stratum" in hover, hover
    page.close()

def test_multi_run_report_renders(browser, tmp_path):
    root = tmp_path/"compare"
    for sel in ("sage", "uniform", "margin_greedy"):
        for seed in (0, 1): synthetic_run(root/sel/f"seed{seed}", steps=20, seed=seed, selector=sel)
    rep = write_report(root)
    assert rep == root/"report.html"
    page, errors = _open(browser, rep)
    assert errors == []
    plots = _traces_per_plot(page)
    assert len(plots) == 1 + 4 * 6
    cmp = plots[0]
    # per selector: 4 mean lines + 4 min..max bands (2 seeds), plus the pooled uniform SNR line
    assert cmp["title"].startswith("Selectors compared") and cmp["traces"] == 3 * 8 + 1, cmp
    assert cmp["traces"] == _drawn(compare_figure([load_run(d) for d in find_runs(root)]))
    assert page.locator("table.tab").count() >= 2 + 2 * 6
    OUT.mkdir(exist_ok=True)
    page.screenshot(path=str(OUT/"report_compare.png"), full_page=False)
    page.close()
