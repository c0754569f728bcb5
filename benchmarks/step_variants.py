"""Where a training step's time goes: the speed benchmark's arms (`ft_nb.bench.speed`) with one part changed at
a time, each variant in a fresh process with empty compile caches, on the same examples, batches and seed.

    python benchmarks/step_variants.py --model 1b --steps 60 --out OUT [VARIANT ...]
    python benchmarks/step_variants.py --quick --steps 4 --out OUT ft_nb ft_nb+two-graphs   # on the CPU

--quick takes the CPU smoke test's configuration (`ft_nb.bench.speed.QUICK`, the tiny model); without a GPU the
ft_nb variants then compile their layers and run `ft_nb_varlen` (its CPU reference), so the compile path is
what is measured.

Every variant is a `BenchSpec.variant` (SFTConfig fields, the plan's `FastParts` fields, the expert arm's
kernels, the clock) or one of PyTorch's compiler's environment variables: nothing here changes the library
from outside.

Variants (all by default):
  expert                   the benchmark's expert arm as it is (eager, no Liger)
  expert+liger             plus all of Liger's kernels (fused linear cross-entropy, RMSNorm, SwiGLU, RoPE)
  expert+liger+compile     plus torch.compile of each decoder layer
  ft_nb                    the benchmark's ft_nb arm: train_sft's fast path as it is (chunked loss, compiled layers)
  ft_nb-compile            the same with eager layers (SFTConfig.compile=False)
  ft_nb+liger              the same with Liger's fused loss instead of the chunked one (SFTConfig.fast_loss="liger")
  ft_nb+full-loss          the same with the model's own loss (the full-vocabulary logits again)
  ft_nb+liger-all          the same with all of Liger's kernels (FastParts.liger="all")
  ft_nb+liger-all-compile  all of Liger's kernels, eager layers
  ft_nb+flex               the ft_nb arm with flex attention instead of the variable-length kernel (SFTConfig.attention)
  ft_nb+two-graphs         the first layer's input not made to require grad (FastParts.one_graph=False): under LoRA the
                           first layer then compiles a graph of its own
  ft_nb+cast-inputs        PEFT's copies of each adapter's input to fp32 kept (FastParts.uncast_adapters=False)
  ft_nb+sync-clock         the step clock synchronising the GPU at each step's start and end (History reads CUDA events)
  expert+sync-clock        the same for the expert arm
  ft_nb+nan-check          the Trainer's NaN/inf loss check on the CPU, which waits each step (FastParts.nan_check_on_device=False)
  ft_nb+asks               the examples' bounds and labelled positions found on the device in each step, not carried by the
                           batch (FastParts.from_batch=False)
  ft_nb+blocking           batches moved to the GPU with blocking copies (FastParts.non_blocking=False)
  ft_nb+sync-clock+nan-check+asks+blocking
                           all four waits put back
  ft_nb+log20              a training-loss log every 20 steps instead of every step (SFTConfig.log_every; each log reads the loss)
  ft_nb+fork-workers       inductor's compile workers forked from the training process (TORCHINDUCTOR_WORKER_START=fork)
  ft_nb+one-thread         the kernels compiled in the training process, one at a time (TORCHINDUCTOR_COMPILE_THREADS=1)
  ft_nb+cudagraphs         the compiled layers replayed as CUDA graphs (TORCHINDUCTOR_CUDAGRAPHS=1): the batch's bounds come
                           at one fixed size, so no step changes a graph's inputs' shapes

A variant named twice runs twice; its second run is stored as NAME#2, and so on.

Prints one line per variant: steady step (median of the second half), first pass (process start to last
step), peak memory, first and last loss; and writes OUT/variants-<model>.json (and OUT/<variant>-<model>.compile.txt
for a run that compiled: where the compiler's time went).
"""
import argparse, dataclasses, json, statistics, sys, time
from pathlib import Path

