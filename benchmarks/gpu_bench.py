"""The speed benchmark (`ft_nb.bench.speed`) on a GPU, as a list of jobs run in order, each job's results
written as soon as it ends, no new job started after --budget seconds.

    python benchmarks/gpu_bench.py --out OUT bench:1b:200:3 bench:8b:60:1 qlora:70b edge:8b
    python benchmarks/gpu_bench.py --out OUT edge:8b:20480,24576,28672:ft_nb,tutorial,expert   # a finer grid past 16,384
    python benchmarks/gpu_bench.py --out OUT --rows 4 bench:1b:200:3    # the issue's ~15k tokens a step
    FT_NB_BENCH_PROFILE=60 python benchmarks/gpu_bench.py --out OUT bench:8b:200:1:expert,ft_nb   # each run's JSON keeps
                           the 60 costliest calls (cumulative) of its setup, from the imports to the first step

bench:MODEL:STEPS:REPEATS[:ARM,ARM[:ONCE,ONCE]]  the arms side by side (LoRA, rows of 4096, --rows a step); all three unless
                           named; the ONCE arms in the first round only
ckpt:MODEL:STEPS           the ft_nb arm alone with gradient checkpointing (the memory estimate against the peak)
qlora:MODEL                one QLoRA step on a model created directly in 4-bit, layer by layer
edge:MODEL[:LEN,LEN[:ARM,ARM[:ckpt]]]  the longest single sequence each arm trains at (of the lengths given, tried in
                           order until one fails; ckpt: the ft_nb arm with gradient checkpointing)
"""
import argparse, json, sys, time
from pathlib import Path

from ft_nb.bench.speed import ARMS, MODELS, BenchSpec, bench, edge_lengths, qlora_step


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--budget", type=float, default=420, help="seconds after which no new job starts")
    ap.add_argument("--tag", default="", help="suffix of the result folders (several calls' repeats of one spec)")
    ap.add_argument("--rows", type=int, default=1, help="packed rows of 4096 tokens an optimizer step, in bench jobs (the tutorial arm pads the same examples)")
    ap.add_argument("jobs", nargs="+")
    a = ap.parse_args()
    out, t0 = Path(a.out), time.time()
    for job in a.jobs:
        if time.time() - t0 > a.budget: print(f"skipped {job}: budget spent", flush=True); continue
        kind, *args = job.split(":")
        print(f"=== {job} (at {time.time() - t0:.0f} s)", flush=True)
        try:
            if kind == "bench":
                model, steps, repeats = args[0], int(args[1]), int(args[2])
                arms = tuple(args[3].split(",")) if len(args) > 3 and args[3] else ARMS
                once = tuple(args[4].split(",")) if len(args) > 4 else ()
                folder = out / f"bench-{model}{f'x{a.rows}' if a.rows > 1 else ''}{a.tag}"
                s = bench(BenchSpec(model, steps=steps, rows=a.rows), folder, arms=arms, repeats=repeats, once=once)
                print((folder / "bench.md").read_text(), json.dumps(s["loss_gaps"]), flush=True)
            elif kind == "ckpt":
                s = bench(BenchSpec(args[0], steps=int(args[1]), checkpointing=True), out / f"ckpt-{args[0]}{a.tag}", arms=("ft_nb",), repeats=1)
                f = s["arms"]["ft_nb"]; print(f"checkpointing: estimate {f['estimate_gib']:.2f} GiB, peak {f['peak_gib']:.2f} GiB", flush=True)
            elif kind == "qlora":
                r = qlora_step(MODELS[args[0]])
                (out / f"qlora-{args[0]}.json").write_text(json.dumps(r, indent=1)); print(r, flush=True)
            elif kind == "edge":
                lengths = {"lengths": tuple(map(int, args[1].split(",")))} if len(args) > 1 and args[1] else {}  # else edge_lengths' own
                arms = tuple(args[2].split(",")) if len(args) > 2 and args[2] else ARMS
                ckpt = len(args) > 3 and args[3] == "ckpt"
                name = f"edge-{args[0]}{'-ckpt' if ckpt else ''}{a.tag}"
                r = edge_lengths(args[0], arms, folder=out / name, checkpointing=ckpt, **lengths)
                (out / f"{name}.json").write_text(json.dumps(r, indent=1)); print(json.dumps(r), flush=True)
        except Exception as e:
            print(f"FAILED {job}: {type(e).__name__}: {str(e)[-3000:]}", flush=True)
    print(f"done in {time.time() - t0:.0f} s", flush=True)


if __name__ == "__main__":
    main()
