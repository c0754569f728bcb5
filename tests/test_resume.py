"A training job killed with SIGKILL resumes from its last complete checkpoint and ends as an uninterrupted run does."
import json, os, signal, subprocess, sys, time

import psutil

from conftest import FT_NB, ROOT, ft_nb

PARAMS = ["-p", "base_model", "tiny", "-p", "data", "people", "-p", "max_steps", "12", "-p", "eval_every", "2",
          "-p", "save_every", "2", "-p", "batch_size", "4", "-p", "lr", "0.01", "-p", "seed", "3"]


def _rows(run):
    # timings differ, and the Trainer's closing `train_loss` averages only the steps this process ran
    keep = lambda r: {k: v for k, v in r.items() if not any(t in k for t in ("runtime", "per_second", "_time", "per_s")) and k != "train_loss"}
    return [keep(json.loads(l)) for l in (run / "metrics.jsonl").read_text().splitlines()]


def test_sigkill_then_resume_matches_uninterrupted(out):
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

    again = ft_nb("run", "train", *PARAMS, "--output-root", out, "--run-name", "killed")
    assert again.returncode == 2 and "--resume" in again.stderr  # an existing run is never silently overwritten
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