VARIANTS = {  # name -> (arm, BenchSpec.variant, environment of the arm's process)
    "expert": ("expert", {}, {}),
    "expert+liger": ("expert", {"expert": "liger"}, {}),
    "expert+liger+compile": ("expert", {"expert": "liger+compile"}, {}),
    "ft_nb": ("ft_nb", {}, {}),
    "ft_nb-compile": ("ft_nb", {"config": {"compile": False}}, {}),
    "ft_nb+liger": ("ft_nb", {"config": {"fast_loss": "liger"}}, {}),
    "ft_nb+full-loss": ("ft_nb", {"config": {"fast_loss": "full"}}, {}),
    "ft_nb+liger-all": ("ft_nb", {"config": {"fast_loss": "liger"}, "parts": {"liger": "all"}}, {}),
    "ft_nb+liger-all-compile": ("ft_nb", {"config": {"fast_loss": "liger", "compile": False}, "parts": {"liger": "all"}}, {}),
    "ft_nb+flex": ("ft_nb", {"config": {"attention": "flex_attention"}}, {}),
    "ft_nb+two-graphs": ("ft_nb", {"parts": {"one_graph": False}}, {}),
    "ft_nb+cast-inputs": ("ft_nb", {"parts": {"uncast_adapters": False}}, {}),
    "ft_nb+sync-clock": ("ft_nb", {"sync_clock": True}, {}),
    "expert+sync-clock": ("expert", {"sync_clock": True}, {}),
    "ft_nb+nan-check": ("ft_nb", {"parts": {"nan_check_on_device": False}}, {}),
    "ft_nb+asks": ("ft_nb", {"parts": {"from_batch": False}}, {}),
    "ft_nb+blocking": ("ft_nb", {"parts": {"non_blocking": False}}, {}),
    "ft_nb+sync-clock+nan-check+asks+blocking": ("ft_nb", {"sync_clock": True, "parts": {"nan_check_on_device": False, "from_batch": False, "non_blocking": False}}, {}),
    "ft_nb+log20": ("ft_nb", {"config": {"log_every": 20}}, {}),
    "ft_nb+fork-workers": ("ft_nb", {}, {"TORCHINDUCTOR_WORKER_START": "fork"}),
    "ft_nb+one-thread": ("ft_nb", {}, {"TORCHINDUCTOR_COMPILE_THREADS": "1"}),
    "ft_nb+cudagraphs": ("ft_nb", {}, {"TORCHINDUCTOR_CUDAGRAPHS": "1"}),
}


def variant_spec(name: str, spec, cpu_compile: bool):
    "The arm, spec and environment of variant `name` on top of `spec`; on the CPU (`cpu_compile`) the ft_nb arm compiles its layers and runs ft_nb_varlen."
    arm, variant, env = VARIANTS[name]
    if cpu_compile and arm == "ft_nb":
        config = {"attention": "ft_nb_varlen", "compile": not name.endswith("-compile")} | variant.get("config", {})
        variant = variant | {"config": config}
    return arm, dataclasses.replace(spec, variant=variant), env


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="1b")
    ap.add_argument("--quick", action="store_true", help="the CPU smoke test's configuration (tiny model); on the CPU, compiled layers and ft_nb_varlen")
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--out", required=True)
    ap.add_argument("--budget", type=float, default=500, help="seconds after which no new variant starts")
    ap.add_argument("variants", nargs="*", default=list(VARIANTS))
    a = ap.parse_args(argv)
    if bad := [v for v in a.variants if v not in VARIANTS]: ap.error(f"unknown variant(s) {bad}; the variants: {', '.join(VARIANTS)}")
    import torch
    from ft_nb.bench.speed import QUICK, BenchSpec, run_arm
    spec = dataclasses.replace(QUICK, steps=a.steps) if a.quick else BenchSpec(a.model, steps=a.steps)
    cpu_compile = a.quick and not torch.cuda.is_available()
    out, start, rows = Path(a.out), time.time(), {}
    out.mkdir(parents=True, exist_ok=True)
    for v in a.variants:
        if time.time() - start > a.budget: print(f"skipped {v}: budget spent", flush=True); continue
        arm, vspec, env = variant_spec(v, spec, cpu_compile)
        r = run_arm(arm, vspec, out, f"-{v}-{spec.model}", env=env)
        if "failed" in r: print(f"{v}: FAILED {r['failed']}", flush=True); continue
        for f in out.glob(f"{arm}-{v}-{spec.model}.*"): f.unlink()  # the run's JSON and log: kept in the summary below
        half, name = len(r["times"]) // 2, v if v not in rows else f"{v}#{sum(k.split('#')[0] == v for k in rows) + 1}"
        if r.get("compile_times"): (out / f"{name}-{spec.model}.compile.txt").write_text(r["compile_times"])
        step = statistics.median(r["times"][half:])
        wall = (r["ends"][-1] - r["ends"][half - 1]) / (len(r["ends"]) - half)  # the second half's mean step, from the step ends
        rows[name] = {"steady_step_s": step, "steady_tps": statistics.mean(r["real_tokens"][half:]) / step, "first_pass_s": r["ends"][-1],
                      "first_step_s": r["times"][0], "wall_step_s": wall, "times": r["times"], "peak_gib": r["peak_gib"], "losses": r["losses"], "parts": r["parts"],
                      "attention_calls": r.get("attention_calls"), "imported_s": r.get("imported_s"), "variant": vspec.variant, "env": env}
        print(f"{name:22s} steady {step * 1e3:7.1f} ms/step (mean {wall * 1e3:6.1f})  {rows[name]['steady_tps']:8,.0f} tok/s  first pass {r['ends'][-1]:6.1f} s  "
              f"first step {r['times'][0]:5.1f} s  before it {r['ends'][0] - r['times'][0]:5.1f} s  peak {r['peak_gib'] or 0:.1f} GiB  loss {(r['losses'] or [float('nan')])[0]:.4f} -> "
              f"{(r['losses'] or [float('nan')])[-1]:.4f}  {r.get('attention_calls') or ''}", flush=True)
    (out / f"variants-{spec.model}.json").write_text(json.dumps({"spec": dataclasses.asdict(spec), "variants": rows}, indent=1))
    return rows


if __name__ == "__main__":
    main()
