"The shape of the package: every module imports alone, imports point down the layers and form no cycle, and a new method notebook joins the test matrix and the compare job with no other file edited."
import ast, json, os, shutil, subprocess, sys, textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
import pytest

from conftest import ROOT

PKG = ROOT / "ft_nb"
# Lower layers never import from higher ones: core, then models, then data, then methods and evaluation,
# then training, then the jobs and the command line at the top.
LAYERS = [("ft_nb.core",), ("ft_nb.models",), ("ft_nb.data",), ("ft_nb.methods", "ft_nb.eval", "ft_nb.rag", "ft_nb.export"), ("ft_nb.train",), ("ft_nb.runs", "ft_nb.distributed", "ft_nb.bench"), ("ft_nb.jobs", "ft_nb.cli", "ft_nb.decide", "ft_nb.experiments")]


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


def test_every_module_imports_alone_in_a_fresh_interpreter():
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    def alone(m): return m, subprocess.run([sys.executable, "-c", f"import {m}"], capture_output=True, text=True, env=env, timeout=300)
    with ThreadPoolExecutor(2) as pool: results = list(pool.map(alone, _modules()))
    failed = {m: r.stderr.strip().splitlines()[-1] for m, r in results if r.returncode}
    assert failed == {}


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
    nbformat.write(nbformat.v4.new_notebook(cells=cells), root / "nbs" / "28_methods.norms.ipynb")
    r = subprocess.run([str(Path(sys.executable).parent / "nbdev-export"), "--path", "nbs/28_methods.norms.ipynb"], cwd=root, capture_output=True, text=True)
    assert r.returncode == 0 and (root / "ft_nb" / "methods" / "norms.py").is_file(), r.stderr
    return root


def _in(root: Path, *cmd, timeout=900):
    env = {**os.environ, "PYTHONPATH": str(root), "HF_HUB_OFFLINE": "1", "MPLBACKEND": "Agg"}
    return subprocess.run([sys.executable, *cmd], cwd=root, capture_output=True, text=True, env=env, timeout=timeout)


def test_a_new_method_joins_the_test_matrix(scratch_checkout):
    r = _in(scratch_checkout, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_methods.py", "-k", "trains_and_reloads and norms")
    assert r.returncode == 0 and "1 passed" in r.stdout, r.stdout[-3000:] + r.stderr[-2000:]


def test_a_new_method_joins_the_compare_job(scratch_checkout, tmp_path):
    run = "from ft_nb.cli import main; raise SystemExit(main(['run', 'compare', '--quick', '-p', 'methods', 'all', '-p', 'max_steps', '1', " \
          f"'--output-root', {str(tmp_path)!r}, '--run-name', 'c']))"
    r = _in(scratch_checkout, "-c", run, timeout=1500)
    assert r.returncode == 0, r.stderr[-3000:]
    rows = json.loads((tmp_path / "c" / "comparison.json").read_text())
    assert "norms" in [x["method"] for x in rows] and all("error" not in x for x in rows), [x.get("error") for x in rows]
    assert "| norms |" in (tmp_path / "c" / "comparison.md").read_text()
