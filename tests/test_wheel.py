"""Install as users do: build the wheel, install it in a fresh virtualenv, and use it from outside the repository.

The fresh environment gets its dependencies (torch, transformers, ...) from the project's own environment through
a `.pth` path line, so nothing is downloaded (an unpinned torch would pull a multi-GB CUDA build). A plain path
line does not run the `.pth` files of that folder, so the project's editable install of sage_nb stays invisible:
every import below must come from the wheel, and the tests check that it does."""
import json, os, subprocess, sys, sysconfig, tarfile, zipfile
from pathlib import Path
import pytest

REPO = Path(__file__).resolve().parents[1]
ARGS = ["--n-train-problems", "6", "--n-eval-problems", "4", "--k", "2", "--max-new-tokens", "8", "--steps", "2",
        "--batch-size", "2", "--refresh-every", "1", "--snr-every", "1", "--checkpoint-every", "1"]

def sh(args, cwd, env=None, timeout=600):
    "Run a command; on failure show its output's end."
    r = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, f"{args} exited {r.returncode}\n{r.stdout[-2000:]}\n{r.stderr[-4000:]}"
    return r.stdout

@pytest.fixture(scope="module")
def dist(tmp_path_factory):
    "The sdist and the wheel, built the way `make dist` builds them (sdist first, wheel from the sdist)."
    out = tmp_path_factory.mktemp("dist")
    sh([sys.executable, "-m", "build", "--no-isolation", "--outdir", out, REPO], cwd=REPO)
    (sdist,), (wheel,) = out.glob("sage_nb-*.tar.gz"), out.glob("sage_nb-*.whl")
    return sdist, wheel

def test_wheel_holds_every_module_and_no_notebooks_or_tests(dist):
    "A module left out of the wheel would only fail for users, never in the repository."
    sdist, wheel = dist
    names = zipfile.ZipFile(wheel).namelist()
    assert {n for n in names if n.startswith("sage_nb/")} == {f"sage_nb/{p.name}" for p in (REPO/"sage_nb").glob("*.py")}
    assert not [n for n in names if n.endswith(".ipynb") or n.split("/")[0] in ("tests", "nbs", "tools", "bench")]
    ep = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith(".dist-info/entry_points.txt"))).decode()
    assert "sage-nb = sage_nb.cli:main" in ep
    # setup.py reads settings.ini, so the sdist (what pip builds from when there is no wheel) must carry it
    assert {"settings.ini", "setup.py", "README.md"} <= {Path(n).name for n in tarfile.open(sdist).getnames()}

def reuse_converted_default_model(cache):
    "Link the already converted embedded model into a fresh cache: its tokenizer is needed, its conversion is slow."
    from sage_nb.models import cache_dir, DEFAULT_NAME
    src = cache_dir()/DEFAULT_NAME
    cache.mkdir(parents=True, exist_ok=True)
    if (src/"config.json").exists() and (src/"model.safetensors").exists(): (cache/DEFAULT_NAME).symlink_to(src)

@pytest.fixture(scope="module")
def venv(dist, tmp_path_factory):
    "(python, bin folder, env, work dir): a fresh virtualenv holding only the wheel, run with cwd outside the repo."
    root = tmp_path_factory.mktemp("venv")
    d, work = root/"venv", root/"work"; work.mkdir()
    bin_dirs = {str(Path(sys.executable).parent), str(Path(sys.prefix)/"bin")}
    path = os.pathsep.join([str(d/"bin")] + [p for p in os.environ["PATH"].split(os.pathsep) if p not in bin_dirs])
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env.update(PATH=path, SAGE_NB_CACHE=str(root/"cache"), HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    reuse_converted_default_model(root/"cache")
    sh([sys.executable, "-m", "venv", d], cwd=work, env=env)
    py = d/"bin"/"python"
    # the wheel alone, from the file: no index, so nothing can be downloaded
    sh([py, "-m", "pip", "install", "-q", "--no-index", "--no-deps", dist[1]], cwd=work, env=env)
    site = Path(sh([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=work, env=env).strip())
    (site/"_sage_nb_test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return py, d/"bin", env, work

def test_every_module_imports_from_the_fresh_venv(venv):
    "Each module is imported from the installed wheel, not from the repository or the project's editable install."
    py, _, env, work = venv
    code = ("import importlib, pkgutil, sage_nb\n"
            "print(sage_nb.__file__)\n"
            "for m in pkgutil.iter_modules(sage_nb.__path__): print(importlib.import_module('sage_nb.' + m.name).__file__)\n")
    files = sh([py, "-c", code], cwd=work, env=env).split()
    venv_dir = py.parent.parent
    assert len(files) == len(list((REPO/"sage_nb").glob("*.py")))      # __init__.py, then every other module
    for f in files: assert Path(f).is_relative_to(venv_dir), f

def test_declared_requirements_are_met(venv):
    "Every requirement the wheel declares is installed at a version it accepts (what pip would have to resolve)."
    py, _, env, work = venv
    code = ("from importlib.metadata import distribution, version, PackageNotFoundError\n"
            "from packaging.requirements import Requirement\n"
            "reqs = [Requirement(r) for r in distribution('sage_nb').requires]\n"
            "for r in reqs:\n"
            "    if r.marker and not r.marker.evaluate({'extra': ''}): continue\n"
            "    try: v = version(r.name)\n"
            "    except PackageNotFoundError: v = None\n"
            "    print(r.name, v, v is not None and r.specifier.contains(v, prereleases=True))\n")
    rows = [l.split() for l in sh([py, "-c", code], cwd=work, env=env).splitlines()]
    assert {r[0] for r in rows} >= {"torch", "transformers", "peft"}
    assert all(ok == "True" for _, _, ok in rows), rows

def test_console_script_help(venv):
    "The `sage-nb` entry point pip wrote into the venv runs and lists its commands."
    _, bin_dir, env, work = venv
    out = sh([bin_dir/"sage-nb", "--help"], cwd=work, env=env)
    for cmd in ("run", "eval", "report", "compare"): assert cmd in out

def test_tiny_run_writes_a_run_folder_and_report(venv):
    "A tiny end-to-end `sage-nb run` on a local random-init model and a local problem file, from the installed wheel."
    py, bin_dir, env, work = venv
    model, probs, out = work/"tiny", work/"gsm.jsonl", work/"run"
    sh([py, "-c", "import sys; from sage_nb.models import tiny_model; m, t = tiny_model(lora=False, seed=1); "
                  "m.save_pretrained(sys.argv[1]); t.save_pretrained(sys.argv[1])", model], cwd=work, env=env)
    probs.write_text("".join(json.dumps({"question": f"What is {i}+{i+1}?", "answer": f"#### {2*i+1}"}) + "\n"
                             for i in range(20)))
    sh([bin_dir/"sage-nb", "run", "--model", model, "--problems", probs, "--out-dir", out, *ARGS], cwd=work, env=env)
    s = json.loads((out/"summary.json").read_text())
    assert s["steps"] == 2 and (out/"report.html").stat().st_size > 0
    assert (out/"adapter"/"adapter_config.json").exists()
