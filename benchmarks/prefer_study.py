"""Supervised tuning, then DPO, on the embedded model, through the `ft_nb` command:

1. `ft_nb run train` on `people` (LoRA, a short run, no evaluation);
2. `ft_nb run prefer` continuing that run's adapter with DPO on `people_prefs`: preference accuracy on the held-out
   pairs before and after, the test items and the forgetting probes answered before and after;
3. `ft_nb run export` of the DPO result, as f16 and as q8_0 GGUF, each read back and compared.

Writes nbs/results/prefer_cpu.json (read by nbs/57_train.prefer.ipynb) and nbs/results/export_cpu.json (read by
nbs/39_export.ipynb).

    .venv/bin/python benchmarks/prefer_study.py [ROOT]
"""
import json, subprocess, sys, tempfile, time
from pathlib import Path

FT_NB = Path(sys.executable).parent / "ft_nb"
OUT = Path(__file__).resolve().parents[1] / "nbs" / "results" / "prefer_cpu.json"
EXPORT_OUT = OUT.with_name("export_cpu.json")
SFT = dict(base_model="embedded", data="people", max_steps=12, batch_size=8, lr=1e-3, eval_every=4, save_every=0, n_generate=0, n_probes=0, seed=0)
DPO = dict(algo="dpo", beta=0.1, lr=2e-4, max_steps=40, batch_size=4, eval_every=10, n_generate=24, n_probes=40, max_new_tokens=48, seed=0)
FROM_BASE = DPO | dict(lr=5e-5)  # the second arm: DPO on the embedded model itself, at a quarter of the rate


def ft_nb(*args):
    "The command, as a user runs it (a run that already succeeded in ROOT is kept); fails loudly."
    if "--run-name" in args and (Path(str(args[args.index("--output-root") + 1])) / args[args.index("--run-name") + 1] / "metrics.json").is_file(): return
    r = subprocess.run([str(FT_NB), *map(str, args)], capture_output=True, text=True)
    if r.returncode: raise RuntimeError(f"ft_nb {' '.join(map(str, args))} failed:\n{r.stderr[-3000:]}")


def main(root: Path):
    t0 = time.perf_counter()
    flags = lambda d: [x for k, v in d.items() for x in ("-p", k, v)]
    ft_nb("run", "train", *flags(SFT), "--output-root", root, "--run-name", "sft")
    ft_nb("run", "prefer", *flags(DPO), "-p", "sft_run", root / "sft", "--output-root", root, "--run-name", "dpo")
    ft_nb("run", "prefer", *flags(FROM_BASE), "--output-root", root, "--run-name", "dpo-base")
    arm = lambda r: {"preference": json.loads((r / "prefer.json").read_text()), "eval": json.loads((r / "eval.json").read_text()),
                     "examples": [json.loads(l) for l in (r / "generations.jsonl").read_text().splitlines()][:4]}
    run = root / "dpo"
    metrics = json.loads((run / "metrics.json").read_text())
    rec = {"command": "python benchmarks/prefer_study.py", "measured": time.strftime("%Y-%m-%d"), "sft": SFT, "dpo": DPO,
           "sft_metrics": {k: v for k, v in json.loads((root / "sft" / "metrics.json").read_text()).items() if k in ("final_val_loss", "steps", "seconds")},
           "preference": json.loads((run / "prefer.json").read_text()), "eval": json.loads((run / "eval.json").read_text()),
           "history": [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()],
           "steps": metrics["steps"], "seconds": metrics["seconds"], "examples": arm(run)["examples"],
           "from_base": {"params": FROM_BASE, **arm(root / "dpo-base")}, "total_seconds": time.perf_counter() - t0}
    OUT.write_text(json.dumps(rec, indent=1, default=str) + "\n")
    exports = {}
    for dtype in ("f16", "q8_0"):
        ft_nb("run", "export", "-p", "run", run, "-p", "dtype", dtype, "-p", "n_prompts", 8, "--output-root", root, "--run-name", f"export-{dtype}")
        exports[dtype] = json.loads((root / f"export-{dtype}" / "export.json").read_text())
    EXPORT_OUT.write_text(json.dumps({"command": "python benchmarks/prefer_study.py", "measured": time.strftime("%Y-%m-%d"),
                                      "run": "the DPO run above (embedded model, LoRA merged)", "exports": exports}, indent=1) + "\n")
    print(f"wrote {OUT} and {EXPORT_OUT}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="prefer-")))
