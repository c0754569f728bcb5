"""Where a training step's time goes in one arm of the speed benchmark (`ft_nb.bench.speed`): torch.profiler
over five optimizer steps near the end of a short run, in this process, one arm per invocation.

    python benchmarks/profile_step.py --arm ft_nb --model 1b --out OUT
    python benchmarks/profile_step.py --arm expert --model 1b --out OUT

Prints (and writes to OUT/profile-<arm>-<model>.txt) the operators by self GPU time and by self CPU
time, and the step times. With --python, cProfile instead of torch.profiler (OUT/profile-<arm>-<model>-python.txt):
the Python functions by their own time over the same five steps, what the CPU does between the GPU's
work. It found the Trainer's per-step module walks behind the steady-state gap BENCHMARKS.md
describes. Every optimizer's step advances the profiler (a global post-step hook), so the same
script profiles the Trainer arms and the hand-written loop alike.
"""
import argparse, cProfile, io, pstats, time
from pathlib import Path

import torch
from torch.optim.optimizer import register_optimizer_step_post_hook
from torch.profiler import ProfilerActivity, profile, schedule

from ft_nb.bench.speed import ARM_FNS, BenchSpec, bench_examples, plan_steps


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arm", choices=tuple(ARM_FNS), required=True)
    ap.add_argument("--model", default="1b")
    ap.add_argument("--steps", type=int, default=30, help="optimizer steps; the profiler records five of the last six")
    ap.add_argument("--out", required=True)
    ap.add_argument("--python", action="store_true", help="cProfile (Python functions) instead of torch.profiler")
    a = ap.parse_args()
    spec = BenchSpec(a.model, steps=a.steps)
    examples = bench_examples(spec)
    steps = plan_steps(examples, spec)
    cuda = torch.cuda.is_available()
    if a.python:
        py, count = cProfile.Profile(), [0]
        def advance(opt, args, kwargs):
            count[0] += 1
            if count[0] == a.steps - 6: py.enable()
            if count[0] == a.steps - 1: py.disable()
        hook = register_optimizer_step_post_hook(advance)
        try: result = ARM_FNS[a.arm](spec, examples, steps, time.time())
        finally: hook.remove()
        stream = io.StringIO()
        pstats.Stats(py, stream=stream).sort_stats("tottime").print_stats(40)
        tables = [f"{a.arm}, {spec.model}; step times (s): " + ", ".join(f"{t:.4f}" for t in result["times"][-6:]), stream.getvalue()]
    else:
        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
        with profile(activities=activities, schedule=schedule(wait=max(0, a.steps - 8), warmup=2, active=5)) as prof:
            hook = register_optimizer_step_post_hook(lambda opt, args, kwargs: prof.step())
            try: result = ARM_FNS[a.arm](spec, examples, steps, time.time())
            finally: hook.remove()
        tables = [f"{a.arm}, {spec.model}, {torch.cuda.get_device_name() if cuda else 'cpu'}; step times (s): "
                  + ", ".join(f"{t:.4f}" for t in result["times"][-6:])]
        for key in (["self_cuda_time_total"] if cuda else []) + ["self_cpu_time_total"]:
            tables.append(f"by {key}:\n" + prof.key_averages().table(sort_by=key, row_limit=25))
    text = "\n\n".join(tables)
    print(text)
    Path(a.out).mkdir(parents=True, exist_ok=True)
    (Path(a.out) / f"profile-{a.arm}-{spec.model}{'-python' if a.python else ''}.txt").write_text(text)


if __name__ == "__main__":
    main()
