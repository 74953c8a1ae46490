"""Real data end to end, on local files in the exact shapes of the hub sets users name: openai/gsm8k (main and
socratic), HuggingFaceH4/MATH-500, EleutherAI/hendrycks_math, TRL standard, conversational and implicit-prompt
preference sets (UltraFeedback-binarized-like rows with scores), and save_to_disk DatasetDicts; then the command
line on a tiny model: train on one source and evaluate on exactly another, train on a preference set, evaluate a run."""
import json
import datasets
import pandas as pd
import pytest
from sage_nb import data, sources
from sage_nb.answers import INSTRUCTIONS, check_answer
from sage_nb.cli import main
from sage_nb.config import Config
from sage_nb.datafiles import DataError
from sage_nb.models import chat_prompt, load_tokenizer
from sage_nb.pipeline import cache_key, check_inputs, get_problems
from sage_nb.runlog import read_jsonl

# --- rows in the hub sets' exact shapes -------------------------------------------------------------------------
def gsm8k_main(i):
    return {"question": f"Natalia sold clips to {i + 40} of her friends in April, and then she sold half as many clips in May. "
                        "How many clips did Natalia sell altogether in April and May?",
            "answer": f"Natalia sold {i + 40}/2 = <<{i + 40}/2={(i + 40) / 2:g}>>{(i + 40) / 2:g} clips in May.\n"
                      f"Natalia sold {i + 40}+{(i + 40) / 2:g} = <<{i + 40}+{(i + 40) / 2:g}={1.5 * (i + 40):g}>>{1.5 * (i + 40):g} "
                      f"clips altogether in April and May.\n#### {1.5 * (i + 40):g}"}

def gsm8k_socratic(i):
    r = gsm8k_main(i)
    return {**r, "answer": f"How many clips did Natalia sell in May? ** " + r["answer"].replace("\nNatalia sold ", "\nHow many clips "
            "did Natalia sell altogether in April and May? ** Natalia sold ", 1)}

MATH500 = [  # problem, solution, answer, subject, level (a number), unique_id; one solution without \boxed{}
    {"problem": "Simplify $\\sqrt{12}$.", "solution": "We have $\\sqrt{12} = \\sqrt{4 \\cdot 3} = 2\\sqrt{3}$.",
     "answer": "2\\sqrt{3}", "subject": "Algebra", "level": 2, "unique_id": "test/algebra/1.json"},
    {"problem": "Solve $|x - 5/2| \\le 9/2$.", "solution": "So $-2 \\le x \\le 7$, i.e. $x \\in \\boxed{[-2,7]}$.",
     "answer": "[-2,7]", "subject": "Intermediate Algebra", "level": 4, "unique_id": "test/intermediate_algebra/2.json"},
    {"problem": "What is $\\frac{1}{2} + \\frac{1}{4}$?", "solution": "It is $\\boxed{\\frac{3}{4}}$.", "answer": "\\frac{3}{4}",
     "subject": "Prealgebra", "level": 1, "unique_id": "test/prealgebra/3.json"},
    {"problem": "What is the area of a circle of radius 1?", "solution": "The area is $\\pi r^2 = \\boxed{\\pi}$.", "answer": "\\pi",
     "subject": "Geometry", "level": 1, "unique_id": "test/geometry/4.json"},
]

def hendrycks(i, split):
    return {"problem": f"Compute ${i} + \\frac{{1}}{{2}}$ ({split}).", "level": f"Level {1 + i % 5}", "type": "Algebra",
            "solution": f"${i} + \\frac{{1}}{{2}} = \\boxed{{\\frac{{{2 * i + 1}}}{{2}}}}$."}

SYS = {"role": "system", "content": "You are a careful mathematician."}
def user(q): return {"role": "user", "content": q}
def asst(a): return {"role": "assistant", "content": a}
STANDARD = [{"prompt": f"What is {i} + {i}?", "chosen": f"{i} + {i} = {2 * i}\n#### {2 * i}", "rejected": f"#### {2 * i + 1}"} for i in range(6)]
CONVERSATIONAL = [{"prompt": [SYS, user(r["prompt"])], "chosen": [asst(r["chosen"])], "rejected": [asst(r["rejected"])]} for r in STANDARD]
IMPLICIT = [{"chosen": [user(r["prompt"]), asst(r["chosen"])], "rejected": [user(r["prompt"]), asst(r["rejected"])],
             "score_chosen": 8.0, "score_rejected": 2.5} for r in STANDARD]
