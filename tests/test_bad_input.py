"Every malformed data file ends in one DataError naming the file, the line (JSON Lines) or row, and the field as written."
import json, os, subprocess, sys
import pandas as pd
import pytest
from sage_nb.data import DataError, Skipped, load_preferences, load_problems, load_gsm8k
from sage_nb.models import load_tokenizer

@pytest.fixture(scope="module")
def tok(): return load_tokenizer()

FORMATS = ("jsonl", "json", "parquet", "csv")
GOOD = [dict(prompt=f"What is {i}+{i}?", chosen=f"{i} + {i} = {2*i}\n#### {2*i}", rejected=f"#### {2*i+1}") for i in range(4)]

def where(fmt, i): return f"line {i + 1}" if fmt == "jsonl" else f"row {i}"

def write(path, rows):
    "Rows to a file in the format its suffix names (the way a user's tool would write it)."
    fmt = path.suffix[1:]
    if fmt == "jsonl": path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    elif fmt == "json": path.write_text(json.dumps(rows, indent=1))
    elif fmt == "parquet": pd.DataFrame(rows).to_parquet(path)
    else: pd.DataFrame(rows).to_csv(path, index=False)
    return path

def bad_at(i, **kw):
    "GOOD with row `i` changed by `kw` (a value of `...` deletes the field)."
    rows = [dict(r) for r in GOOD]
    rows[i] = {k: v for k, v in {**rows[i], **kw}.items() if v is not ...}
    return rows

def column(**kw):
    "GOOD with a whole column replaced (Parquet columns have one type, so a wrong type is a whole column)."
    return [{**r, **kw} for r in GOOD]

# (case, rows, bad row index, {format: expected message after "<file> <line/row>: "}); a format missing from
# the dict cannot express the case (CSV cells are always text; Parquet columns have one type).
MISSING = "field 'rejected' is missing (a preference row needs prompt, chosen, rejected)"
ROW_CASES = [
    ("missing rejected", bad_at(2, rejected=...), 2,
     dict(jsonl=MISSING, json=MISSING, parquet="field 'rejected' is empty (null)", csv="field 'rejected' is empty")),
    ("missing prompt", bad_at(1, prompt=...), 1, dict(jsonl="field 'prompt' is missing", json="field 'prompt' is missing")),
    ("null chosen", bad_at(1, chosen=None), 1, dict(jsonl="field 'chosen' is empty (null)", json="field 'chosen' is empty (null)",
                                                   parquet="field 'chosen' is empty (null)")),
    ("chosen is a number", bad_at(1, chosen=42), 1, dict(jsonl="field 'chosen' must be text, got int 42",
                                                         json="field 'chosen' must be text, got int 42")),
    ("chosen column of numbers", column(chosen=42), 0, dict(parquet="field 'chosen' must be text, got int 42")),
    ("rejected is a list", bad_at(1, rejected=["#### 3", "#### 4"]), 1,
     dict(jsonl="field 'rejected' is a list but not of chat messages", json="field 'rejected' is a list but not of chat messages")),
    ("rejected column of lists", column(rejected=["a", "b"]), 0, dict(parquet="field 'rejected' is a list but not of chat messages")),
    ("prompt is an object", bad_at(3, prompt={"text": "hi"}), 3, dict(jsonl="field 'prompt' must be text, got dict", json="field 'prompt' must be text, got dict")),
    ("empty prompt", bad_at(1, prompt=""), 1, {f: "field 'prompt' is empty" for f in FORMATS}),
    ("whitespace prompt", bad_at(1, prompt="  \n "), 1, {f: "field 'prompt' is empty (only whitespace)" for f in FORMATS}),
    ("empty chosen", bad_at(2, chosen=""), 2, {f: "field 'chosen' is empty" for f in FORMATS}),
    ("whitespace rejected", bad_at(0, rejected="\t "), 0, {f: "field 'rejected' is empty (only whitespace)" for f in FORMATS}),
    ("empty chat message", bad_at(1, prompt=[{"role": "user", "content": " "}]), 1, {f: "field 'prompt' is empty (only whitespace)" for f in ("jsonl", "json")}),
    ("identical chosen and rejected", bad_at(1, rejected=GOOD[1]["chosen"]), 1,
     {f: "field 'rejected' is identical to 'chosen'" for f in FORMATS}),
    ("duplicate row", bad_at(2, **GOOD[0]), 2, {f: f"is a duplicate of {where(f, 0)} (same prompt, chosen and rejected)" for f in FORMATS}),
    ("duplicate pair_id", [{**r, "pair_id": ("a" if i != 3 else "b") + str(min(i, 1))} for i, r in enumerate(GOOD)], 2,
     {f: f"field 'pair_id' 'a1' repeats {where(f, 1)}" for f in FORMATS}),
    ("NUL character", bad_at(1, chosen="#### 2\x00"), 1,
     {f: "field 'chosen' contains the control character '\\x00' at position 6" for f in FORMATS}),
    ("escape character", bad_at(2, prompt="What is \x1b[1m2+2?"), 2, {f: "field 'prompt' contains the control character '\\x1b'" for f in FORMATS}),
    ("pass_rate out of range", bad_at(1, pass_rate=1.5), 1, {f: "field 'pass_rate' must be a number in [0, 1], got 1.5" for f in ("jsonl", "json")}),
    ("pass_rate not a number", bad_at(1, pass_rate="high"), 1, {f: "field 'pass_rate' must be a number in [0, 1], got 'high'" for f in ("jsonl", "json")}),
    ("difficulty a fraction", bad_at(1, difficulty=1.5), 1, {f: "field 'difficulty' must be a whole number" for f in ("jsonl", "json")}),
    ("unparsable gold", bad_at(1, gold="\\frac{"), 1, {f: "field 'gold' is not a parsable answer" for f in FORMATS}),
    ("problem_id a list", bad_at(1, problem_id=[1]), 1, {f: "field 'problem_id' must be text, got list" for f in ("jsonl", "json")}),
]
ROW_PARAMS = [pytest.param(rows, i, fmt, msg, id=f"{case}-{fmt}") for case, rows, i, msgs in ROW_CASES for fmt, msg in msgs.items()]

