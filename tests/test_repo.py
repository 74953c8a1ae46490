"Checks on the repository itself: the README is the walkthrough notebook, and the package metadata is what the README promises."
import configparser, subprocess, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

def test_readme_is_rendered_from_index_notebook():
    r = subprocess.run([sys.executable, str(ROOT/"tools"/"make_readme.py"), "--check"], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr

def test_readme_starts_with_the_two_commands():
    head = (ROOT/"README.md").read_text()[:3000]
    assert "make run" in head and "make test" in head

def test_settings_declare_console_script_and_torch_range():
    cfg = configparser.ConfigParser(delimiters=["="]); cfg.read(ROOT/"settings.ini")
    d = cfg["DEFAULT"]
    assert d["console_scripts"].startswith("sage-nb=sage_nb.cli:main")
    from packaging.requirements import Requirement
    torch_req = next(Requirement(r) for r in d["requirements"].split() if r.startswith("torch"))
    assert torch_req.specifier.contains("2.13.0")

def test_every_module_has_a_notebook():
    mods = {p.stem for p in (ROOT/"sage_nb").glob("*.py") if not p.stem.startswith("_")}
    nbs = " ".join(p.read_text() for p in (ROOT/"nbs").glob("*.ipynb"))
    for m in mods: assert f"default_exp {m}" in nbs, m
