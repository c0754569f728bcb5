"""ft_nb's variable-length attention (`ft_nb.train.fast`'s `ft_nb::varlen_attention` op) on a GPU: its outputs and gradients
against SDPA run on each example alone (fp32), and the time of its first and of later calls beside
compiled flex attention's, on one packed row of the benchmark's examples (`ft_nb.bench.speed`).

    python benchmarks/varlen_check.py --out OUT

Writes OUT/varlen-check.json; run it in a fresh process (the first flex call compiles, with empty caches).
"""
import argparse, json, os, statistics, tempfile, time

os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", tempfile.mkdtemp(prefix="inductor-"))  # empty compile caches: the first call pays what a user's first run pays
os.environ.setdefault("TRITON_CACHE_DIR", tempfile.mkdtemp(prefix="triton-"))
import torch
from torch.nn.attention.flex_attention import create_block_mask, flex_attention

from ft_nb.bench.speed import BenchSpec, bench_examples, plan_steps
from ft_nb.train.fast import VARLEN_CALLS, _examples_one_by_one, doc_bounds


def timed(fn, n=20):
    "Seconds of the first call, and the median of the next n (each synchronised)."
    out = []
    for _ in range(n + 1):
        torch.cuda.synchronize(); t = time.perf_counter(); fn(); torch.cuda.synchronize(); out.append(time.perf_counter() - t)
    return out[0], statistics.median(out[1:])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    spec = BenchSpec("1b", steps=4)
    ex = bench_examples(spec)
    lengths = [len(ex[i]["input_ids"]) for i in plan_steps(ex, spec)[0]]
    pos = torch.cat([torch.arange(n) for n in lengths] + [torch.arange(spec.row_len - sum(lengths))])[None].cuda()
    cu, longest = doc_bounds(pos)
    doc = torch.repeat_interleave(torch.arange(len(cu) - 1, device="cuda"), cu.diff())
    block = create_block_mask(lambda b, h, q, k: (doc[q] == doc[k]) & (q >= k), None, None, spec.row_len, spec.row_len, device="cuda")
    flex = torch.compile(flex_attention)
    res = {"torch": torch.__version__, "device": torch.cuda.get_device_name(),
           "examples": len(cu) - 1, "longest": longest, "tokens": spec.row_len, "shapes": {}}
    torch.manual_seed(0)
    for heads, kv, dim in ((32, 8, 64), (32, 8, 128)):  # the 1B and 8B Llama shapes' attention
        t = spec.row_len
        qb, kb, vb = (torch.randn(1, h, t, dim, device="cuda", dtype=torch.bfloat16, requires_grad=True) for h in (heads, kv, kv))  # transformers' layout
        g = torch.randn(1, t, heads, dim, device="cuda", dtype=torch.bfloat16)
        scale = dim ** -0.5
        op = lambda: torch.ops.ft_nb.varlen_attention(qb, kb, vb, cu.cuda(), spec.row_len, scale)[0]  # the bounds as a batch carries them: the row's length as the longest
        out = op(); grads = torch.autograd.grad(out, (qb, kb, vb), g)
        q32, k32, v32 = (x.detach()[0].transpose(0, 1).float().requires_grad_() for x in (qb, kb, vb))  # (tokens, heads, dim)
        ref = _examples_one_by_one(q32, k32, v32, cu, scale); ref_grads = torch.autograd.grad(ref, (q32, k32, v32), g[0].float())
        err = {"out": (out[0].float() - ref).abs().max().item(),
               **{f"grad_{n}": (a_[0].transpose(0, 1).float() - b_).abs().max().item() for n, a_, b_ in zip("qkv", grads, ref_grads)},
               "ref_out_abs_max": ref.abs().max().item(), "ref_grad_q_abs_max": ref_grads[0].abs().max().item()}

        def varlen_step(): torch.autograd.grad(op(), (qb, kb, vb), g)
        gb = g.transpose(1, 2)
        def flex_step(): torch.autograd.grad(flex(qb, kb, vb, block_mask=block, enable_gqa=True), (qb, kb, vb), gb)
        fv, sv = timed(flex_step)
        vv, svv = timed(varlen_step)
        res["shapes"][f"{heads}x{dim} (kv {kv})"] = {"errors": err, "flex_first_s": fv, "flex_s": sv, "varlen_first_s": vv, "varlen_s": svv}
        print(f"heads {heads}, kv {kv}, dim {dim}: errors {err}; flex first {fv:.2f} s then {sv * 1e3:.3f} ms; varlen first {vv:.3f} s then {svv * 1e3:.3f} ms", flush=True)
    res["calls"] = dict(VARLEN_CALLS)
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "varlen-check.json"), "w") as f: json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
