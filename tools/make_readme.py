"""Write README.md and the top-level index.ipynb from nbs/index.ipynb (the walkthrough).
README.md the way nbdev's readme does without quarto: markdown cells as they are, code cells as python blocks
followed by their text output, hidden cells left out. index.ipynb is the notebook itself at the repository's top
level, where "Open in Colab" links find it. Both refer to images by their path from the top level.
`python tools/make_readme.py` writes them; `--check` exits 1 when either has drifted from the notebook."""
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

def _top_level(text): return text.replace("](images/", "](nbs/images/")   # image links, seen from the top level

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
    return _top_level("\n\n".join(p for p in parts if p) + "\n")

def notebook(nb_path=ROOT/"nbs"/"index.ipynb") -> str:
    "The top-level index.ipynb: the walkthrough with image links seen from the top level."
    return _top_level(Path(nb_path).read_text())

if __name__ == "__main__":
    want = {ROOT/"README.md": render(), ROOT/"index.ipynb": notebook()}
    if "--check" in sys.argv:
        stale = [p.name for p, text in want.items() if not p.exists() or p.read_text() != text]
        if stale: sys.exit(f"{' and '.join(stale)} differ from nbs/index.ipynb: run `python tools/make_readme.py`.")
        print("README.md and index.ipynb match nbs/index.ipynb")
    else:
        for p, text in want.items(): p.write_text(text); print(f"wrote {p}")
