"Sweeps and searches through the `ft_nb` command: finished runs skipped, a killed search resumed from its study, the best trial's file rerun."
import pytest
import json, os, signal, subprocess, time

import yaml

from conftest import FT_NB, ROOT, ft_nb
from ft_nb.core import _alive

pytestmark = pytest.mark.slow  # multi-process runs and jobs end to end: `make test-all`


def test_sweep_job_skips_the_runs_it_already_made(out):
    args = ("run", "sweep", "--quick", "-p", "name", "lrs", "--output-root", out)
    first = ft_nb(*args, "--run-name", "s1")
    assert first.returncode == 0, first.stderr[-2000:]
    rows = json.loads((out / "s1" / "sweep.json").read_text())
    assert [(r["name"], r["skipped"]) for r in rows] == [("lr=0.001", False), ("lr=0.01", False)]
    for f in ("sweep.csv", "sweep.md", "metric.png", "sweep.png"): assert (out / "s1" / f).stat().st_size > 0, f
    again = ft_nb(*args, "-p", "lrs", "1e-3,1e-2,3e-2", "--run-name", "s2")  # one value more
    assert again.returncode == 0, again.stderr[-2000:]
    rows2 = json.loads((out / "s2" / "sweep.json").read_text())
    assert [(r["name"], r["skipped"]) for r in rows2] == [("lr=0.001", True), ("lr=0.01", True), ("lr=0.03", False)]
    assert [r["best_val_loss"] for r in rows2[:2]] == [r["best_val_loss"] for r in rows]
    lines = (out / "s2" / "sweep.csv").read_text().splitlines()
    assert lines[0].startswith("run,lr,status,") and lines[1].startswith("lr=0.001,0.001,skipped") and lines[3].startswith("lr=0.03,0.03,ran,")


def test_sweep_file_with_a_wrong_parameter_is_refused(out, tmp_path):
    spec = tmp_path / "s.yaml"
    spec.write_text("job: train\nfixed: {quick: true}\nruns:\n  - {lr: 1.0e-3}\n  - {lr: high}\n")
    r = ft_nb("run", "sweep", "-p", "spec", spec, "--output-root", out, "--run-name", "bad")
    assert r.returncode == 1 and "s.yaml (run 2): parameter 'lr' expects float | None, got 'high'" in r.stderr
    assert not (out / "s").exists()  # refused before any run


def test_killed_search_resumes_and_its_best_file_reruns(out):
    cmd = [str(FT_NB), "run", "search", "--quick", "-p", "trials", "4", "--output-root", str(out), "--run-name", "srch"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    second = out / "srch" / "trials" / "trial-001" / "metrics.json"
    deadline = time.time() + 600
    while not second.exists() and proc.poll() is None and time.time() < deadline: time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)  # the command, its kernel and the trial's kernel
    proc.wait()
    assert second.exists() and not (out / "srch" / "metrics.json").exists(), "the kill came too early or too late"
    pid, deadline = json.loads((out / "srch" / "manifest.json").read_text())["pid"], time.time() + 30
    while _alive(pid) and time.time() < deadline: time.sleep(0.1)  # SIGKILL lands asynchronously: the job's kernel can outlive the command by a moment
    listed = json.loads(ft_nb("runs", "--output-root", out, "--job", "search", "--json").stdout)
    assert [(r["name"], r["status"]) for r in listed] == [("srch", "interrupted")]

    resumed = ft_nb(*cmd[1:], "--resume")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    run = out / "srch"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["trials"]["complete"] + metrics["trials"]["pruned"] == 4
    assert metrics["trials"]["fail"] <= 1  # at most the trial the kill cut short
    for f in ("trials.csv", "trials.md", "history.png", "intermediate.png", "best.yaml"): assert (run / f).stat().st_size > 0, f
    best = yaml.safe_load((run / "best.yaml").read_text())
    assert best["quick"] is True and best["lr"] == metrics["best_params"]["lr"]

    rerun = ft_nb("run", "train", "-f", run / "best.yaml", "--output-root", out, "--run-name", "best")
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert json.loads((out / "best" / "metrics.json").read_text())["best_val_loss"] == metrics["best_value"]
