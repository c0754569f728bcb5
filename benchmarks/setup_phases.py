"""Where a bench arm's setup goes: the wall time from the process start to its first step, split at the calls it makes.

`ft_nb bench` records when each arm's model is built (`made_s`) and its first step begins (`ready_s`); at 8B on an H200
ft_nb's arm took 10.1 s between its imports and its first step where the expert loop took 2.0 s. This script runs one
arm of `ft_nb.bench` (same spec, same examples) in this fresh process with empty compile caches, notes the time at each
call of its setup (the model built, the method applied, the memory estimated, the rows packed, the packing and compiling
contexts entered, the Trainer made, Liger applied, the optimizer made, the first step begun and ended; on a GPU
synchronised at each), and stops after the first step. Each phase is the time since the one before (the imports: since
this script's first line).

    python benchmarks/setup_phases.py --model 8b --out OUT/setup_8b.json               # a GPU: the fast path as it is
    python benchmarks/setup_phases.py --model 8b --arm expert --out OUT/setup_8b_expert.json
    python benchmarks/setup_phases.py --model 1b --compile --no-step --out OUT/setup_1b_cpu.json  # the CPU: compiling forced on
    (--loss liger where liger-kernel is installed: Liger is applied at setup even where its kernels cannot run;
     --loss full, --no-compile: the fast path without that part, to see what its setup costs)
"""
import time

T0 = time.time()
import argparse, atexit, dataclasses, json, os, shutil, sys, tempfile
from pathlib import Path

_CACHE = tempfile.mkdtemp(prefix="ft_nb-setup-cache-")  # empty compile caches, as for a user's first run (unless set)
atexit.register(shutil.rmtree, _CACHE, True)
os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", f"{_CACHE}/inductor"); os.environ.setdefault("TRITON_CACHE_DIR", f"{_CACHE}/triton")

import torch
import transformers.trainer as TT

import ft_nb.bench as B
import ft_nb.train.sft as S
from ft_nb.core import atomic_path

IMPORTED = time.time()
EVENTS: list[tuple[str, float]] = [("imports", IMPORTED)]
PROFILE: list = []  # Python's profiler from the imports to the first step, with --profile


class Stop(Exception):
    "Raised after the first step: the rest of the run is not this script's business."


def event(name: str):
    "Note the time `name` ended, the first time only (synchronised on a GPU, so the GPU's work is counted where it was asked for)."
    if any(n == name for n, _ in EVENTS): return
    if torch.cuda.is_available(): torch.cuda.synchronize()
    EVENTS.append((name, time.time()))
    if name == "first step begins" and PROFILE: PROFILE[0].disable()


def note(owner, attr: str, name: str, at: str = "return"):
    "Wrap `owner.attr` so that the time it returns (at='return') or is called (at='call') is noted as `name`."
    fn = getattr(owner, attr)
    def wrapped(*args, **kw):
        if at == "call": event(name)
        out = fn(*args, **kw)
        if at == "return": event(name)
        return out
    setattr(owner, attr, wrapped)


def instrument(arm: str, force_compile: bool | None, loss: str | None, step: bool = True):
    "Put the notes into the arm's calls; force the GPU's parts (compiled layers on or off, the loss) where asked (None: as the fast path picks)."
    mark = B._mark
    def noted(phase: str):
        mark(phase)
        if phase == "made": event("model built")
        if phase == "ready":
            event("first step begins")
            if arm == "expert" or not step: raise Stop  # the expert loop has no callback: its setup only
    B._mark = noted
    step_end = B._Clock.on_step_end
    def first_end(self, *args, **kw):
        step_end(self, *args, **kw); event("first step ends"); raise Stop
    B._Clock.on_step_end = first_end
    note(S, "apply_method", "method applied")
    note(B, "_peft", "method applied")  # the expert arm's
    note(S, "_estimate", "memory estimated")
    note(S, "packed_dataset", "rows packed")
    note(B, "packed_dataset", "rows packed")  # the expert arm's
    note(S, "uncast_adapter_inputs", "contexts entered", at="call")  # called once packing_context and compiled_layers are entered
    note(S.FtTrainer, "__init__", "Trainer made")
    note(TT, "apply_liger_kernel", "Liger called", at="call")  # in Trainer.__init__ or at the start of train(), by the version
    note(TT, "apply_liger_kernel", "Liger applied")
    note(S.FtTrainer, "train", "train() called", at="call")
    note(TT.Trainer, "create_optimizer", "optimizer made")
    forced = {k: on for k, on in (("compile", force_compile), ("loss", loss)) if on is not None}
    if forced:
        parts = S.fast_parts
        S.fast_parts = lambda model, loss="chunked", compile=None: dataclasses.replace(parts(model, loss=loss, compile=compile), **forced)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="1b", choices=sorted(B.MODELS))
    ap.add_argument("--arm", default="ft_nb", choices=["ft_nb", "expert"])
    ap.add_argument("--rows", type=int, default=1, help="packed rows a step")
    ap.add_argument("--compile", action=argparse.BooleanOptionalAction, help="compile the decoder layers (even on the CPU), or not (--no-compile); default: as the fast path picks")
    ap.add_argument("--loss", choices=["chunked", "liger", "full"], help="the fast path's loss (liger: even on the CPU, needs liger-kernel); default: as the fast path picks")
    ap.add_argument("--no-step", action="store_true", help="stop where the first step would begin (on the CPU: a step of 4,096 tokens through a 1B model is slow)")
    ap.add_argument("--profile", type=int, default=0, metavar="N", help="also profile the setup (Python's profiler, imports to the first step) and keep its N costliest calls (cumulative)")
    ap.add_argument("--out", type=Path, help="a JSON file for the phases")
    a = ap.parse_args(argv)
    instrument(a.arm, a.compile, a.loss, not a.no_step)
    if a.profile:
        import cProfile
        PROFILE.append(cProfile.Profile()); PROFILE[0].enable()
    spec = B.BenchSpec(a.model, rows=a.rows)
    examples = B.bench_examples(spec); steps = B.plan_steps(examples, spec)
    event("examples made")
    try: B.ARM_FNS[a.arm](spec, examples, steps, T0)
    except Stop: pass
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


if __name__ == "__main__":
    main()
