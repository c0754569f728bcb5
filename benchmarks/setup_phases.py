"""Where a bench arm's setup goes: the wall time from the process start to its first step, split at the calls it makes.

`ft_nb bench` records when each arm's model is built (`made_s`) and its first step begins (`ready_s`); at 8B on an H200
ft_nb's arm took 10.1 s between its imports and its first step where the expert loop took 2.0 s. This script runs one
arm of `ft_nb.bench.speed` (same spec, same examples, one step) in this fresh process with empty compile caches, and notes
when each call of its setup returns (the model built, the data prepared, the method applied and the plan made, the
Trainer made, Liger applied, the optimizer made, the first step begun and ended; on a GPU synchronised at each), with
Python's profiling hook (`sys.setprofile`): nothing of the library is changed. Each phase is the time since the one
before (the imports: since this script's first line).

    python benchmarks/setup_phases.py --model 8b --out OUT/setup_8b.json               # a GPU: the fast path as it is
    python benchmarks/setup_phases.py --model 8b --arm expert --out OUT/setup_8b_expert.json
    python benchmarks/setup_phases.py --model 1b --compile --no-step --out OUT/setup_1b_cpu.json  # the CPU: compiling forced on
    (--loss liger where liger-kernel is installed; --loss full, --no-compile: the fast path without that part, to see what
     its setup costs)
"""
import time

T0 = time.time()
import argparse, atexit, dataclasses, json, os, shutil, sys, tempfile
from pathlib import Path

_CACHE = tempfile.mkdtemp(prefix="ft_nb-setup-cache-")  # empty compile caches, as for a user's first run (unless set)
atexit.register(shutil.rmtree, _CACHE, True)
os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", f"{_CACHE}/inductor"); os.environ.setdefault("TRITON_CACHE_DIR", f"{_CACHE}/triton")

import torch

import ft_nb.bench.speed as B
from ft_nb.core import atomic_path

IMPORTED = time.time()
EVENTS: list[tuple[str, float]] = [("imports", IMPORTED)]
PROFILE: list = []  # Python's profiler from the imports to the first step, with --profile
# (module, function) -> the phase that ends when it returns ("return") or begins when it is called ("call")
WATCH = {("ft_nb.bench.speed", "_model"): ("model built", "return"),
         ("ft_nb.train.prepare", "prepare_data"): ("data prepared", "return"),
         ("ft_nb.methods.core", "apply_method"): ("method applied", "return"),
         ("ft_nb.bench.speed", "_peft"): ("method applied", "return"),  # the expert arm's
         ("ft_nb.train.plan", "plan_training"): ("plan made", "return"),
         ("ft_nb.train.fast", "packed_dataset"): ("rows packed", "return"),
         ("ft_nb.train.trainer", "__init__"): ("Trainer made", "return"),
         ("transformers.trainer", "apply_liger_kernel"): ("Liger applied", "return"),
         ("ft_nb.train.trainer", "train"): ("train() called", "call"),
         ("transformers.trainer", "create_optimizer"): ("optimizer made", "return"),
         ("ft_nb.bench.speed", "on_step_begin"): ("first step begins", "call"),
         ("ft_nb.bench.speed", "on_step_end"): ("first step ends", "return")}


class Stop(Exception):
    "Raised where the first step would begin (--no-step)."


def event(name: str):
    "Note the time `name` ended, the first time only (synchronised on a GPU, so the GPU's work is counted where it was asked for)."
    if any(n == name for n, _ in EVENTS): return
    if torch.cuda.is_available(): torch.cuda.synchronize()
    EVENTS.append((name, time.time()))
    if name == "first step begins" and PROFILE: PROFILE[0].disable()


def watcher(no_step: bool):
    "A profiling hook that notes the watched calls (and stops where the first step would begin, with `no_step`)."
    def hook(frame, what, arg):
        if what not in ("call", "return"): return
        phase = WATCH.get((frame.f_globals.get("__name__"), frame.f_code.co_name))
        if phase and phase[1] == what:
            event(phase[0])
            if no_step and phase[0] == "first step begins": sys.setprofile(None); raise Stop
    return hook


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="1b", choices=sorted(B.MODELS))
    ap.add_argument("--arm", default="ft_nb", choices=["ft_nb", "expert"])
    ap.add_argument("--rows", type=int, default=1, help="packed rows a step")
    ap.add_argument("--compile", action=argparse.BooleanOptionalAction, help="compile the decoder layers (even on the CPU), or not (--no-compile); default: as the fast path picks")
    ap.add_argument("--loss", choices=["chunked", "liger", "full"], help="the fast path's loss (liger needs liger-kernel); default: as the fast path picks")
    ap.add_argument("--no-step", action="store_true", help="stop where the first step would begin (on the CPU: a step of 4,096 tokens through a 1B model is slow)")
    ap.add_argument("--profile", type=int, default=0, metavar="N", help="also profile the setup (Python's profiler, imports to the first step) and keep its N costliest calls (cumulative)")
    ap.add_argument("--out", type=Path, help="a JSON file for the phases")
    a = ap.parse_args(argv)
    config = {k: v for k, v in (("compile", a.compile), ("fast_loss", a.loss)) if v is not None}
    spec = B.BenchSpec(a.model, rows=a.rows, steps=1, variant={"config": config} if config else {})
    if a.profile:
        import cProfile
        PROFILE.append(cProfile.Profile()); PROFILE[0].enable()
    examples = B.bench_examples(spec); steps = B.plan_steps(examples, spec)
    event("examples made")
    sys.setprofile(watcher(a.no_step))
    try: B.ARM_FNS[a.arm](spec, examples, steps, T0)
    except Stop: pass
    finally: sys.setprofile(None)
    phases = [(name, t - prev) for (name, t), (_, prev) in zip(EVENTS, [("start", T0), *EVENTS])]
    print(f"{a.arm} arm, {a.model}, {B._device()} ({torch.cuda.get_device_name() if torch.cuda.is_available() else 'cpu'}), torch {torch.__version__}")
    for name, s in phases: print(f"  {name:<24} {s:7.2f} s")
    setup = EVENTS[[n for n, _ in EVENTS].index("first step begins")][1] - IMPORTED
    print(f"  from the imports to the first step: {setup:.2f} s")
    profile = ""
    if PROFILE:
        import io, pstats
        text = io.StringIO(); pstats.Stats(PROFILE[0], stream=text).sort_stats("cumulative").print_stats(a.profile); profile = text.getvalue()
        print(profile)
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(a.out, suffix=".json") as tmp: tmp.write_text(json.dumps({"arm": a.arm, "spec": dataclasses.asdict(spec), "device": B._device(), "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None, "torch": torch.__version__,
                                     "forced": {"compile": a.compile, "loss": a.loss}, "phases": phases, "setup_s": setup, "profile": profile,
                                     "command": " ".join([Path(sys.argv[0]).name, *(argv or sys.argv[1:])])}, indent=1))
    return phases


if __name__ == "__main__":
    main()
