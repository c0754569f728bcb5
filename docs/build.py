"""Build ft_nb's documentation site offline, with Sphinx, myst-nb and sphinx-book-theme, from the
notebooks' stored outputs (nothing is executed at build time).

nbdev's own site builder needs Quarto, which no package registry ships (the `quarto-cli` package
downloads its binary at install time, and this machine reaches registries only); Sphinx and
myst-nb read the same notebooks and install from the registry.

What it assembles in build/docs_src (then renders to build/docs_html):
- the front page: index.ipynb, which is the README (`write_index` regenerates it from README.md);
- one section per notebook group (data, methods, training, distributed, evaluation,
  experiments and jobs), each library notebook followed by the API reference of the module it
  exports (nbdev's `show_doc`, with every parameter's documentation);
- the job notebooks, each with its parameters as a table;
- "Choose your path" (which notebook and job for which goal) and "Troubleshooting" (every error
  ft_nb raises, read from the source, so the page cannot drift from the code).

    python docs/build.py            # build/docs_html/index.html
    python docs/build.py --index    # only regenerate nbs/index.ipynb from README.md
"""
import argparse, ast, importlib, re, shutil, subprocess, sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
NBS, SRC, OUT = ROOT / "nbs", ROOT / "build" / "docs_src", ROOT / "build" / "docs_html"
GROUPS = {"0": "Basics", "1": "Data", "2": "Methods", "3": "Training", "4": "Distributed", "5": "Evaluation, and training with it", "6": "Experiments", "7": "Decisions"}
PATHS = [  # goal, notebooks to read, the job that does it
    ("A first fine-tune, in minutes", ["00_core", "01_models", "36_train.sft"], "ft_nb run quickstart"),
    ("Teach the model new domain knowledge", ["19_data.curate", "36_train.sft", "55_rag", "70_decide"], "ft_nb run curate -p source my.jsonl, then ft_nb run train -p data outputs/<curate-run>"),
    ("Change tone or output format", ["18c_data.mixture", "56_train.instruct", "57_train.prefer"], "ft_nb run train, then ft_nb run prefer -p sft_run outputs/<run>"),
    ("QLoRA on a small GPU", ["22_methods.qlora", "31b_train.memory", "41_distributed.plan"], "ft_nb run train -p method qlora -p gradient_checkpointing True"),
    ("Many GPUs", ["40_distributed.parallelism", "41_distributed.plan", "42_distributed.launch", "43_distributed.compare"], "ft_nb run train --gpus 8 --strategy fsdp"),
    ("Evaluate an existing fine-tune", ["50_eval.core", "51_eval.metrics", "53_eval.harness", "54_eval.review", "52_eval.forgetting"], "ft_nb run eval -p run outputs/<run>"),
    ("Fine-tune or RAG?", ["70_decide", "55_rag"], "ft_nb run rag -p documents my_docs -p questions q.jsonl"),
    ("Choose hyperparameters", ["37_train.guide", "63_experiments"], "ft_nb run search -p spec my_search.yaml"),
    ("Train fast on one GPU", ["31_train.packing", "32_train.fast", "38_bench.speed", "31b_train.memory"], "ft_nb bench --model 1b, then ft_nb run train -p packing True"),
]


def write_index(readme: Path = ROOT / "README.md", dest: Path = NBS / "index.ipynb") -> Path:
    "nbs/index.ipynb as the README: one markdown cell, so the front page and the README cannot drift apart."
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"display_name": "python3", "language": "python", "name": "python3"}})
    nb.cells = [nbformat.v4.new_markdown_cell(readme.read_text().strip(), id="readme")]  # a fixed id: the same README, the same file
    nbformat.write(nb, dest)
    subprocess.run([str(Path(sys.executable).parent / "nbdev-clean"), "--fname", str(dest)], check=True, cwd=ROOT)
    return dest


def api_markdown(module: str) -> list[str]:
    "nbdev's `show_doc` of every name a module exports, as markdown (the source link, which Sphinx cannot style, removed)."
    from nbdev.showdoc import show_doc
    mod = importlib.import_module(module)
    out = []
    for name in getattr(mod, "__all__", []):
        if not callable(obj := getattr(mod, name)): continue  # constants: their type's docstring says nothing of them
        md = show_doc(obj, name=name)._repr_markdown_()
        md = re.sub(r"^\[source\]\(.*?\)\{.*?\}\s*$", "", md, flags=re.M)
        out.append(re.sub(r"^\s*---\s*\n", "", md))  # a section may not begin with a rule
    return out


def _module_of(path: Path) -> str | None:
    nb = nbformat.read(path, as_version=4)
    m = next((re.search(r"#\|\s*default_exp\s+(\S+)", c.source) for c in nb.cells if c.cell_type == "code" and "default_exp" in c.source), None)
    return f"ft_nb.{m.group(1)}" if m else None


def _for_readers(nb):
    "Without what readers need not see: `#| hide` cells, the `default_exp` cell, and nbdev's `#|` directive lines."
    keep = []
    for c in nb.cells:
        if c.cell_type == "code":
            if re.search(r"^#\|\s*(hide|default_exp)", c.source, re.M): continue
            c.source = "\n".join(l for l in c.source.splitlines() if not l.startswith("#|")).strip("\n")
        keep.append(c)
    nb.cells = keep
    return nb


