"""How soon a short training run on a large curated folder takes its first step, and how many rows it tokenizes.

Runs the `train` job's own library calls in this fresh process, on this machine's CPU: the data loaded and cut to
the rows asked for (`training_data`), the embedded model loaded, the data prepared and the run planned (`train_sft`),
and stops where the first optimizer step begins. Prints the seconds since the process started at each stage and
writes them, with the count of conversations tokenized, to OUT. It also runs the ft_nb before the training core's
rework (a source tree given with --old-source), whose `train_sft` tokenized and audited every row, so that both are
measured on the same machine, the same data and the same command:

    python benchmarks/curate_200k.py --rows 55000 --keep /tmp/c40k          # a curated folder of 41,174 training rows
    python benchmarks/first_step.py --data /tmp/c40k/out --out first_step.json [--old-source OLD_TREE]

The count comes from a second run of each version with Python's profiling hook on `tokenize_chat` (the hook slows
every call, so the timed run goes without it).
"""
import time

T0 = time.time()
import argparse, json, os, subprocess, sys
from pathlib import Path

STAGES = []


def stage(name: str):
    STAGES.append((name, round(time.time() - T0, 2))); print(f"{time.time() - T0:7.1f} s  {name}", flush=True)


class First(Exception):
    "Raised where the first optimizer step begins."


def child(data: str, train_rows: int, val_rows: int, steps: int, count: bool):
    "One run in this process: the train job's calls up to the first step."
    import ft_nb.train.sft as sft
    from transformers import TrainerCallback
    from ft_nb.models import load_base_model, load_tokenizer
    stage("imports")
    calls = [0]
    if count:
        def hook(frame, what, arg):
            if what == "call" and frame.f_code.co_name == "tokenize_chat" and frame.f_globals.get("__name__") == "ft_nb.data.tokenize": calls[0] += 1
        sys.setprofile(hook)

    class Stop(TrainerCallback):
        def on_train_begin(self, args, state, control, **kw): stage("Trainer starts")
        def on_step_begin(self, args, state, control, **kw): stage("first step begins"); raise First
    params = {"max_train_rows": train_rows, "max_val_rows": val_rows, "max_steps": steps, "max_length": None, "eval_every": 10, "batch_size": 8}
    tok = load_tokenizer("embedded")
    try:
        if hasattr(sft, "training_data"):  # before the rework: the audit and the tokenization of every row in training_data and train_sft
            splits, cfg = sft.training_data(data, params, tok)
            stage("data loaded and audited"); model = load_base_model("embedded")[0]; stage("model loaded")
            sft.train_sft(model, tok, splits, "lora", cfg, callbacks=[Stop()])
        else:
            from ft_nb.train.prepare import prepare_data, training_data
            splits, cfg = training_data(data, params)
            ready = prepare_data(splits, tok, cfg, base="embedded"); stage("data prepared")
            model = load_base_model("embedded")[0]; stage("model loaded")
            sft.train_sft(model, tok, ready, "lora", cfg, callbacks=[Stop()])
    except First: pass
    finally: sys.setprofile(None)
    return {"stages": STAGES, "tokenized": calls[0] if count else None, "train_rows": len(splits["train"]), "val_rows": len(splits["validation"])}


def run(source: str | None, args, count: bool) -> dict:
    "This script as a child process on the package at `source` (None: the installed one)."
    env = {**os.environ, **({"PYTHONPATH": source} if source else {}), "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, __file__, "--data", args.data, "--train-rows", str(args.train_rows), "--val-rows", str(args.val_rows), "--steps", str(args.steps),
           "--child", "count" if count else "time"]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if r.returncode: raise SystemExit(r.stdout[-2000:] + r.stderr[-3000:])
    return json.loads(r.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True); ap.add_argument("--out")
    ap.add_argument("--train-rows", type=int, default=40_000); ap.add_argument("--val-rows", type=int, default=64); ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--old-source", help="a source tree of ft_nb before the training core's rework, measured the same way")
    ap.add_argument("--child", choices=["time", "count"], help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        print(json.dumps(child(a.data, a.train_rows, a.val_rows, a.steps, a.child == "count"))); return
    out = {"command": " ".join(sys.argv), "cpus": os.cpu_count()}
    for name, source in (("after", None), *((("before", a.old_source),) if a.old_source else ())):
        timed, counted = run(source, a, False), run(source, a, True)
        first = dict(timed["stages"])["first step begins"]
        out[name] = {"stages": timed["stages"], "first_step_s": first, "tokenized": counted["tokenized"], "train_rows": timed["train_rows"], "val_rows": timed["val_rows"]}
        print(f"{name}: first step {first:.1f} s after the process started; {counted['tokenized']:,} conversations tokenized "
              f"({timed['train_rows']:,} training and {timed['val_rows']:,} validation rows)", flush=True)
    if a.out: Path(a.out).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