def one_error(f):
    "The DataError `f` raises, checked to be a single clear error (no chained traceback from inside a library)."
    with pytest.raises(DataError) as e: f()
    assert e.value.__cause__ is None and (e.value.__context__ is None or e.value.__suppress_context__)
    return str(e.value)

@pytest.mark.parametrize("rows,i,fmt,msg", ROW_PARAMS)
def test_bad_row_names_file_row_and_field(tmp_path, tok, rows, i, fmt, msg):
    p = write(tmp_path/f"prefs.{fmt}", rows)
    got = one_error(lambda: load_preferences(str(p), tok))
    assert got.startswith(f"{p} {where(fmt, i)}: {msg}"), got
    if "pair_id" not in rows[i]: assert "pair_id" not in got       # never a field the file does not have

@pytest.mark.parametrize("fmt", FORMATS)
def test_too_long_for_max_length(tmp_path, tok, fmt):
    "A long row is kept (it is truncated when trained); only one the truncation cannot fit is a bad row, counted when skipped."
    p = write(tmp_path/f"prefs.{fmt}", bad_at(1, chosen="7 " * 200 + "\n#### 7"))
    ds, n = load_preferences(str(p), tok, max_length=128)
    assert n == 0 and len(ds) == len(GOOD)
    q = write(tmp_path/f"same.{fmt}", bad_at(1, chosen="7 " * 200 + "\n#### 7", rejected="7 " * 200 + "\n#### 8"))
    got = one_error(lambda: load_preferences(str(q), tok, max_length=128))
    assert got.startswith(f"{q} {where(fmt, 1)}: cannot be truncated to max_length=128: "), got
    ds, n = load_preferences(str(q), tok, max_length=128, on_bad="skip")
    assert n == 1 and len(ds) == len(GOOD) - 1 and "cannot be truncated" in n.reasons[0]
    assert load_preferences(str(q), tok, max_length=512)[1] == 0

