"Checks on the repository itself: the README is the walkthrough notebook, and the package metadata is what the README promises."
import configparser, subprocess, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

def test_readme_and_top_level_index_are_rendered_from_index_notebook():
    r = subprocess.run([sys.executable, str(ROOT/"tools"/"make_readme.py"), "--check"], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "README.md and index.ipynb match" in r.stdout, r.stdout

def test_top_level_index_is_the_walkthrough_for_colab():
    import json
    top, src = json.loads((ROOT/"index.ipynb").read_text()), json.loads((ROOT/"nbs"/"index.ipynb").read_text())
    assert [c["id"] for c in top["cells"]] == [c["id"] for c in src["cells"]]
    text = (ROOT/"index.ipynb").read_text()
    assert "colab.research.google.com/github/sage-nb/sage_nb/blob/main/index.ipynb" in text
    for img in __import__("re").findall(r"\]\((nbs/images/[^)]+)\)", text): assert (ROOT/img).exists(), img
    first_code = next("".join(c["source"]) for c in src["cells"] if c["cell_type"] == "code")
    assert first_code.startswith("try: import sage_nb") and "%pip install" in first_code   # a no-op where it is installed

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

def assert_curriculum_can_reach_its_last_stratum(c):
    "One stratum per level, and a refresh at step 1 plus one per later unlock fit in the run's steps."
    assert len(c.levels) == c.n_strata and c.steps // c.refresh_every >= c.n_strata + 1, (c.levels, c.n_strata, c.steps, c.refresh_every)

def test_fair_experiment_preset_meets_what_a_fair_comparison_needs():
    "The preset in experiments/ is a valid config and fixes what can be fixed before sampling (the pair budget is printed at run time)."
    from sage_nb.config import Config
    from sage_nb.data import make_problems
    c = Config.from_json(ROOT/"experiments"/"fair.json").validate()
    assert c.n_eval_problems >= 500 and 0 < c.eval_every <= 5 and 0 < c.eval_subset < c.n_eval_problems
    assert c.max_gold_pairs_per_problem <= 1 and c.snr_every and c.snr_every <= 5
    assert_curriculum_can_reach_its_last_stratum(c)
    ev = make_problems(c.n_eval_problems, levels=c.eval_levels or c.levels, split="eval", seed=c.data_seed)
    tr = make_problems(c.n_train_problems, levels=c.levels, seed=c.data_seed)
    assert len({p["question"] for p in ev}) == c.n_eval_problems and len({p["question"] for p in tr}) == c.n_train_problems
    assert not {p["question"] for p in ev} & {p["question"] for p in tr}
    script = (ROOT/"experiments"/"fair.sh").read_text()
    assert "experiments/fair.json" in script and "--label-noise 0.2" in script and "NOISY_SEEDS:-3" in script and "--target" in script
    for arm in ("sage", "uniform", "sage_random_order", "sage_no_filter", "sage_no_curriculum", "margin_greedy"): assert arm in script

def test_default_run_can_move_its_curriculum_and_caps_gold_pairs():
    "The default run (what `make run` trains) refreshes often enough to unlock every stratum and caps gold pairs at one a problem."
    from sage_nb.config import Config
    c = Config().validate()
    assert_curriculum_can_reach_its_last_stratum(c)
    assert c.max_gold_pairs_per_problem <= 1 and c.snr_every and c.snr_draws >= 1
    import json
    f = json.loads((ROOT/"experiments"/"fair.json").read_text())
    assert f["snr_draws"] >= 3 and f["snr_on_refresh"] is True and f["snr_every"] == f["refresh_every"]   # the method's probes

def test_regime_presets_and_script():
    "The data-limited preset differs from the fair one only in its budget, and regimes.sh runs every arm of the map."
    import json
    from sage_nb.config import Config
    fair, lim = (json.loads((ROOT/"experiments"/f).read_text()) for f in ("fair.json", "data_limited.json"))
    c = Config.from_json(ROOT/"experiments"/"data_limited.json").validate()
    assert {k for k in fair.keys() | lim.keys() if fair.get(k) != lim.get(k)} == {"n_train_problems", "steps"}
    assert c.n_train_problems < Config.from_json(ROOT/"experiments"/"fair.json").n_train_problems and c.steps * c.batch_size >= 240
    assert_curriculum_can_reach_its_last_stratum(c)
    script = (ROOT/"experiments"/"regimes.sh").read_text()
    for part in ("fair.json", "data_limited.json", "--label-noise 0.2", "SEEDS:-4", "NOISY_SEEDS:-3", "sage_robust", "margin_greedy",
                 "regime_map", "beats_both"):
        assert part in script, part
    assert "--no-sft-control" not in script           # every regime keeps its SFT-only control
