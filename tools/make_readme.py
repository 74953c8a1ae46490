"""Write README.md from nbs/index.ipynb (the walkthrough), the way nbdev's readme does without quarto:
markdown cells as they are, code cells as python blocks followed by their text output, hidden cells left out.
`python tools/make_readme.py` writes it; `--check` exits 1 when README.md and the notebook have drifted."""
import json, re, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HIDE = re.compile(r"^#\|\s*(hide|include:\s*false|export)\b")

def _src(cell): return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]

def _text_output(cell):
    out = []
    for o in cell.get("outputs", []):
        if o.get("output_type") == "stream" and o.get("name") == "stdout": out.append("".join(o["text"]))
        elif o.get("output_type") in ("execute_result", "display_data"):
            d = o.get("data", {})
            if "text/markdown" in d: out.append("".join(d["text/markdown"]))
            elif "text/plain" in d and not any(k.startswith("application/vnd") or k == "text/html" for k in d):
                out.append("".join(d["text/plain"]))
    return "".join(out).rstrip()

def _strip_directives(src): return "\n".join(l for l in src.splitlines() if not l.startswith("#|")).strip()

def render(nb_path=ROOT/"nbs"/"index.ipynb") -> str:
    nb = json.loads(Path(nb_path).read_text())
    parts = []
    for cell in nb["cells"]:
        src = _src(cell)
        if cell["cell_type"] == "markdown": parts.append(src.strip())
        elif cell["cell_type"] == "code":
            if any(HIDE.match(l) for l in src.splitlines()[:3]): continue
            code = _strip_directives(src)
            if not code: continue
            parts.append(f"```python\n{code}\n```")
            out = _text_output(cell)
            if out: parts.append(f"```\n{out}\n```")
    return "\n\n".join(p for p in parts if p) + "\n"

if __name__ == "__main__":
    text, readme = render(), ROOT/"README.md"
    if "--check" in sys.argv:
        if not readme.exists() or readme.read_text() != text:
            sys.exit("README.md differs from nbs/index.ipynb: run `python tools/make_readme.py`.")
        print("README.md matches nbs/index.ipynb")
    else:
        readme.write_text(text); print(f"wrote {readme}")
