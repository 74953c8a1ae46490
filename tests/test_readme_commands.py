"""Every `sage-nb` command of the README's "Your model and data" section runs, on a tiny model and local stand-ins
for the hub sets it names (same shapes, see `test_real_data`), so the README cannot drift from the code.

The substitution is explicit and small: `STAND_INS` maps each hub source the section names (its `:CONFIG` and
`@SPLIT` are kept) and the model id to a local folder; `TINY` sizes are appended to each command (the last value of
a flag wins), so the commands run in seconds. A command with a literal `...` is a placeholder and is not run.
Set SAGE_NB_README to check another file (e.g. a proposed README) the same way."""
import os, re, shlex
from pathlib import Path
import pytest
from sage_nb.cli import main
from test_real_data import files, tok, offline        # noqa: F401  (fixtures: the stand-ins in the hub shapes)

README = Path(os.environ.get("SAGE_NB_README") or Path(__file__).resolve().parents[1]/"README.md")
HEADINGS = ("## Your model and data", "## Real models and data")
MODEL_IDS = ("Qwen/", "meta-llama/", "google/", "HuggingFaceTB/", "mistralai/")

def stand_ins(files, tiny_dir) -> dict:
    "Hub source (without config/split suffix where the shape is the whole set) -> local folder of the same shape."
    return {"openai/gsm8k:main": files["gsm_dict"], "openai/gsm8k:socratic": files["gsm_dict"],
            "HuggingFaceH4/MATH-500": files["math500_dict"], "EleutherAI/hendrycks_math:algebra": files["hendrycks"],
            "HuggingFaceH4/ultrafeedback_binarized": files["uf_dict"], "my_prefs.jsonl": files["implicit"]}

TINY = dict(run=["--steps", "2", "--batch-size", "2", "--grad-accum", "1", "--n-train-problems", "4", "--n-eval-problems", "3",
                 "--k", "2", "--max-new-tokens", "8", "--max-length", "256", "--max-prompt-length", "128", "--refresh-every", "1",
                 "--snr-every", "0", "--checkpoint-every", "0", "--generation-batch-size", "8", "--quantize", "none"],
            eval=["--n-eval-problems", "3", "--max-new-tokens", "8", "--generation-batch-size", "8", "--quantize", "none"])

def section_commands(text: str) -> list[list[str]]:
    "The `sage-nb` commands (argv after `sage-nb`) of the README section, in order."
    lines, inside = text.splitlines(), None
    start = next((i for h in HEADINGS for i, l in enumerate(lines) if l.startswith(h)), None)
    assert start is not None, f"{README} has no section starting with {' or '.join(map(repr, HEADINGS))}"
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    cmds, buf = [], ""
    for l in lines[start:end]:
        if l.startswith("```"): inside = not inside; continue
        if not inside: continue
        buf += l.rstrip()
        if buf.endswith("\\"): buf = buf[:-1] + " "; continue
        argv = shlex.split(buf, comments=True); buf = ""
        if argv[:1] == ["sage-nb"] and "..." not in argv: cmds.append(argv[1:])
    return cmds

def substitute(argv, subs, model_dir):
    "`argv` with hub sources and model ids replaced by their local stand-ins (config and split suffixes kept)."
    out = []
    for a in argv:
        for src in sorted(subs, key=len, reverse=True):
            if a == src or a.startswith(src + "@") or a.startswith(src + ":"):
                a = subs[src] + a[len(src):] if not src.endswith(".jsonl") else subs[src]; break
        if a.startswith(MODEL_IDS): a = str(model_dir)
        out.append(a)
    return out

def test_section_is_found_and_has_commands():
    cmds = section_commands(README.read_text())
    assert any(c[0] == "run" for c in cmds) and any(c[0] == "eval" for c in cmds), cmds

def test_every_readme_command_runs(files, tiny_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)                       # run folders named in the README (runs/...) land here
    subs = stand_ins(files, tiny_dir)
    cmds = section_commands(README.read_text())
    for argv in cmds:
        local = substitute(argv, subs, tiny_dir) + TINY.get(argv[0], [])
        try: main(local)
        except SystemExit as e:
            raise AssertionError(f"README command `sage-nb {shlex.join(argv)}` failed (exit {e.code}):\n{capsys.readouterr().err[-3000:]}")
        capsys.readouterr()
    assert any(Path("runs").rglob("summary.json")), "no README command wrote a run"
