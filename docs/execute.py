"""Execute ft_nb's notebooks in place so that they are committed with their outputs (the record a
reader sees on any git host and on the documentation site), and check that the stored outputs are
current.

Each executed notebook is stamped with the SHA-256 of its code cells (`metadata.ft_nb.source_sha256`);
a notebook whose code changed since, or that was never executed, is stale. Outputs are kept lean:
HTML larger than 20 kB and widget states are dropped (their text form stays), and plots are PNGs
at 72 dpi.

    python docs/execute.py              # execute every library notebook that is stale, two at a time
    python docs/execute.py --all        # execute every library notebook
    python docs/execute.py --check      # list stale notebooks; exit status 1 if there are any
    python docs/execute.py nbs/41_distributed.plan.ipynb   # just these
"""
import argparse, hashlib, json, os, subprocess, sys, time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
NBS = ROOT / "nbs"
KEY = "ft_nb"
MAX_HTML = 20_000


def library_notebooks() -> list[Path]:
    "The notebooks that teach (nbs/*.ipynb); job notebooks are templates, executed per run."
    return sorted(NBS.glob("*.ipynb"))


def source_hash(nb) -> str:
    "SHA-256 of a notebook's code cells, in order."
    return hashlib.sha256(json.dumps([c.source for c in nb.cells if c.cell_type == "code"]).encode()).hexdigest()


def staleness(path: Path) -> str | None:
    "Why `path`'s stored outputs are not current ('never executed', 'code changed since execution'), or None."
    nb = nbformat.read(path, as_version=4)
    stamp = nb.metadata.get(KEY, {}).get("source_sha256")
    if stamp is None: return "never executed"
    return None if stamp == source_hash(nb) else "code changed since execution"


NOISE = ("TqdmWarning: IProgress not found", "from .autonotebook import tqdm", "Failed to load CPU gemm_4bit_forward", "Kernel is running over TCP")


def _lean(nb):
    "Drop what would bloat the repository or distract a reader: large HTML, widget state (their text/plain stays), and known warnings of the libraries' set-up."
    for cell in nb.cells:
        cell["outputs"] = [o for o in cell.get("outputs", []) if not (o.get("output_type") == "stream" and o.get("name") == "stderr"
                                                                  and all(any(n in line for n in NOISE) or not line.strip() for line in o.get("text", "").splitlines()))]
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if len(data.get("text/html", "")) > MAX_HTML: data.pop("text/html")
            data.pop("application/vnd.jupyter.widget-view+json", None)
    nb.metadata.pop("widgets", None)


def execute(path: Path, timeout: int = 900) -> tuple[Path, float, str | None]:
    "Run `path` top to bottom in a fresh kernel (cwd nbs/), keep the outputs, stamp it and clean it with nbdev-clean."
    from nbclient import NotebookClient
    nb, t0 = nbformat.read(path, as_version=4), time.perf_counter()
    try:
        NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    except Exception as e:  # the notebook is left as it was
        return path, time.perf_counter() - t0, f"{type(e).__name__}: {str(e)[-500:]}"
    _lean(nb)
    nb.metadata[KEY] = {"source_sha256": source_hash(nb)}
    nbformat.write(nb, path)
    subprocess.run([str(Path(sys.executable).parent / "nbdev-clean"), "--fname", str(path)], check=True, cwd=ROOT)
    return path, time.perf_counter() - t0, None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("notebooks", nargs="*", type=Path)
    ap.add_argument("--all", action="store_true", help="every library notebook, stale or not")
    ap.add_argument("--check", action="store_true", help="only list stale notebooks (exit 1 if any)")
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args(argv)
    paths = [p.resolve() for p in a.notebooks] or library_notebooks()
    if a.check:
        stale = {p.name: why for p in paths if (why := staleness(p))}
        for name, why in stale.items(): print(f"{name}: {why}; run `make execute`")
        return 1 if stale else 0
    todo = paths if (a.all or a.notebooks) else [p for p in paths if staleness(p)]
    os.environ.pop("MPLBACKEND", None)  # the kernel's inline backend, so that plots are kept as PNG outputs
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    rc = ROOT / "build" / "matplotlibrc"  # modest PNGs: 72 dpi
    rc.parent.mkdir(exist_ok=True); rc.write_text("figure.dpi: 72\nsavefig.dpi: 72\n")
    os.environ["MATPLOTLIBRC"] = str(rc)
    print(f"executing {len(todo)} notebook(s)", flush=True)
    failed = []
    with ThreadPoolExecutor(a.workers) as pool:
        for path, seconds, error in pool.map(execute, todo):
            print(f"{path.name}: {'FAILED ' + error if error else 'ok'} ({seconds:.0f} s)", flush=True)
            if error: failed.append(path.name)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