def library_page(path: Path, dest: Path):
    "A notebook with its API reference appended."
    nb = _for_readers(nbformat.read(path, as_version=4))
    if module := _module_of(path):
        nb.cells.append(nbformat.v4.new_markdown_cell(f"## API reference: `{module}`"))
        nb.cells += [nbformat.v4.new_markdown_cell(md) for md in api_markdown(module)]
    nbformat.write(nb, dest)


def job_page(path: Path, dest: Path):
    "A job notebook with its parameters as a table after its title."
    from ft_nb.runner import job_parameters
    nb = _for_readers(nbformat.read(path, as_version=4))
    rows = ["| parameter | type | default | what it does |", "|---|---|---|---|"]
    rows += [f"| `{k}` | `{v['type']}` | `{v['default']}` | {v['help']} |" for k, v in job_parameters(path).items()]
    nb.cells.insert(1, nbformat.v4.new_markdown_cell(f"**Parameters** (`ft_nb run {path.stem} -p NAME VALUE`)\n\n" + "\n".join(rows)))
    nbformat.write(nb, dest)


def raised_errors(package: Path = ROOT / "ft_nb") -> list[dict]:
    "Every `raise SomeError(message)` in the package: the error, where, and its message with the values left as {placeholders}."
    found = []
    for f in sorted(package.rglob("*.py")):
        tree = ast.parse(f.read_text())
        for fn in (n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.ClassDef))):
            for node in ast.walk(fn):
                if not (isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call) and node.exc.args): continue
                arg = node.exc.args[0]
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str): text = arg.value
                elif isinstance(arg, ast.JoinedStr):
                    text = "".join(v.value if isinstance(v, ast.Constant) else "{" + ast.unparse(v.value) + (f"!{chr(v.conversion)}" if v.conversion > 0 else "") + "}"
                                   for v in arg.values)
                else: continue
                module = ".".join(f.relative_to(ROOT).with_suffix("").parts)
                found.append({"error": ast.unparse(node.exc.func), "where": f"{module}.{fn.name}", "message": text})
    unique = {(e["error"], e["where"], e["message"]): e for e in found}
    return sorted(unique.values(), key=lambda e: (e["where"], e["message"]))


def troubleshooting_md() -> str:
    esc = lambda s: s.replace("|", "\\|").replace("\n", " ")
    rows = [f"| `{e['error']}` | `{e['where']}` | {esc(e['message'])} |" for e in raised_errors()]
    return ("# Troubleshooting\n\nEvery error ft_nb raises, read from its source when this site was built. Each message names the "
            "file, parameter or value at fault and what was expected; `{...}` stands for the value filled in at run time. A job that "
            "fails keeps its executed notebook, with the error in its cell, and a manifest that says `failed`: start there.\n\n"
            "| error | raised in | message (what was wrong, what to do) |\n|---|---|---|\n" + "\n".join(rows) + "\n")


def paths_md(pages: dict[str, str]) -> str:
    lines = ["# Choose your path\n", "| goal | read | run |", "|---|---|---|"]
    for goal, nbs, job in PATHS:
        missing = [n for n in nbs if n not in pages]
        if missing: raise FileNotFoundError(f"'Choose your path' names notebooks that do not exist: {missing}")
        lines.append(f"| {goal} | " + ", ".join(f"[{n}]({pages[n]})" for n in nbs) + f" | `{job}` |")
    return "\n".join(lines) + "\n"


def assemble() -> Path:
    "Write the site's sources into build/docs_src; returns the folder."
    shutil.rmtree(SRC, ignore_errors=True); (SRC / "nbs").mkdir(parents=True); (SRC / "jobs").mkdir()
    shutil.copy(Path(__file__).with_name("conf.py"), SRC / "conf.py")
    pages, sections = {}, {}
    for path in sorted(NBS.glob("*.ipynb")):
        if path.stem == "index": continue
        library_page(path, SRC / "nbs" / path.name)
        pages[path.stem] = f"nbs/{path.stem}.ipynb"
        sections.setdefault(GROUPS[path.stem[0]], []).append(f"nbs/{path.stem}")
    for path in sorted((NBS / "jobs").glob("*.ipynb")):
        job_page(path, SRC / "jobs" / path.name)
        sections.setdefault("Jobs", []).append(f"jobs/{path.stem}")
    (SRC / "paths.md").write_text(paths_md(pages))
    (SRC / "troubleshooting.md").write_text(troubleshooting_md())
    index = nbformat.read(NBS / "index.ipynb", as_version=4)
    toc = ["```{toctree}\n:hidden:\n:caption: Start\n\npaths\ntroubleshooting\n```"]
    toc += [f"```{{toctree}}\n:hidden:\n:caption: {name}\n\n" + "\n".join(entries) + "\n```" for name, entries in sections.items()]
    index.cells.append(nbformat.v4.new_markdown_cell("\n\n".join(toc)))
    nbformat.write(index, SRC / "index.ipynb")
    return SRC


def build() -> Path:
    "Assemble and render the site; returns build/docs_html/index.html."
    src = assemble()
    shutil.rmtree(OUT, ignore_errors=True)
    subprocess.run([str(Path(sys.executable).parent / "sphinx-build"), "-q", "-b", "html", str(src), str(OUT)], check=True)
    return OUT / "index.html"


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--index", action="store_true", help="only regenerate nbs/index.ipynb from README.md")
    a = ap.parse_args()
    print(write_index() if a.index else build())
