"""Where a training step's time goes: the speed benchmark's arms (`ft_nb.bench`) with one part changed at
a time, each variant in a fresh process with empty compile caches, on the same examples, batches and seed.

    python benchmarks/step_variants.py --model 1b --steps 60 --out OUT [VARIANT ...]
    python benchmarks/step_variants.py --quick --steps 4 --out OUT ft_nb ft_nb+two-graphs   # on the CPU

--quick takes the CPU smoke test's configuration (`ft_nb.bench.QUICK`, the tiny model); without a GPU the
ft_nb variants then compile their layers and run `ft_nb_varlen` (its CPU reference), so the compile path
is what is measured.

Variants (all by default):
  expert                   the benchmark's expert arm as it is (eager, no Liger)
  expert+liger             plus all of Liger's kernels (fused linear cross-entropy, RMSNorm, SwiGLU, RoPE)
  expert+liger+compile     plus torch.compile of each decoder layer
  ft_nb                    the benchmark's ft_nb arm: train_sft's fast path as it is (chunked loss, compiled layers)
  ft_nb-compile            the same with eager layers (SFTConfig.compile=False)
  ft_nb+liger              the same with Liger's fused loss instead of the chunked one (the default until 2026-12-06)
  ft_nb+full-loss          the same with the model's own loss (the full-vocabulary logits again)
  ft_nb+liger-all          the same with all of Liger's kernels
  ft_nb+liger-all-compile  all of Liger's kernels, eager layers
  ft_nb+flex               the ft_nb arm with flex attention instead of the variable-length kernel (ft_nb_varlen)
  ft_nb+two-graphs         the ft_nb arm with the first layer's input not made to require grad (as before
                           2026-12-05): under LoRA the first layer then compiles a graph of its own
  ft_nb+cast-inputs        the ft_nb arm with PEFT's copies of each adapter's input to fp32 (as before 2026-12-05;
                           `train.fast.uncast_adapter_inputs` skips them under bf16 autocast)
  ft_nb+sync-clock         the ft_nb arm with the step clock synchronising the GPU at each step's start and end (as
                           until 2026-12-06; `train.sft.History` now reads CUDA events)
  expert+sync-clock        the same for the expert arm (which read each step's loss, so synchronised, until then)
  ft_nb+nan-check          the ft_nb arm with the Trainer's NaN/inf loss check on the CPU (it synchronises each step;
                           `FtTrainer` now does it on the GPU)
  ft_nb+asks               the ft_nb arm asking the GPU for each step's example bounds, labelled targets and whether
                           rows are packed (as until 2026-12-06; now the collator works them out on the CPU)
  ft_nb+blocking           the ft_nb arm moving each batch to the GPU with blocking copies (which wait for the GPU)
  ft_nb+sync-clock+nan-check+asks+blocking
                           all four: the fast path's waits as they were until 2026-12-06
  ft_nb+log20              the ft_nb arm logging every 20 steps instead of every step (each log reads the loss)
  ft_nb+no-pw-autotune     the ft_nb arm with inductor's pointwise kernels not autotuned (one launch configuration
                           each, no timing of candidates at their first call)
  ft_nb+fork-workers       the ft_nb arm with inductor's compile workers forked from the training process rather than
                           started as fresh Python processes (TORCHINDUCTOR_WORKER_START=fork)
  ft_nb+one-thread         the ft_nb arm compiling its kernels in the training process, one at a time, no workers
                           (TORCHINDUCTOR_COMPILE_THREADS=1)
  ft_nb+cudagraphs         the ft_nb arm with its compiled layers replayed as CUDA graphs (inductor's cudagraph trees, what
                           mode="reduce-overhead" turns on): each batch carries its examples' bounds as a tensor of one
                           fixed size (`cu_seq_lens_q`, filled up with empty examples; CUDAGRAPH_DOCS a row) and the row's
                           length as the longest (`max_length_q`), so no step changes a graph's inputs' shapes, and the
                           attention reads them from there (a variable-length operator of this script's) instead of
                           looking them up in Python, which a replayed graph would skip
  ft_nb+fixed-bounds       the ft_nb+cudagraphs variant's bounds (one fixed size, read from the batch) without the CUDA
                           graphs: what the fixed size costs the attention by itself
  ft_nb+early-workers      the ft_nb arm with inductor's compile workers started before the method is applied (as
                           `train_sft` did from 2026-12-05 until the H200 showed it did not pay), not at the first
                           compile, by inductor

A variant named twice runs twice; its second run is stored as NAME#2, and so on.

Prints one line per variant: steady step (median of the second half), first pass (process start to last
step), peak memory, first and last loss; and writes OUT/variants-<model>.json.
"""
import argparse, contextlib, dataclasses, json, os, statistics, subprocess, sys, tempfile, time
from pathlib import Path

