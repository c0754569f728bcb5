"The notebooks as the published record: every library notebook is committed executed and current, and an edited one is caught; the README is the front page; the site builds offline and renders in Chromium with its plots and API reference (screenshots in build/screenshots/, for a person to look at)."
import os, re, shutil, subprocess, sys

import nbformat
import pytest

from conftest import ROOT

sys.path.insert(0, str(ROOT / "docs"))
import build, execute  # noqa: E402  (docs/build.py, docs/execute.py)

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(CHROMIUM is None and not os.environ.get("CI"), reason="Debian's chromium is not installed (CI installs it)")
SHOTS = ROOT / "build" / "screenshots"


def test_every_library_notebook_is_committed_with_current_outputs():
    stale = {p.name: why for p in execute.library_notebooks() if (why := execute.staleness(p))}
    assert stale == {}, f"stored outputs missing or stale; run `make execute` and commit: {stale}"


def test_a_notebook_edited_without_execution_is_stale(tmp_path):
    src = ROOT / "nbs" / "41_distributed.plan.ipynb"
    nb = nbformat.read(src, as_version=4)
    assert execute.staleness(src) is None
    cell = next(c for c in nb.cells if c.cell_type == "code" and "plan_memory(" in c.source and not c.source.startswith("#|"))
    cell.source += "\n1 + 1"
    nbformat.write(nb, tmp_path / "edited.ipynb")
    assert execute.staleness(tmp_path / "edited.ipynb") == "code changed since execution"
    nb.metadata.pop(execute.KEY)
    nbformat.write(nb, tmp_path / "never.ipynb")
    assert execute.staleness(tmp_path / "never.ipynb") == "never executed"
    r = subprocess.run([sys.executable, str(ROOT / "docs" / "execute.py"), "--check", str(tmp_path / "edited.ipynb")], capture_output=True, text=True)
    assert r.returncode == 1 and "edited.ipynb: code changed since execution" in r.stdout


def test_the_front_page_is_the_readme():
    nb = nbformat.read(ROOT / "nbs" / "index.ipynb", as_version=4)
    assert [c.source for c in nb.cells] == [(ROOT / "README.md").read_text().strip()], "run `python docs/build.py --index`"


def test_troubleshooting_is_read_from_the_code():
    errors = build.raised_errors()
    assert any(e["where"] == "ft_nb.distributed.launch.check_strategy" and "needs GPUs" in e["message"] for e in errors)
    assert any(e["where"] == "ft_nb.models._resolve" and "{name!r}" in e["message"] for e in errors)  # values as placeholders
    assert len(errors) > 50


def _chromium(*args, tmp) -> str:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--hide-scrollbars", "--virtual-time-budget=5000", f"--user-data-dir={tmp / 'profile'}"]
    return subprocess.run([CHROMIUM, *flags, *args], capture_output=True, text=True, timeout=120, check=True).stdout


@needs_chromium
@pytest.mark.slow
def test_the_site_builds_offline_and_renders_plots_and_api_docs(tmp_path):
    index = build.build()
    site = index.parent
    pages = {"front": index, "method": site / "nbs" / "20a_methods.compare.html", "api": site / "nbs" / "41_distributed.plan.html",
             "job": site / "jobs" / "train.html", "paths": site / "paths.html", "troubleshooting": site / "troubleshooting.html"}
    dom = {name: _chromium("--dump-dom", page.as_uri(), tmp=tmp_path) for name, page in pages.items()}
    assert "Three commands" in dom["front"] and "Distributed" in dom["front"]  # the README, and the sidebar's sections
    assert re.search(r'<img[^>]+src="[^"]*\.png"', dom["method"])  # the comparison's plot, from the stored outputs
    assert "plot_plans" in dom["api"] and "tokens per micro-batch on each GPU" in dom["api"]  # show_doc with the parameters' docments
    assert "<table" in dom["job"] and "max_steps" in dom["job"]  # the job's parameters table
    assert "Many GPUs" in dom["paths"] and "needs GPUs" in dom["troubleshooting"]
    SHOTS.mkdir(parents=True, exist_ok=True)
    for name in ("front", "method", "api"):
        height = {"front": 1600, "method": 6000, "api": 16000}[name]  # down to the plot, and to the API reference at the page's end
        _chromium(f"--screenshot={SHOTS / f'{name}.png'}", f"--window-size=1280,{height}", pages[name].as_uri(), tmp=tmp_path)
        assert (SHOTS / f"{name}.png").read_bytes()[:4] == b"\x89PNG" and (SHOTS / f"{name}.png").stat().st_size > 30_000