ULTRAFEEDBACK = [{"prompt": r["prompt"], "prompt_id": f"{i:04x}", **imp, "messages": imp["chosen"]}
                 for i, (r, imp) in enumerate(zip(STANDARD, IMPLICIT))]

def jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows)); return str(path)

@pytest.fixture(scope="module")
def files(tmp_path_factory):
    "Local stand-ins for the hub sets: the hub id each replaces -> a local path of the same shape."
    d = tmp_path_factory.mktemp("real")
    f = dict(gsm_train=jsonl(d/"gsm8k_train.jsonl", [gsm8k_main(i) for i in range(12)]),
             gsm_test=jsonl(d/"gsm8k_test.jsonl", [gsm8k_main(100 + i) for i in range(6)]),
             socratic=jsonl(d/"gsm8k_socratic.jsonl", [gsm8k_socratic(i) for i in range(6)]),
             math500=jsonl(d/"math500_test.jsonl", MATH500),
             standard=jsonl(d/"standard.jsonl", STANDARD), conversational=jsonl(d/"conversational.jsonl", CONVERSATIONAL),
             implicit=jsonl(d/"implicit.jsonl", IMPLICIT), ultrafeedback=jsonl(d/"ultrafeedback.jsonl", ULTRAFEEDBACK))
    datasets.DatasetDict(train=datasets.Dataset.from_list([gsm8k_main(i) for i in range(12)]),
                         test=datasets.Dataset.from_list([gsm8k_main(100 + i) for i in range(6)])).save_to_disk(str(d/"gsm8k_main"))
    datasets.DatasetDict(test=datasets.Dataset.from_list(MATH500)).save_to_disk(str(d/"math500"))
    datasets.DatasetDict(train=datasets.Dataset.from_list([hendrycks(i, "train") for i in range(10)]),
                         test=datasets.Dataset.from_list([hendrycks(i, "test") for i in range(5)])).save_to_disk(str(d/"hendrycks_algebra"))
    datasets.DatasetDict(train_prefs=datasets.Dataset.from_list(ULTRAFEEDBACK),
                         test_prefs=datasets.Dataset.from_list(ULTRAFEEDBACK[:2])).save_to_disk(str(d/"ultrafeedback_binarized"))
    f.update(gsm_dict=str(d/"gsm8k_main"), math500_dict=str(d/"math500"), hendrycks=str(d/"hendrycks_algebra"),
             uf_dict=str(d/"ultrafeedback_binarized"))
    return f

@pytest.fixture(scope="module")
def tok(): return load_tokenizer()