# (case, file name, raw bytes, expected message after the file name); these are about the file, not one row.
FILE_CASES = [
    ("empty jsonl", "prefs.jsonl", b"", ": the file is empty"),
    ("empty json", "prefs.json", b"", ": the file is empty"),
    ("empty parquet", "prefs.parquet", b"", ": the file is empty"),
    ("empty csv", "prefs.csv", b"", ": the file is empty"),
    ("blank lines jsonl", "prefs.jsonl", b"\n  \n\n", ": the file is empty (no rows)"),
    ("empty json array", "prefs.json", b"[]", ": the file is empty (no rows)"),
    ("csv header only", "prefs.csv", b"prompt,chosen,rejected\n", ": the file is empty (no rows)"),
    ("truncated json array", "prefs.json", json.dumps(GOOD, indent=1).encode()[:-30], " line 19: not valid JSON (Unterminated string starting at: column 13)"),
    ("json array with a trailing comma", "prefs.json", b'[{"prompt": "p", "chosen": "a", "rejected": "b"},\n]', " line 2: not valid JSON"),
    ("invalid utf-8 json", "prefs.json", json.dumps(GOOD[:2], indent=1).encode().replace(b"What is 1", b"What \xff 1"), " line 8: not valid UTF-8 (byte 0xff at column 19)"),
    ("invalid utf-8 csv", "prefs.csv", b"prompt,chosen,rejected\nWhat is 1+1?,#### 2,#### 3\nWhat is \xe92?,#### 4,#### 5\n",
     " line 3: not valid UTF-8 (byte 0xe9 at column 9)"),
    ("ragged csv", "prefs.csv", b"prompt,chosen,rejected\na,b,c\nd,e,f,g\n", ": not valid CSV (Error tokenizing data. C error: Expected 3 fields in line 3, saw 4)"),
    ("not a parquet file", "prefs.parquet", b"prompt,chosen\nnot parquet at all\n", ": not a readable Parquet file"),
    ("unknown suffix", "prefs.txt", b"prompt chosen rejected", None),
    ("no preference fields", "prefs.jsonl", b'{"text": "hello"}\n', ": no row has field(s) ['prompt', 'chosen', 'rejected']"),
    ("a column no row has", "prefs.jsonl", b'{"prompt": "p", "chosen": "#### 1"}\n',
     ": no row has field(s) ['rejected']; a preference file needs prompt, chosen, rejected (found ['chosen', 'prompt'])"),
]

@pytest.mark.parametrize("name,raw,msg", [pytest.param(n, r, m, id=c) for c, n, r, m in FILE_CASES])
def test_bad_file_is_one_error(tmp_path, tok, name, raw, msg):
    p = tmp_path/name; p.write_bytes(raw)
    got = one_error(lambda: load_preferences(str(p), tok, on_bad="skip"))      # skip drops rows, never a broken file
    assert got.startswith(f"Cannot read {p}: expected one of" if msg is None else f"{p}{msg}"), got

# JSON Lines is read line by line, so a bad line is a bad row: located by its number, and skippable.
JSONL_LINES = [
    ("truncated line", lambda s: s[:-12], "is not valid JSON (Unterminated string starting at: column"),
    ("invalid utf-8", lambda s: s.replace("What is 1", "What \udcff 1"), "is not valid UTF-8 (byte 0xff at column 18)"),
    ("array not object", lambda s: "[1, 2]", "is a JSON array, not an object {...}"),
    ("bare string", lambda s: '"What is 1+1?"', "is a JSON string, not an object {...}"),
]

@pytest.mark.parametrize("edit,msg", [pytest.param(e, m, id=c) for c, e, m in JSONL_LINES])
def test_bad_jsonl_line(tmp_path, tok, edit, msg):
    lines = [json.dumps(r) for r in GOOD]; lines[1] = edit(lines[1])
    p = tmp_path/"prefs.jsonl"; p.write_bytes("\n".join(lines).encode("utf-8", "surrogateescape"))
    assert one_error(lambda: load_preferences(str(p), tok)).startswith(f"{p} line 2: {msg}")
    ds, n = load_preferences(str(p), tok, on_bad="skip")
    assert (len(ds), n) == (3, 1) and n.reasons[0].startswith(f"{p} line 2: {msg}")

def test_skip_counts_and_reasons(tmp_path, tok, caplog):
    rows = bad_at(1, rejected=...) + [{**GOOD[0], "chosen": 7}, {**GOOD[2], "prompt": " "}, dict(GOOD[3])]
    p = write(tmp_path/"prefs.jsonl", rows)
    ds, n = load_preferences(str(p), tok, on_bad="skip")
    assert isinstance(n, Skipped) and n == 4 and len(ds) == 3       # line 7 repeats line 4 exactly, so it is dropped too
    assert [m.split(": ", 1)[1] for m in n.reasons] == [MISSING, "field 'chosen' must be text, got int 7", "field 'prompt' is empty (only whitespace)",
                                                       "is a duplicate of line 4 (same prompt, chosen and rejected)"]
    assert n.reasons[0].startswith(f"{p} line 2:") and n.reasons[3].startswith(f"{p} line 7:")
    assert "skipped 4 of 7 rows" in caplog.text and "1 x field 'rejected' is missing" in caplog.text