VARIANTS = ("expert", "expert+liger", "expert+liger+compile", "ft_nb", "ft_nb-compile", "ft_nb+liger", "ft_nb+full-loss", "ft_nb+liger-all", "ft_nb+liger-all-compile", "ft_nb+flex",
            "ft_nb+two-graphs", "ft_nb+cast-inputs", "ft_nb+early-workers",
            "ft_nb+sync-clock", "expert+sync-clock", "ft_nb+nan-check", "ft_nb+asks", "ft_nb+blocking",
            "ft_nb+sync-clock+nan-check+asks+blocking", "ft_nb+log20", "ft_nb+no-pw-autotune",
            "ft_nb+fork-workers", "ft_nb+one-thread", "ft_nb+cudagraphs", "ft_nb+fixed-bounds")
CUDAGRAPH_DOCS = 64  # ft_nb+cudagraphs: examples a row may hold (the bounds' fixed size is this times the rows, plus one)
VARIANT_ENV = {"+fork-workers": {"TORCHINDUCTOR_WORKER_START": "fork"}, "+one-thread": {"TORCHINDUCTOR_COMPILE_THREADS": "1"}}  # read when inductor is imported: set for the child


def bounds_as_inputs(F, S):
    "ft_nb+cudagraphs: batches carry their examples' bounds at one fixed size, and `ft_nb_varlen` reads them from the batch."
    import torch
    from transformers import AttentionInterface

    @torch.library.custom_op("ft_nb_variants::varlen", mutates_args=())
    def varlen(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, cu: torch.Tensor, longest: int, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
        b, h, t, d = query.shape
        q, k, v = map(F._rows, (query, key, value))
        if q.is_cuda: out, lse = torch.ops.aten._flash_attention_forward(q, k, v, cu, cu, longest, longest, 0.0, True, False, scale=scale)[:2]
        else: out, lse = F._examples_one_by_one(q, k, v, torch.unique_consecutive(cu), scale), q.new_zeros(h, b * t, dtype=torch.float32)
        return out.view(b, t, h, d), lse

    @varlen.register_fake
    def _(query, key, value, cu, longest, scale):
        b, h, t, d = query.shape
        return query.new_empty(b, t, h, d), query.new_empty(h, b * t, dtype=torch.float32)

    @torch.library.custom_op("ft_nb_variants::varlen_backward", mutates_args=())
    def varlen_backward(grad: torch.Tensor, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, cu: torch.Tensor, out: torch.Tensor,
                        lse: torch.Tensor, longest: int, scale: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        b, h, t, d = query.shape
        q, k, v = map(F._rows, (query, key, value))
        o, g = out.reshape(b * t, h, d), grad.contiguous().view(b * t, h, d)
        if q.is_cuda:
            grads = torch.ops.aten._flash_attention_backward(g, q, k, v, o, lse, cu, cu, longest, longest, 0.0, True,
                                                             torch.zeros(2, dtype=torch.uint64, device=q.device), torch.empty(0, device=q.device), scale=scale)
        else: grads = F._example_grads(g, q, k, v, o, torch.unique_consecutive(cu), scale)
        return tuple(x.view(b, t, x.shape[1], d).transpose(1, 2) for x in grads)

    @varlen_backward.register_fake
    def _(grad, query, key, value, cu, out, lse, longest, scale):
        return tuple(x.new_empty(x.shape[0], x.shape[2], x.shape[1], x.shape[3]).transpose(1, 2) for x in (query, key, value))

    def save(ctx, inputs, output):
        ctx.save_for_backward(*inputs[:4], *output); ctx.longest, ctx.scale = inputs[4], inputs[5]
    def grads(ctx, grad, grad_lse):
        q, k, v, cu, out, lse = ctx.saved_tensors
        return (*torch.ops.ft_nb_variants.varlen_backward(grad, q, k, v, cu, out, lse, ctx.longest, ctx.scale), None, None, None)
    varlen.register_autograd(grads, setup_context=save)

    def attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, position_ids=None, **kw):
        cu, longest = kw.pop("cu_seq_lens_q", None), kw.pop("max_length_q", None)
        kw.pop("cu_seq_lens_k", None); kw.pop("max_length_k", None)
        if cu is None or attention_mask is not None or key.shape[2] != query.shape[2]:
            return F.varlen_attention(module, query, key, value, attention_mask, scaling, dropout, position_ids, **kw)
        return torch.ops.ft_nb_variants.varlen(query, key, value, cu, longest, float(query.shape[-1] ** -0.5 if scaling is None else scaling))[0], None
    AttentionInterface.register("ft_nb_varlen", attention)

    class Collator(F.RowCollator):
        def __call__(self, rows):
            batch = super().__call__(rows)
            cu, _ = F.doc_bounds(batch["position_ids"])
            size = CUDAGRAPH_DOCS * batch["position_ids"].shape[0] + 1
            if len(cu) > size: raise ValueError(f"ft_nb+cudagraphs: a batch of {len(cu) - 1} examples, more than {size - 1}")
            cu = torch.cat([cu, cu.new_full((size - len(cu),), int(cu[-1]))])  # empty examples at the end
            return batch | {"cu_seq_lens_q": cu, "max_length_q": batch["position_ids"].shape[1]}
    S.RowCollator = Collator


def child(variant: str, spec_json: str, out: str, t0: str):
    "Run one variant in this (fresh) process through `ft_nb.bench.worker`."
    import torch
    import ft_nb.bench as B
    import ft_nb.train.fast as F
    import ft_nb.train.sft as S
    from ft_nb.train.fast import compiled_layers
    base_model = B._model
    if "+sync-clock" in variant:  # the step clock as it was: synchronised at each step's start and end
        def synced(f):
            def g(self, *a, **kw):
                if torch.cuda.is_available(): torch.cuda.synchronize()
                return f(self, *a, **kw)
            return g
        S.History.on_step_begin, S.History.on_step_end = synced(S.History.on_step_begin), synced(S.History.on_step_end)

    if variant.startswith("expert"):
        def model_fn(spec, attention):
            model = base_model(spec, attention)
            if "liger" in variant:
                from liger_kernel.transformers import _apply_liger_kernel_to_instance
                _apply_liger_kernel_to_instance(model=model)
            if "compile" in variant: compiled_layers(model).__enter__()  # compiled for the rest of this one-run process
            return model
        B._model = model_fn
        fn = B.ARM_FNS["expert"]
    else:
        compile_on = not variant.endswith("-compile")
        variant_loss = "liger" if "+liger" in variant else "full" if "+full-loss" in variant else None  # None: as the run asks
        over = {"attention": "flex_attention"} if "+flex" in variant else {}  # FastParts fields set by the variant
        if os.environ.get("STEP_VARIANTS_CPU_COMPILE") and not torch.cuda.is_available():  # --quick on the CPU: the compile path
            over = {"attention": "ft_nb_varlen", "compile": compile_on}
        if "+two-graphs" in variant: F._grad_requiring = lambda module, args, out: None
        if "+cast-inputs" in variant: S.uncast_adapter_inputs = lambda model, on=True: contextlib.nullcontext([])
        if "+early-workers" in variant:
            apply_method = S.apply_method
            def early(*args, **kw):
                from torch._inductor.async_compile import maybe_warm_pool
                maybe_warm_pool()  # what train_sft called here (right before applying the method) when the layers compile
                return apply_method(*args, **kw)
            S.apply_method = early
        if "+cudagraphs" in variant:
            import torch._inductor.config as inductor_config
            inductor_config.triton.cudagraphs = True  # what mode="reduce-overhead" sets, for every layer compile.compile() makes
        if "+cudagraphs" in variant or "+fixed-bounds" in variant: bounds_as_inputs(F, S)
        if "+no-pw-autotune" in variant:
            import torch._inductor.config as inductor_config
            inductor_config.triton.autotune_pointwise = False
        if "+nan-check" in variant: S.FtTrainer.training_step = lambda self, model, inputs, n=None: self._step(model, inputs, n)
        over_args = {**({"logging_steps": 20} if "+log20" in variant else {}), **({"accelerator_config": {"non_blocking": False}} if "+blocking" in variant else {})}
        if over_args:
            real_args = S.TrainingArguments
            S.TrainingArguments = lambda **kw: real_args(**{**kw, **over_args})
        if "+asks" in variant:  # the collator works nothing out; transformers checks the rows for packing on the device
            S.RowCollator = lambda rows, known=False: F.RowCollator(rows)
            S.packed_check_skipped = lambda on=True: contextlib.nullcontext()
        real = S.fast_parts
        S.fast_parts = lambda model, loss="chunked", compile=None: dataclasses.replace(real(model, variant_loss or loss, compile=compile if compile_on else False), **over)
        if "liger-all" in variant:
            from ft_nb.train.fast import FastParts
            FastParts.trainer_args = lambda self: {"use_liger_kernel": self.loss == "liger"}  # transformers' default: every kernel Liger has
        fn = B.ARM_FNS["ft_nb"]
    B.ARM_FNS[variant] = fn
    B.worker([variant, spec_json, out, t0])
    utils = sys.modules["torch._dynamo"].utils if "torch._dynamo" in sys.modules else None
    if utils and utils.compile_times(repr="csv", aggregate=True)[0]:  # something compiled: where the compiler's time went (Dynamo, AOTAutograd, Inductor; seconds per phase)
        counters = {k: dict(v) for k, v in utils.counters.items() if k in ("inductor", "stats", "graph_break") and v}  # cudagraph skips among them
        Path(out).with_suffix(".compile.txt").write_text(str(utils.compile_times(repr="str", aggregate=True)) + "\n\ncounters: " + json.dumps(counters, default=str))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="1b")
    ap.add_argument("--quick", action="store_true", help="the CPU smoke test's configuration (tiny model); on the CPU, compiled layers and ft_nb_varlen")
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--out", required=True)
    ap.add_argument("--budget", type=float, default=500, help="seconds after which no new variant starts")
    ap.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    ap.add_argument("variants", nargs="*", default=list(VARIANTS))
    a = ap.parse_args()
    if a.child: return child(*a.child)
    from ft_nb.bench import QUICK, BenchSpec
    spec = dataclasses.replace(QUICK, steps=a.steps) if a.quick else BenchSpec(a.model, steps=a.steps)
    out, start, rows = Path(a.out), time.time(), {}
    out.mkdir(parents=True, exist_ok=True)
    for v in a.variants:
        if time.time() - start > a.budget: print(f"skipped {v}: budget spent", flush=True); continue
        res, log = out / f"{v}-{spec.model}.json", out / f"{v}-{spec.model}.log"
        with tempfile.TemporaryDirectory() as cache, open(log, "w") as f:
            env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": f"{cache}/inductor", "TRITON_CACHE_DIR": f"{cache}/triton",
                   **({"STEP_VARIANTS_CPU_COMPILE": "1"} if a.quick else {}), **{k: x for part, e in VARIANT_ENV.items() if part in v for k, x in e.items()}}
            t0 = time.time()
            p = subprocess.run([sys.executable, __file__, "--child", v, json.dumps(dataclasses.asdict(spec)), str(res), repr(t0), "--out", a.out],
                               stdout=f, stderr=subprocess.STDOUT, env=env)
        if p.returncode:
            print(f"{v}: FAILED exit {p.returncode}\n" + log.read_text()[-2500:], flush=True); continue
        r = json.loads(res.read_text()); res.unlink(); log.unlink()
        half, v = len(r["times"]) // 2, v if v not in rows else f"{v}#{sum(k.split('#')[0] == v for k in rows) + 1}"
        step = statistics.median(r["times"][half:])
        wall = (r["ends"][-1] - r["ends"][half - 1]) / (len(r["ends"]) - half)  # the second half's mean step, from the step ends
        rows[v] = {"steady_step_s": step, "steady_tps": statistics.mean(r["real_tokens"][half:]) / step, "first_pass_s": r["ends"][-1],
                   "first_step_s": r["times"][0], "wall_step_s": wall, "times": r["times"], "peak_gib": r["peak_gib"], "losses": r["losses"], "parts": r["parts"],
                   "attention_calls": r.get("attention_calls"), "imported_s": r.get("imported_s")}
        print(f"{v:22s} steady {step * 1e3:7.1f} ms/step (mean {wall * 1e3:6.1f})  {rows[v]['steady_tps']:8,.0f} tok/s  first pass {r['ends'][-1]:6.1f} s  "
              f"first step {r['times'][0]:5.1f} s  before it {r['ends'][0] - r['times'][0]:5.1f} s  peak {r['peak_gib'] or 0:.1f} GiB  loss {(r['losses'] or [float('nan')])[0]:.4f} -> {(r['losses'] or [float('nan')])[-1]:.4f}  {r.get('attention_calls') or ''}", flush=True)
    (out / f"variants-{spec.model}.json").write_text(json.dumps({"spec": dataclasses.asdict(spec), "variants": rows}, indent=1))


if __name__ == "__main__":
    main()