@pytest.fixture(autouse=True)
def offline(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1"); monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("SAGE_NB_CACHE", str(tmp_path_factory.getbasetemp()/"cache"))

# --- answers (the checker, formats, gold solutions) -------------------------------------------------------------
def test_checker_reads_whole_expressions():
    assert check_answer("#### \\frac{3}{4}", "\\frac{3}{4}") and check_answer("#### [-2,7]", "[-2,7]")
    assert check_answer("#### 2\\sqrt{3}", "2\\sqrt{3}") and not check_answer("#### \\frac{3}{4}", "3")
    assert check_answer("so $\\boxed{(1, 2)}$", "(1,2)") and check_answer("#### \\pi", "\\pi")
    assert not check_answer("#### 2\\sqrt{3}", "2") and not check_answer("#### [-2,7]", "-2")

def test_embedded_run_keeps_its_cache_key_and_prompts():
    assert cache_key(Config()) == "1e791fd17449"
    assert INSTRUCTIONS["####"] == "\nGive the final answer as '#### <number>'."
    ps, instruction = data.prompt_setup(get_problems(Config(n_eval_problems=3), "eval"))
    assert instruction == INSTRUCTIONS["####"] and all("answer_format" not in p for p in ps)

@pytest.mark.parametrize("kind", ["gsm_train", "socratic"])
def test_gsm8k_shapes_keep_hash_format(files, kind):
    ps = data.read_problems(files[kind])
    assert all(p["answer_format"] == "####" and p["solution"].rstrip().endswith(f"#### {p['answer']}") for p in ps)
    assert all("<<" not in p["solution"] and check_answer(p["solution"], p["answer"]) for p in ps)
    assert data.prompt_setup(ps)[1] == INSTRUCTIONS["####"]

def test_math500_uses_its_answer_column_and_boxed_format(files):
    ps = data.read_problems(files["math500"], "eval")
    assert [p["problem_id"] for p in ps] == [r["unique_id"] for r in MATH500]
    assert [p["answer"] for p in ps] == ["2\\sqrt{3}", "[-2,7]", "\\frac{3}{4}", "\\pi"]     # row 0 has no \boxed{}
    assert all(p["answer_format"] == "boxed" and check_answer(p["solution"], p["answer"]) for p in ps)
    assert ps[1]["solution"] == MATH500[1]["solution"]                                      # MATH gold solutions keep \boxed{}
    assert data.prompt_setup(ps)[1] == INSTRUCTIONS["boxed"]
    forced = data.read_problems(files["math500"], "eval", answer_format="####")
    assert all(p["solution"].endswith(f"#### {p['answer']}") for p in forced)

def test_hendrycks_math_folder_levels_and_splits(files):
    tr, ev = get_problems(Config(problems=files["hendrycks"], n_train_problems=100), "train"), get_problems(
        Config(problems=files["hendrycks"], n_eval_problems=100), "eval")
    assert (len(tr), len(ev)) == (10, 5)                              # train split to train, test split to evaluate
    assert all("(train)" in p["question"] for p in tr) and all("(test)" in p["question"] for p in ev)
    assert sorted({p["level"] for p in tr}) == [1, 2, 3, 4, 5] and all(p["answer_format"] == "boxed" for p in tr)

# --- sources: splits, roles, errors -----------------------------------------------------------------------------
def test_one_source_per_role_is_used_whole(files):
    c = Config(problems=files["gsm_train"], eval_problems=files["math500"], n_train_problems=100, n_eval_problems=100)
    assert len(get_problems(c, "train")) == 12                        # no hash split: the train file is used whole
    assert sorted(p["problem_id"] for p in get_problems(c, "eval")) == sorted(r["unique_id"] for r in MATH500)
    # a source with one split serves any role whole (MATH-500 has only test)
    assert len(get_problems(Config(problems=files["math500_dict"], eval_problems=files["gsm_test"], n_train_problems=100), "train")) == 4

def test_one_source_for_both_roles_is_hash_split_and_says_so(files):
    plan = sources.plan_problems(files["gsm_train"])
    assert plan["hash"] and "one source serves both roles" in plan["note"]
    c = Config(problems=files["gsm_train"], n_train_problems=100, n_eval_problems=100)
    tr, ev = get_problems(c, "train"), get_problems(c, "eval")
    assert len(tr) + len(ev) == 12 and not {p["question"] for p in tr} & {p["question"] for p in ev}
    plan = sources.plan_problems(files["gsm_dict"])                   # a DatasetDict with train and test: its own splits
    assert not plan["hash"] and plan["eval"][1] == "test"
    assert len(get_problems(Config(problems=files["gsm_dict"], n_eval_problems=100), "eval")) == 6

def test_split_expressions_and_errors_name_the_choices(files):
    assert len(get_problems(Config(problems=files["gsm_dict"] + "@train[:5]", eval_problems=files["math500"], n_train_problems=100), "train")) == 5
    with pytest.raises(DataError, match=r"no split 'validation'; its splits: train, test"):
        check_inputs(Config(problems=files["gsm_dict"] + "@validation"))
    with pytest.raises(DataError, match=r"no 'train' split to read.*its splits: train_prefs, test_prefs"):
        check_inputs(Config(pairs=files["uf_dict"]), tok := load_tokenizer())
    with pytest.raises(DataError, match="no row has field"):
        check_inputs(Config(eval_problems=files["standard"]))

def test_hub_config_errors_name_the_configs(monkeypatch):
    "The hub path is datasets' own; here its answers are stubbed so that the message can be checked offline."
    monkeypatch.setattr(datasets, "get_dataset_config_names", lambda name: ["main", "socratic"])
    for bad, msg in (("openai/gsm8k", r"several configs; name one as openai/gsm8k:CONFIG \(e.g. openai/gsm8k:main\); its configs: main, socratic"),
                     ("openai/gsm8k:mian@train", r"has no config 'mian'; its configs: main, socratic")):
        with pytest.raises(DataError, match=msg) as e: sources.split_names(bad)
        assert "offline" not in str(e.value)

def test_levels_with_another_source_is_an_error(files):
    with pytest.raises(ValueError, match="chooses among the embedded levels"):
        check_inputs(Config(problems=files["gsm_train"], levels=(0,)))

# --- preference sets --------------------------------------------------------------------------------------------
def test_every_trl_shape_gives_the_same_pairs(files, tok):
    std = data.load_preferences(files["standard"], tok)[0]
    assert std["prompt"][0] == chat_prompt(tok, "What is 0 + 0?")          # used as given: no instruction added
    for k in ("implicit", "ultrafeedback"):
        got = data.load_preferences(files[k], tok)[0]
        assert got["prompt"] == std["prompt"] and got["chosen"] == std["chosen"] and got["rejected"] == std["rejected"], k
    conv = data.load_preferences(files["conversational"], tok)[0]
    assert conv["prompt"][0] == tok.apply_chat_template(CONVERSATIONAL[0]["prompt"], tokenize=False, add_generation_prompt=True)
    assert "careful mathematician" in conv["prompt"][0] and conv["chosen"] == std["chosen"]
    split = data.load_preferences(files["uf_dict"] + "@test_prefs", tok)[0]
    assert len(split) == 2 and split["prompt"] == std["prompt"][:2]

def test_column_mapping_and_bad_turns(files, tok, tmp_path):
    mapped = jsonl(tmp_path/"mapped.jsonl", [{"instruction": r["prompt"], "good": r["chosen"], "bad": r["rejected"]} for r in STANDARD])
    a = data.load_preferences(mapped, tok, columns="prompt=instruction,chosen=good,rejected=bad")[0]
    assert a["pair_id"] == data.load_preferences(files["standard"], tok)[0]["pair_id"]
    rows = [dict(r) for r in CONVERSATIONAL]; rows[3] = {**rows[3], "chosen": [asst("4"), user("are you sure?")]}
    p = jsonl(tmp_path/"turns.jsonl", rows)
    with pytest.raises(DataError, match=rf"{p} line 4: field 'chosen' does not end with an assistant turn"):
        data.load_preferences(p, tok)
    with pytest.raises(DataError, match="maps column"): data.load_preferences(files["standard"], tok, columns="prompt=instruction")

def test_strata_without_difficulty_come_from_reference_margins(files, tok):
    pairs = data.load_preferences(files["implicit"], tok)[0]
    assert not data.has_difficulty(pairs)
    pairs = pairs.add_column("ref_logp_chosen", [-float(i) for i in range(6)]).add_column("ref_logp_rejected", [-3.0] * 6)
    said = []
    s = data.pair_strata(pairs, "auto", 3, said.append)
    assert sorted(set(s["difficulty"])) == [0, 1, 2] and "6 pairs carry no difficulty" in said[0]

# --- the command line on a tiny model ---------------------------------------------------------------------------
TINY = ["--steps", "2", "--batch-size", "2", "--n-train-problems", "4", "--n-eval-problems", "3", "--k", "2",
        "--max-new-tokens", "8", "--refresh-every", "1", "--snr-every", "0", "--checkpoint-every", "0", "--max-length", "256",
        "--max-prompt-length", "128"]

def test_train_on_gsm8k_evaluate_on_math500(files, tiny_dir, tmp_path, capsys):
    out = tmp_path/"run"
    main(["run", "--model", str(tiny_dir), "--problems", files["gsm_train"], "--eval-problems", files["math500"],
          "--out-dir", str(out), *TINY])
    err = capsys.readouterr().err
    assert "held-out problems from " + files["math500"] in err, err
    train_ids = {p["problem_id"] for p in data.read_problems(files["gsm_train"])}
    table = pd.read_parquet(out/"pair_table.parquet")
    assert len(table) and set(table.problem_id) <= train_ids                  # trained on the GSM8K file only
    evals = read_jsonl(out/"eval.jsonl")
    math_levels = {str(r["level"]) for r in MATH500}
    assert all(r["n"] == 3 and set(r["by_level"]) <= math_levels for r in evals)   # evaluated on MATH-500 only
    cfg = json.loads((out/"config.json").read_text())
    assert cfg["eval_problems"] == files["math500"] and cfg["problems"] == files["gsm_train"]
    # sage-nb eval RUN reproduces the run's final accuracy on the same problems
    from sage_nb.pipeline import eval_adapter
    res = eval_adapter(out, progress=False)
    assert (res["accuracy"], res["correct"]) == (evals[-1]["accuracy"], evals[-1]["correct"])
    # --n-eval-problems 2: two of the run's own problems, the level-balanced subset of its three
    from sage_nb.evaluate import balanced_subset
    ps = get_problems(Config.from_json(out/"config.json"), "eval")
    two = eval_adapter(out, overrides=dict(n_eval_problems=2), progress=False)
    assert two["n"] == 2 and two["correct"] == [evals[-1]["correct"][i] for i in balanced_subset(ps, 2)]
    main(["eval", str(out), "--n-eval-problems", "3"])
    assert "held-out accuracy" in capsys.readouterr().out
    main(["eval", str(out), "--base", "--eval-problems", files["gsm_test"], "--n-eval-problems", "2"])
    o = capsys.readouterr().out
    assert "base model" in o and "/2) on " + files["gsm_test"] in o, o

def test_preference_set_with_implicit_prompt_trains(files, tiny_dir, tmp_path, capsys):
    out = tmp_path/"prefs"
    main(["run", "--model", str(tiny_dir), "--pairs", files["implicit"], "--eval-problems", files["math500"],
          "--out-dir", str(out), *TINY])
    err = capsys.readouterr().err
    assert "strata from the reference model's margins" in err, err
    s = json.loads((out/"summary.json").read_text())
    assert s["steps"] == 2 and all(r["n"] == 3 for r in read_jsonl(out/"eval.jsonl"))
    assert set(pd.read_parquet(out/"pair_table.parquet").difficulty) - {0, 1, 2} == set()

def test_pairs_without_an_eval_source_say_what_they_evaluate_on(files, monkeypatch, capsys):
    import sage_nb.models as models
    def no_model(*a, **k): raise AssertionError("the model must not load")
    monkeypatch.setattr(models, "load_policy", no_model)
    with pytest.raises(SystemExit): main(["run", "--pairs", files["standard"], "--n-eval-problems", "2", "--selector", "sagee"])
    err = capsys.readouterr().err
    assert "unknown selector 'sagee' (did you mean 'sage'?)" in err and "Traceback" not in err, err
    check_inputs(Config(pairs=files["standard"], n_eval_problems=2))
    assert "--pairs without --eval-problems: evaluating on 2 embedded problems of levels 4,5,6" in capsys.readouterr().err

# --- command-line names -----------------------------------------------------------------------------------------
def test_trl_names_are_accepted_and_differences_refused(capsys):
    from sage_nb.cli import build_parser, config_from_args
    ns = build_parser().parse_args(["run", "--learning_rate", "1e-4", "--max_steps", "7", "--lr_scheduler_type", "linear",
                                    "--output_dir", "o", "--rpo_alpha", "0", "--model_name_or_path", "m", "--model_revision", "v2",
                                    "--warmup_steps", "1", "--loss_type", "ipo", "--max_prompt_length", "64", "--lora_r", "8",
                                    "--trust_remote_code", "--gradient_checkpointing", "false", "--n_eval_problems", "5"])
    c = config_from_args(ns)
    assert (c.lr, c.steps, c.scheduler, c.out_dir, c.alpha_nll, c.model, c.revision, c.warmup_steps, c.loss_type,
            c.max_prompt_length, c.lora_r, c.trust_remote_code, c.gradient_checkpointing, c.n_eval_problems) == (
        1e-4, 7, "linear", "o", 0.0, "m", "v2", 1, "ipo", 64, 8, True, "false", 5)
    for argv, msg in ((["run", "--per_device_train_batch_size", "4"], "is not accepted: --batch-size is the global number"),
                      (["run", "--gradient-accumulation-steps", "4"], "--grad-accum splits it into micro-batches"),
                      (["run", "--trust_remote_code", "maybe"], "--trust-remote-code 'maybe': expected true or false")):
        with pytest.raises(SystemExit) as e: main(argv)
        assert e.value.code == 2 and msg in capsys.readouterr().err

def test_eval_help_lists_only_evaluation_flags(capsys):
    with pytest.raises(SystemExit): main(["eval", "--help"])
    out = capsys.readouterr().out
    for f in ("--eval-problems", "--base", "--n-eval-problems", "--max-new-tokens", "--model"): assert f in out
    for f in ("--refresh-every", "--lr", "--selector", "--steps"): assert f not in out

def test_prompt_template_from_the_command_line(files, monkeypatch, capsys):
    from sage_nb.cli import build_parser, config_from_args
    import sage_nb.models as models
    c = config_from_args(build_parser().parse_args(["run", "--eval-problems", files["math500"], "--prompt-template",
                                                    "Problem: {question}\n{instruction}"]))
    ps, instruction = data.prompt_setup(get_problems(c, "eval"), c.prompt_template)
    assert instruction == "" and all(p["question"].startswith("Problem: ") and p["question"].endswith("\\boxed{}.") for p in ps)
    def no_model(*a, **k): raise AssertionError("the model must not load")
    monkeypatch.setattr(models, "load_policy", no_model)
    with pytest.raises(SystemExit) as e: main(["run", "--prompt-template", "Solve it."])
    assert e.value.code == 2 and "prompt_template must contain {question}" in capsys.readouterr().err