def test_skip_csv_counts_and_all_bad_is_an_error(tmp_path, tok):
    p = write(tmp_path/"prefs.csv", bad_at(0, chosen="") + [{**GOOD[1], "rejected": GOOD[1]["chosen"]}])
    ds, n = load_preferences(str(p), tok, on_bad="skip")
    assert (len(ds), n) == (3, 2) and n.reasons == [f"{p} row 0: field 'chosen' is empty",
                                                    f"{p} row 4: field 'rejected' is identical to 'chosen' (a pair needs two different responses)"]
    q = write(tmp_path/"all_bad.parquet", column(prompt=" "))
    assert one_error(lambda: load_preferences(str(q), tok, on_bad="skip")).startswith(f"{q}: all 4 rows are bad, none left; first: {q} row 0: field 'prompt'")

def test_on_bad_must_be_known(tmp_path, tok):
    p = write(tmp_path/"prefs.jsonl", GOOD)
    with pytest.raises(ValueError, match="on_bad must be 'error' or 'skip'"): load_preferences(str(p), tok, on_bad="ignore")
    assert load_preferences(str(p), tok, on_bad="raise")[1] == load_preferences(str(p), tok, on_bad="error")[1] == 0

PROBLEMS = [{"question": f"What is {i} + 10?", "answer": f"{i} + 10 = {i + 10}\n#### {i + 10}"} for i in range(6)]

@pytest.mark.parametrize("fmt", FORMATS)
def test_problems_file_without_answers(tmp_path, fmt):
    p = write(tmp_path/f"probs.{fmt}", [{"question": r["question"]} for r in PROBLEMS])
    got = one_error(lambda: load_problems(str(p), None))
    assert got.startswith(f"{p}: no row has field(s) ['answer']; a GSM8K-style problem file needs question, answer"), got

@pytest.mark.parametrize("fmt", FORMATS)
def test_problem_rows_name_line_and_field(tmp_path, fmt):
    rows = [dict(r) for r in PROBLEMS]; rows[3]["answer"] = "13"; rows[4]["question"] = " "
    p = write(tmp_path/f"probs.{fmt}", rows)
    assert one_error(lambda: load_problems(str(p), None)).startswith(f"{p} {where(fmt, 3)}: field 'answer' has no '#### n' final-answer line")
    assert len(load_gsm8k(str(p), on_bad="skip")) == 4
    m = write(tmp_path/f"math.{fmt}", [{"problem": "1+1?", "solution": "it is 2"}])
    assert one_error(lambda: load_problems(str(m), None)).startswith(f"{m} {where(fmt, 0)}: field 'solution' has no (or an empty) \\boxed{{...}} answer")

@pytest.mark.parametrize("fmt", FORMATS)
def test_wrong_kind_of_file(tmp_path, tok, fmt):
    pairs, probs = write(tmp_path/f"pairs.{fmt}", GOOD), write(tmp_path/f"probs.{fmt}", PROBLEMS)
    assert "it looks like a preference file: load it as pairs (load_preferences, --pairs)" in one_error(lambda: load_problems(str(pairs), None))
    assert "it looks like a GSM8K-style problem file: load it as problems (load_problems, --problems)" in one_error(lambda: load_preferences(str(probs), tok))

def test_missing_file(tmp_path, tok):
    for path in (tmp_path/"nope.jsonl", tmp_path/"sub"/"prefs.parquet"):
        with pytest.raises(FileNotFoundError, match=f"Data file not found: {path}"): load_preferences(str(path), tok)
        with pytest.raises(DataError, match="Data file not found"): load_problems(str(path))

def test_hub_id_offline_is_a_clear_error():
    "A name that is no local file goes to the hub loader; offline, the error names it (the hub path is real code, not dead)."
    code = ("from sage_nb.data import load_problems, DataError\n"
            "try: load_problems('no-such-owner/no-such-set', 4)\n"
            "except DataError as e: print('DataError:', e)\n")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert r.stdout.startswith("DataError: Could not load 'no-such-owner/no-such-set': no such local file or folder, and not a hub dataset"), r.stdout
    assert "Offline" in r.stdout                                         # the cause from the hub client is kept, in one line
