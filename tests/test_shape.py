"The shape of the package: every module imports alone, imports point down the layers and form no cycle, and a new method notebook joins the test matrix and the compare job with no other file edited."
import ast, json, os, re, shutil, subprocess, sys, textwrap
from pathlib import Path

import nbformat
import pytest

from conftest import ROOT

PKG = ROOT / "ft_nb"
# Lower layers never import from higher ones: core, then models and their families, then data, then methods and evaluation,
# then training, then runs, distributed training and the benchmark, then the jobs and their runner, the experiments
# built on the runner, and the command line at the top.
LAYERS = [("ft_nb.core",), ("ft_nb.models", "ft_nb.families"), ("ft_nb.data",), ("ft_nb.methods", "ft_nb.eval", "ft_nb.rag", "ft_nb.export"), ("ft_nb.train",),
          ("ft_nb.runs", "ft_nb.distributed", "ft_nb.bench"), ("ft_nb.jobs", "ft_nb.runner", "ft_nb.decide"), ("ft_nb.experiments",), ("ft_nb.cli",)]


def _modules() -> list[str]:
    mods = [".".join(p.relative_to(ROOT).with_suffix("").parts) for p in PKG.rglob("*.py")]
    return sorted(m.removesuffix(".__init__") for m in mods if not m.endswith("_modidx"))


def _layer(mod: str) -> int | None:
    hits = [i for i, names in enumerate(LAYERS) for n in names if mod == n or mod.startswith(n + ".")]
    return hits[0] if hits else None


def _imports(mod: str) -> set[str]:
    "The ft_nb modules that `mod` imports anywhere in its source (function bodies included)."
    path = ROOT / Path(*mod.split("."))
    path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
    pkg = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import): names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level: base = ".".join(pkg.split(".")[: len(pkg.split(".")) - node.level + 1] + ([base] if base else []))
            names = [base] + [f"{base}.{a.name}" for a in node.names]
        else: continue
        out |= {n for n in names if n.startswith("ft_nb") and n in set(_modules())}
    return out - {mod}


def test_every_module_has_a_layer():
    assert [m for m in _modules() if m != "ft_nb" and _layer(m) is None] == []


def test_imports_point_down_the_layers():
    upward = [(m, i) for m in _modules() if m != "ft_nb" for i in _imports(m) if i != "ft_nb" and _layer(i) > _layer(m)]
    assert upward == [], f"modules importing from a layer above them: {upward}"


def _notebook_modules() -> dict[str, str]:
    "Each module to the notebook that exports it (its `default_exp`)."
    out = {}
    for nb in sorted((ROOT / "nbs").glob("*.ipynb")):
        for c in nbformat.read(nb, as_version=4).cells:
            if c.cell_type == "code" and (m := re.search(r"#\|\s*default_exp\s+(\S+)", c.source)): out["ft_nb." + m.group(1)] = nb.name
    return out


def test_notebooks_import_only_from_notebooks_before_them():
    "Numbered in reading order: every ft_nb module a library notebook imports (in any cell) is exported by a notebook named before it."
    exporter, later = _notebook_modules(), []
    for nb in sorted((ROOT / "nbs").glob("*.ipynb")):
        source = "\n".join(c.source for c in nbformat.read(nb, as_version=4).cells if c.cell_type == "code")
        for name in set(re.findall(r"(?:from|import)\s+(ft_nb(?:\.\w+)+)", source)):
            while name not in exporter and "." in name: name = name.rpartition(".")[0]
            if name in exporter and exporter[name] > nb.name: later.append(f"{nb.name} imports {name} ({exporter[name]})")
    assert later == [], later


def test_the_experiments_do_not_import_the_command_line():
    assert "ft_nb.cli" not in _imports("ft_nb.experiments") and "ft_nb.runner" in _imports("ft_nb.experiments") & _imports("ft_nb.cli")


def test_no_import_cycles():
    graph = {m: _imports(m) - {"ft_nb"} for m in _modules()}
    state, cycles = {}, []
    def visit(m, path):
        state[m] = "open"
        for n in graph.get(m, ()):
            if state.get(n) == "open": cycles.append(path[path.index(n):] + [n])
            elif n not in state: visit(n, path + [n])
        state[m] = "done"
    for m in graph:
        if m not in state: visit(m, [m])
    assert cycles == []


