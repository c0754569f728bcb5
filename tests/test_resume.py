"A training job killed with SIGKILL shows as interrupted, refuses to resume on changed data, resumes from its last complete checkpoint on the same data and ends as an uninterrupted run does; two runs of the same thing differ only in times and names."
import pytest
import json, os, signal, subprocess, sys, time

import psutil

from conftest import FT_NB, ROOT, ft_nb

pytestmark = pytest.mark.slow  # multi-process runs and jobs end to end: `make test-all`

PARAMS = ["-p", "base_model", "tiny", "-p", "max_steps", "12", "-p", "eval_every", "2",
          "-p", "save_every", "2", "-p", "batch_size", "4", "-p", "lr", "0.01", "-p", "seed", "3"]


def _rows(run):
    # timings differ, and the Trainer's closing `train_loss` averages only the steps this process ran
    keep = lambda r: {k: v for k, v in r.items() if not any(t in k for t in ("runtime", "per_second", "_time", "per_s")) and k != "train_loss"}
    return [keep(json.loads(l)) for l in (run / "metrics.jsonl").read_text().splitlines()]


def test_sigkill_then_resume_matches_uninterrupted(out):
    from ft_nb.data.builtin import builtin_records
    from ft_nb.data.records import write_jsonl
    data = out / "people.jsonl"
    write_jsonl(data, builtin_records("people"))
    original = data.read_bytes()
    global PARAMS
    PARAMS = PARAMS + ["-p", "data", str(data)]
    r = ft_nb("run", "train", *PARAMS, "--output-root", out, "--run-name", "straight")
    assert r.returncode == 0, r.stderr[-2000:]

    proc = subprocess.Popen([str(FT_NB), "run", "train", *PARAMS, "--output-root", str(out), "--run-name", "killed"],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    mark = out / "killed" / "checkpoints" / "checkpoint-4" / "ft_nb_complete.json"
    deadline = time.time() + 300
    while not mark.exists() and proc.poll() is None and time.time() < deadline: time.sleep(0.05)
    family = [proc.pid] + [c.pid for c in psutil.Process(proc.pid).children(recursive=True)]  # the CLI and its kernel
    for pid in family:
        try: os.kill(pid, signal.SIGKILL)
        except ProcessLookupError: pass
    proc.wait()
    assert mark.exists(), "the job never reached its second checkpoint"
    manifest = json.loads((out / "killed" / "manifest.json").read_text())
    assert manifest["status"] == "running" and not (out / "killed" / "metrics.json").exists(), "the kill came too late"

    listed = ft_nb("runs", "--output-root", out, "--json")
    assert {r["name"]: r["status"] for r in json.loads(listed.stdout)} == {"straight": "succeeded", "killed": "interrupted"}
    again = ft_nb("run", "train", *PARAMS, "--output-root", out, "--run-name", "killed")
    assert again.returncode == 2 and "--resume" in again.stderr  # an existing run is never silently overwritten
    data.write_bytes(original + original.splitlines(keepends=True)[0])  # one row more
    changed = ft_nb("run", "train", *PARAMS, "--output-root", out, "--run-name", "killed", "--resume")
    assert changed.returncode == 2 and "its inputs changed since it started (data: sha256" in changed.stderr, changed.stderr[-500:]
    data.write_bytes(original)
    resumed = ft_nb("run", "train", *PARAMS, "--output-root", out, "--run-name", "killed", "--resume")
    assert resumed.returncode == 0, resumed.stderr[-2000:]

    a = json.loads((out / "straight" / "metrics.json").read_text())
    b = json.loads((out / "killed" / "metrics.json").read_text())
    assert b["resumed_from"] and b["resumed_from"] >= "checkpoint-4"
    for k in ("final_train_loss", "final_val_loss", "best_val_loss", "steps"): assert a[k] == b[k], k
    assert _rows(out / "straight") == _rows(out / "killed")
    assert json.loads((out / "killed" / "manifest.json").read_text())["status"] == "succeeded"


def test_resume_refuses_other_parameters(out):
    r = ft_nb("run", "train", "--quick", "--output-root", out, "--run-name", "q")
    assert r.returncode == 0, r.stderr[-2000:]
    r = ft_nb("run", "train", "--quick", "--output-root", out, "--run-name", "q", "--resume")
    assert r.returncode == 2 and "already succeeded" in r.stderr


def test_same_seed_runs_differ_only_in_times_and_names(out):
    for name in ("same-seed-a", "same-seed-b"):
        r = ft_nb("run", "train", "--quick", "-p", "seed", "5", "--output-root", out, "--run-name", name)
        assert r.returncode == 0, r.stderr[-2000:]
    a, b = (json.loads((out / n / "metrics.json").read_text()) for n in ("same-seed-a", "same-seed-b"))
    timing = ("seconds", "step_s_median", "tokens_per_s", "peak_rss_gib", "peak_gpu_gib", "best_checkpoint")  # times, and a path holding the run's name
    assert {k: v for k, v in a.items() if k not in timing} == {k: v for k, v in b.items() if k not in timing}
    d = ft_nb("diff", "same-seed-a", "same-seed-b", "--output-root", out, "--json")
    assert d.returncode == 0, d.stderr
    report = json.loads(d.stdout)
    assert report["verdict"].startswith("only times and run names differ"), report["verdict"]
    assert {r["kind"] for r in report["differences"]} == {"time", "name"} and any(r["key"] == "run_dir" for r in report["differences"])
    shown = ft_nb("show", out / "same-seed-a")
    assert "status: succeeded" in shown.stdout and "fingerprints:" in shown.stdout
