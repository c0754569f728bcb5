"""The fast path's loss on a GPU: `train.fast.linear_cross_entropy` (chunked, plain PyTorch) against transformers' loss on
the full logits and against Liger's fused linear cross-entropy (where installed), at the benchmark's shapes: the loss and
the hidden states' gradient of each against the full logits', the time of the first call (Liger compiles its kernels
then) and the median of later ones, and the peak memory above the inputs.

    python benchmarks/loss_check.py --out OUT                 # 1B and 8B shapes, 4,096 tokens, 60% of them labelled

Each loss runs in a fresh process with empty compile caches (what a user's first run pays); writes OUT/loss-check.json.
"""
import argparse, json, os, statistics, subprocess, sys, tempfile, time

SHAPES = {"1b": (2048, 49152), "8b": (4096, 128256)}  # hidden size, vocabulary: the benchmark's Llama shapes with the embedded tokenizer's vocabulary at 1B, Llama 3's at 8B
LOSSES = ("full", "chunked", "liger")


def child(loss: str, model: str, tokens: int, labelled: float, repeats: int) -> dict:
    "Run one loss `repeats + 1` times in this process: its values, gradients' summary, times and peak memory."
    import torch
    from transformers.loss.loss_utils import ForCausalLMLoss
    from ft_nb.train.fast import linear_cross_entropy
    hidden, vocab = SHAPES[model]
    g = torch.Generator("cuda").manual_seed(0)
    h = torch.randn(1, tokens, hidden, device="cuda", dtype=torch.bfloat16, generator=g)
    w = torch.randn(vocab, hidden, device="cuda", dtype=torch.bfloat16, generator=g) * hidden ** -0.5
    labels = torch.randint(0, vocab, (1, tokens), device="cuda", generator=g)
    labels[:, torch.rand(tokens, device="cuda", generator=g) > labelled] = -100  # unlabelled: prompts, each example's first token, padding
    if loss == "liger":
        from liger_kernel.transformers.fused_linear_cross_entropy import LigerFusedLinearCrossEntropyLoss
        lce = LigerFusedLinearCrossEntropyLoss()
        fn = lambda h: lce(w, h[0, :-1], labels[0, 1:])  # Liger takes the shifted pairs
    elif loss == "chunked": fn = lambda h: linear_cross_entropy(h, w, labels)
    else: fn = lambda h: ForCausalLMLoss(h @ w.T, labels, vocab)
    times, values = [], []
    for _ in range(repeats + 1):
        x = h.clone().requires_grad_()
        torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats(); base = torch.cuda.memory_allocated(); t = time.perf_counter()
        value = fn(x); value.backward(); torch.cuda.synchronize()
        times.append(time.perf_counter() - t); values.append(value.item())
    grad = x.grad.float()
    return {"loss": loss, "model": model, "value": values[-1], "grad_norm": grad.norm().item(), "grad_sample": grad[0, :64, 0].tolist(),
            "first_ms": 1e3 * times[0], "steady_ms": 1e3 * statistics.median(times[1:]), "peak_gib": (torch.cuda.max_memory_allocated() - base) / 2**30,
            "gpu": torch.cuda.get_device_name(), "torch": torch.__version__}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--tokens", type=int, default=4096)
    ap.add_argument("--labelled", type=float, default=0.6, help="share of tokens with a label")
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--models", default="1b,8b")
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        print(json.dumps(child(a.child[0], a.child[1], a.tokens, a.labelled, a.repeats))); return
    rows = []
    for model in a.models.split(","):
        for loss in LOSSES:
            with tempfile.TemporaryDirectory() as cache:
                env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": f"{cache}/inductor", "TRITON_CACHE_DIR": f"{cache}/triton"}
                p = subprocess.run([sys.executable, __file__, "--out", a.out, "--tokens", str(a.tokens), "--labelled", str(a.labelled), "--repeats", str(a.repeats),
                                    "--child", loss, model], capture_output=True, text=True, env=env)
            if p.returncode: print(f"{model} {loss}: FAILED\n{p.stderr[-2000:]}", flush=True); continue
            r = json.loads(p.stdout.strip().splitlines()[-1]); rows.append(r)
            full = next((x for x in rows if x["model"] == model and x["loss"] == "full"), r)
            diff = max(abs(u - v) for u, v in zip(r["grad_sample"], full["grad_sample"]))
            print(f"{model} {loss:<8} loss {r['value']:.5f} (full {full['value']:.5f})  grad norm {r['grad_norm']:.5f} (full {full['grad_norm']:.5f}, sampled diff {diff:.1e})  "
                  f"first {r['first_ms']:8.1f} ms  steady {r['steady_ms']:6.1f} ms  peak above inputs {r['peak_gib']:.2f} GiB", flush=True)
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "loss-check.json"), "w") as f:
        json.dump({"command": " ".join(["loss_check.py", *sys.argv[1:]]), "tokens": a.tokens, "labelled": a.labelled, "repeats": a.repeats, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
