"""Sweep and search on the embedded model, through the `ft_nb` command as a user runs them:

1. the learning-rate sweep (`ft_nb run sweep`, 5 rates, 16 steps), then the same sweep again (every run skipped);
2. the Optuna search (`ft_nb run search`, 8 trials of 16 steps over learning rate, LoRA rank and alpha, batch size),
   killed with SIGKILL once four trials have finished, listed by `ft_nb runs`, then resumed with `--resume`;
3. the best trial's `best.yaml` rerun with `ft_nb run train -f`, and `ft_nb diff` between the rerun and the trial.

Writes nbs/results/experiments_cpu.json (read by nbs/63_experiments.ipynb).

    .venv/bin/python benchmarks/experiments_study.py [ROOT]
"""
import json, os, signal, subprocess, sys, tempfile, time
from pathlib import Path

FT_NB = Path(sys.executable).parent / "ft_nb"
OUT = Path(__file__).resolve().parents[1] / "nbs" / "results" / "experiments_cpu.json"


def ft_nb(*args, root: Path) -> subprocess.CompletedProcess:
    "The command, as a user runs it; fails loudly."
    r = subprocess.run([str(FT_NB), *map(str, args), "--output-root", str(root)], capture_output=True, text=True)
    if r.returncode: raise RuntimeError(f"ft_nb {' '.join(map(str, args))} failed:\n{r.stderr[-3000:]}")
    return r


def main(root: Path):
    t, rec = time.perf_counter(), {"command": "python benchmarks/experiments_study.py", "measured": time.strftime("%Y-%m-%d")}
    ft_nb("run", "sweep", "-p", "name", "lr-grid", "--run-name", "sweep-1", root=root)
    ft_nb("run", "sweep", "-p", "name", "lr-grid", "--run-name", "sweep-2", root=root)
    rec["sweep"] = json.loads((root / "sweep-1" / "sweep.json").read_text())
    rec["sweep_again_skipped"] = [r["skipped"] for r in json.loads((root / "sweep-2" / "sweep.json").read_text())]
    rec["sweep_seconds"] = time.perf_counter() - t

    t = time.perf_counter()
    cmd = [str(FT_NB), "run", "search", "--output-root", str(root), "--run-name", "search"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    fourth = root / "search" / "trials" / "trial-003" / "metrics.json"
    while not fourth.exists() and proc.poll() is None: time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL); proc.wait()
    rec["killed_after_trials"] = sorted(p.parent.name for p in (root / "search" / "trials").glob("*/metrics.json"))
    rec["listed_after_kill"] = [(r["name"], r["status"]) for r in json.loads(ft_nb("runs", "--job", "search", "--json", root=root).stdout)]
    ft_nb("run", "search", "--run-name", "search", "--resume", root=root)
    rec["search"] = json.loads((root / "search" / "metrics.json").read_text())
    rec["trials"] = (root / "search" / "trials.csv").read_text()
    rec["search_seconds"] = time.perf_counter() - t

    ft_nb("run", "train", "-f", root / "search" / "best.yaml", "--run-name", "best-rerun", root=root)
    rec["rerun_best_val_loss"] = json.loads((root / "best-rerun" / "metrics.json").read_text())["best_val_loss"]
    best = root / "search" / "trials" / f"trial-{rec['search']['best_trial']:03d}"
    diff = json.loads(ft_nb("diff", best, root / "best-rerun", "--json", root=root).stdout)
    rec["diff_verdict"], rec["diff"] = diff["verdict"], diff["differences"]
    OUT.write_text(json.dumps(rec, indent=1, default=str) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="experiments-")))
