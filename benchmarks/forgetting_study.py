"""Forgetting study: full fine-tuning at a high learning rate, LoRA, and LoRA with replay, on the
embedded model and the `stdlib` domain data; each run's test-split comparison and probes (the
`train` job), then its drift on general prompts (the `forgetting` job). Writes one record per arm
to nbs/results/forgetting_cpu.json (read by nbs/52_eval.forgetting.ipynb and the notebooks whose
claims it checks).

    .venv/bin/python benchmarks/forgetting_study.py [ROOT]           # run the arms into ROOT, then collect
    .venv/bin/python benchmarks/forgetting_study.py --collect ROOT   # collect the results of an earlier run only
"""
import json, sys, tempfile, time
from pathlib import Path

from ft_nb.runner import run_variants

SHARED = dict(base_model="embedded", data="stdlib", max_train_rows=240, max_val_rows=48, max_steps=30, batch_size=8,
              eval_every=10, save_every=0, n_generate=32, n_probes=160, max_new_tokens=48, seed=0)
ARMS = {"full": dict(method="full", lr=2e-4), "lora": dict(method="lora", lr=2e-3),
        "lora_replay": dict(method="lora", lr=2e-3, replay=0.25)}
DRIFT = dict(n_probes=160, n_drift=32, max_forgetting=100.0)


def run(root: Path):
    "Train every arm, then check each finished run with the forgetting job."
    t0 = time.perf_counter()
    trained = run_variants({name: SHARED | p for name, p in ARMS.items()}, root / "train")
    run_variants({r["name"]: {"run": r["run_dir"], **DRIFT} for r in trained if "error" not in r}, root / "forgetting", job="forgetting")
    print(f"{time.perf_counter() - t0:.0f} s in all")


def collect(root: Path) -> list[dict]:
    "One record per arm: its train metrics, per-probe correctness before and after, and the forgetting job's drift."
    read = lambda p: [json.loads(l) for l in p.read_text().splitlines()]
    rows = []
    for name, params in ARMS.items():
        t, f = root / "train" / name, root / "forgetting" / name
        probes = read(t / "probes.jsonl")
        rows.append({"arm": name, **params, "train": json.loads((t / "metrics.json").read_text()),
                     "probe_before": [p["correct"] for p in probes], "probe_after": [p["correct_after"] for p in probes],
                     "forgetting_job": json.loads((f / "metrics.json").read_text())})
    return rows


if __name__ == "__main__":
    args = sys.argv[1:]
    if args[:1] == ["--collect"]: root = Path(args[1])
    else:
        root = Path(args[0]) if args else Path(tempfile.mkdtemp(prefix="forgetting-study-"))
        run(root)
    rows = collect(root)
    out = Path(__file__).resolve().parents[1] / "nbs" / "results" / "forgetting_cpu.json"
    out.write_text(json.dumps({"command": "benchmarks/forgetting_study.py", "measured": time.strftime("%Y-%m-%d"),
                               "shared": SHARED, "drift": DRIFT, "arms": rows}, indent=1) + "\n")
    for r in rows:
        t, d = r["train"], r["forgetting_job"]["drift"]
        print(f"{r['arm']}: probes {t['before']['probe_accuracy']:.3f} -> {t['after']['probe_accuracy']:.3f}, "
              f"test token F1 {t['before']['token_f1']:.3f} -> {t['after']['token_f1']:.3f}, KL {d['kl']:.3f}")