ALONE = """
import importlib, json, os, sys
import matplotlib, torch, transformers, datasets, peft, trl  # the third-party libraries, imported once: no ft_nb module is
results = {}
for m in sys.argv[1:]:  # each ft_nb module in a process of its own, forked from this one, with no other ft_nb module imported
    r, w = os.pipe()
    if (pid := os.fork()) == 0:
        os.close(r)
        try: importlib.import_module(m); msg = ""
        except BaseException as e: msg = f"{type(e).__name__}: {e}"
        os.write(w, msg.encode()); os._exit(0)
    os.close(w); msg = os.read(r, 1 << 16).decode(); os.waitpid(pid, 0); os.close(r)
    if msg: results[m] = msg
print(json.dumps(results))
"""


def test_every_module_imports_alone():
    "Each module imports in a process where no other ft_nb module was imported before it (forked from one that loaded the third-party libraries once)."
    r = subprocess.run([sys.executable, "-c", ALONE, *_modules()], capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads(r.stdout.strip().splitlines()[-1]) == {}


SCRATCH_METHOD = '''
#| export
from dataclasses import dataclass
from ft_nb.methods.core import register_method

@dataclass
class NormsConfig:
    pass

@register_method("norms", NormsConfig, default_lr=1e-2, summary="only the normalisation weights train", test={"lr": 1e-1})
def apply_norms(model, cfg: NormsConfig):
    "Freeze everything but the RMSNorm/LayerNorm weights."
    for name, p in model.named_parameters(): p.requires_grad_("norm" in name)
    return model
'''


@pytest.fixture(scope="module")
def scratch_checkout(tmp_path_factory):
    "A copy of the checkout with one more method notebook, exported; nothing else edited."
    root = tmp_path_factory.mktemp("scratch")
    for name in ("nbs", "ft_nb", "tests", "pyproject.toml", "settings.ini"):
        src = ROOT / name
        (shutil.copytree(src, root / name, ignore=shutil.ignore_patterns("__pycache__", ".ipynb_checkpoints")) if src.is_dir() else shutil.copy(src, root / name))
    cells = [nbformat.v4.new_markdown_cell("# methods.norms\n\n> A scratch method: only the normalisation weights train."),
             nbformat.v4.new_code_cell("#| default_exp methods.norms"), nbformat.v4.new_code_cell(textwrap.dedent(SCRATCH_METHOD).strip())]
    nbformat.write(nbformat.v4.new_notebook(cells=cells), root / "nbs" / "27_methods.norms.ipynb")
    r = subprocess.run([str(Path(sys.executable).parent / "nbdev-export"), "--path", "nbs/27_methods.norms.ipynb"], cwd=root, capture_output=True, text=True)
    assert r.returncode == 0 and (root / "ft_nb" / "methods" / "norms.py").is_file(), r.stderr
    return root


def _in(root: Path, *cmd, timeout=900):
    env = {**os.environ, "PYTHONPATH": str(root), "HF_HUB_OFFLINE": "1", "MPLBACKEND": "Agg"}
    return subprocess.run([sys.executable, *cmd], cwd=root, capture_output=True, text=True, env=env, timeout=timeout)


@pytest.mark.slow
def test_a_new_method_joins_the_test_matrix(scratch_checkout):
    r = _in(scratch_checkout, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_methods.py", "-k", "trains_and_reloads and norms")
    assert r.returncode == 0 and "1 passed" in r.stdout, r.stdout[-3000:] + r.stderr[-2000:]


@pytest.mark.slow
def test_a_new_method_joins_the_compare_job(scratch_checkout, tmp_path):
    "The compare job's 'all' names the new method, and the job trains and records it (one method: every registered one trains in the test matrix)."
    names = _in(scratch_checkout, "-c", "from ft_nb.methods.core import method_names; print(method_names('all'))")
    assert names.returncode == 0 and "'norms'" in names.stdout, names.stderr[-2000:]
    run = "from ft_nb.cli import main; raise SystemExit(main(['run', 'compare', '--quick', '-p', 'methods', 'norms', '-p', 'max_steps', '1', " \
          f"'--output-root', {str(tmp_path)!r}, '--run-name', 'c']))"
    r = _in(scratch_checkout, "-c", run, timeout=1500)
    assert r.returncode == 0, r.stderr[-3000:]
    rows = json.loads((tmp_path / "c" / "comparison.json").read_text())
    assert [x["method"] for x in rows] == ["norms"] and all("error" not in x for x in rows), [x.get("error") for x in rows]
    assert "| norms |" in (tmp_path / "c" / "comparison.md").read_text()
