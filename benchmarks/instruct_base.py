"""Instruction tuning from a base model: the embedded model's architecture at a smaller size,
pretrained from scratch on the built-in text (`ft_nb.train.instruct.pretrain`), then the
`instruct` job on it (full fine-tuning: a model this small has no room to spare for an adapter).
Writes nbs/results/instruct_base_cpu.json (read by nbs/56_train.instruct.ipynb) and the
pretraining loss plot beside the runs.

    .venv/bin/python benchmarks/instruct_base.py [ROOT]           # pretrain and tune into ROOT, then collect
    .venv/bin/python benchmarks/instruct_base.py --collect ROOT   # collect an earlier run only
"""
import json, sys, tempfile, time
from pathlib import Path

import matplotlib.pyplot as plt

from ft_nb.runner import run_job
from ft_nb.data.records import read_jsonl
from ft_nb.models import load_tokenizer
from ft_nb.train.instruct import pretrain, pretraining_texts, scratch_model

SIZE = dict(hidden_size=256, layers=6, heads=4, kv_heads=2)
PRETRAIN = dict(max_steps=150, batch_size=16, seq_len=256, lr=2e-3, seed=0)
INSTRUCT = dict(method="full", lr=5e-4, max_steps=80, batch_size=8, n_eval=64, max_new_tokens=24, seed=0)
OUT = Path(__file__).resolve().parents[1] / "nbs" / "results" / "instruct_base_cpu.json"


def run(root: Path):
    "Pretrain the base, save it as a model folder, and run the instruct job on it."
    tok, model = load_tokenizer("embedded"), scratch_model(**SIZE)
    made = pretrain(model, tok, pretraining_texts(), **PRETRAIN)
    base = root / "base"
    made["model"].save_pretrained(base); tok.save_pretrained(base)
    info = {k: made[k] for k in ("losses", "tokens", "rows", "seconds")}
    (root / "pretrain.json").write_text(json.dumps(info))
    ax = plt.subplots(figsize=(6, 3))[1]
    ax.plot(range(1, len(made["losses"]) + 1), made["losses"]); ax.set(xlabel="step", ylabel="training loss", title="pretraining from scratch")
    ax.figure.savefig(root / "pretrain.png", dpi=110, bbox_inches="tight")
    print(f"pretrained {PRETRAIN['max_steps']} steps in {made['seconds']:.0f} s, loss {made['losses'][0]:.2f} -> {made['losses'][-1]:.2f}")
    run_job("instruct", {"base_model": str(base), **INSTRUCT}, run_name="instruct", output_root=root)


def collect(root: Path) -> dict:
    "The pretraining record, the instruct job's held-out reports, and the first answers of each held-out task."
    run = root / "instruct"
    gens = read_jsonl(run / "generations.jsonl", validate=None)
    reports = json.loads((run / "instruct.json").read_text())
    metrics = json.loads((run / "metrics.json").read_text())
    return {"command": "python benchmarks/instruct_base.py", "measured": time.strftime("%Y-%m-%d"), "size": SIZE, "pretrain": PRETRAIN | json.loads((root / "pretrain.json").read_text()),
            "instruct": INSTRUCT, "steps": metrics["steps"], "seconds": metrics["seconds"], "reports": reports,
            "examples": [g for t in reports for g in [x for x in gens if x["task"] == t][:3]]}


if __name__ == "__main__":
    args = sys.argv[1:]
    root = Path(args[-1]) if args and args[-1] != "--collect" else Path(tempfile.mkdtemp(prefix="instruct-base-"))
    if "--collect" not in args:
        root.mkdir(parents=True, exist_ok=True); run(root)
    OUT.write_text(json.dumps(collect(root), indent=1) + "\n")
    print(f"wrote {OUT}")
