"Answer checker properties, embedded problem sets, file loaders and pair validation on real files."
import json, math
import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st
from sage_nb.data import (LEVELS, DataError, check_answer, extract_answer, format_prompt, load_gsm8k, load_math, load_preferences,
                          make_pair, make_problems, problem_split, to_number, validate_pairs, pairs_dataset)
from sage_nb.models import load_tokenizer, chat_prompt

@pytest.fixture(scope="module")
def tok(): return load_tokenizer()

@given(st.integers(-10**9, 10**9))
@settings(max_examples=200, deadline=None)
def test_integers_in_every_answer_format(n):
    for text in (f"#### {n:,}", f"#### {n}", f"So the answer is {n}.", f"\\boxed{{{n}}}", f"x = 1, y = 2, so {n}"):
        assert check_answer(text, str(n)), text
    assert not check_answer(f"#### {n + 1}", str(n))

@given(st.integers(1, 999), st.integers(1, 999))
@settings(max_examples=100, deadline=None)
def test_fractions_match_decimals(a, b):
    assert check_answer(f"#### {a}/{b}", f"\\frac{{{a}}}{{{b}}}")
    assert to_number(f"{a}/{b}") == to_number(f"\\frac{{{a}}}{{{b}}}")

@pytest.mark.parametrize("text,gold,ok", [
    ("The total is $1,234.", "1234", True), ("#### 12 dollars", "12", True), ("#### 12.50", "12.5", True),
    ("#### 0.25", "25%", False), ("#### 25%", "25", True), ("it is \\boxed{-\\frac{3}{2}}", "-1.5", True),
    ("#### 7\nWait, 8", "8", False), ("no answer", "0", False), ("#### −3", "-3", True)])
def test_tricky_answers(text, gold, ok):
    assert check_answer(text, gold) is ok

@pytest.mark.parametrize("seed", [0, 1, 7])
def test_splits_never_share_a_question(seed):
    tr = make_problems(150, levels=(0, 1, 2, 3), seed=seed)
    ev = make_problems(120, levels=(0, 1, 2, 3), seed=seed + 100, split="eval")
    assert not {p["question"] for p in tr} & {p["question"] for p in ev}
    assert all(problem_split(p["question"]) == "train" for p in tr)
    assert len({p["problem_id"] for p in tr}) == len(tr) == 150

def test_every_level_is_deterministic_and_self_consistent():
    for lv in LEVELS:
        a, b = make_problems(20, levels=(lv,), seed=3), make_problems(20, levels=(lv,), seed=3)
        assert a == b and all(p["level"] == lv for p in a)
        assert all(check_answer(p["solution"], p["answer"]) for p in a)
        assert all(set(p) == {"problem_id", "question", "answer", "level", "solution", "source"} for p in a)

def test_level_zero_space_is_finite_but_enough_for_defaults():
    assert len(make_problems(60, levels=(0,), split="train")) == 60
    assert len(make_problems(30, levels=(0,), split="eval")) == 30

def test_loaders_round_trip_all_formats(tmp_path, tok):
    rows = [{"question": f"Q{i}: {i} + 1000?", "answer": f"{i}+1000=<<{i}+1000={i+1000}>>{i+1000}\n#### {i+1000:,}"} for i in range(5)]
    df = pd.DataFrame(rows)
    (tmp_path/"g.jsonl").write_text("\n".join(json.dumps(r) for r in rows)); df.to_parquet(tmp_path/"g.parquet")
    df.to_csv(tmp_path/"g.csv", index=False)
    got = [load_gsm8k(str(tmp_path/f)) for f in ("g.jsonl", "g.parquet", "g.csv")]
    assert got[0] == got[1] == got[2] and [p["answer"] for p in got[0]] == [str(i + 1000) for i in range(5)]
    assert load_gsm8k(str(tmp_path/"g.jsonl"), n=2, level=4)[1]["level"] == 4
    m = pd.DataFrame([{"problem": "p", "solution": "so \\boxed{\\{1,2\\}}", "level": "Level 2"}])
    m.to_json(tmp_path/"m.json", orient="records")
    assert load_math(str(tmp_path/"m.json"))[0]["answer"] == "\\{1,2\\}"
    bad = pd.DataFrame([{"problem": "p", "solution": "no box", "level": "Level 2"}]); bad.to_parquet(tmp_path/"b.parquet")
    with pytest.raises(ValueError, match="row 0"): load_math(str(tmp_path/"b.parquet"))

def test_preference_file_to_schema_and_back(tmp_path, tok):
    rows = [{"prompt": f"What is {i}+{i}?", "chosen": f"#### {2*i}", "rejected": f"#### {2*i+1}", "difficulty": i % 3}
            for i in range(6)]
    pd.DataFrame(rows).to_parquet(tmp_path/"p.parquet")
    ds, n = load_preferences(str(tmp_path/"p.parquet"), tok, max_length=128)
    assert n == 0 and len(ds) == 6 and ds["prompt"][0] == chat_prompt(tok, "What is 0+0?")     # used as given: no instruction added
    again, _ = validate_pairs(ds, tok, max_length=128)
    pd.testing.assert_frame_equal(again.to_pandas(), ds.to_pandas())      # NaN pass rates compare equal here
    with pytest.raises(ValueError, match="max_length=20"): validate_pairs(ds, tok, max_length=20)
    left, n = validate_pairs(ds, tok, max_length=20, on_bad="skip")
    assert (len(left), n) == (0, 6) and left.column_names == pairs_dataset([]).column_names

def test_bad_inputs_name_row_and_field():
    good = [make_pair(f"P{i}", f"#### {i}", f"#### {i+1}", f"p{i}", 0, 0.5, "on_policy", "q", str(i)) for i in range(3)]
    cases = {"chosen": {"chosen": "   "}, "gold": {"gold": "}{"}, "pass_rate": {"pass_rate": "0.5"},
             "difficulty": {"difficulty": True}, "source": {"source": ""}, "question": {"question": None}}
    for field, kw in cases.items():
        rows = [dict(r) for r in good]; rows[2].update(kw)
        with pytest.raises(ValueError, match=rf"row 2 .*field '{field}'"): validate_pairs(rows)
        ds, n = validate_pairs(rows, on_bad="skip")
        assert (len(ds), n) == (2, 1)
    with pytest.raises(DataError, match=r"row 1 .*field 'chosen' is identical"): validate_pairs([good[0], {**good[1], "rejected": good[1]["chosen"]}])
    with pytest.raises(ValueError, match="on_bad"): validate_pairs(good, on_bad="ignore")
    with pytest.raises(ValueError, match="tokenizer"): validate_pairs(good, max_length=10)
    assert math.isnan(validate_pairs([{**good[0], "pass_rate": float("nan")}])[0]["pass_rate"][0])
