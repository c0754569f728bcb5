"""Training speed and memory on a GPU, through ft_nb's own training entry point.

Part 1 (training strategy): LoRA on the embedded model's architecture (SmolLM2-135M, built
from its config with random weights: weights do not change speed or memory), bf16, padded
batches against packed ones, and packed with gradient checkpointing.

Part 2 (methods): a 1B-parameter Llama-architecture model built from a config, full
fine-tuning against LoRA against QLoRA (4-bit NF4 base, paged 8-bit AdamW): peak memory and
time per optimizer step, each next to ft_nb's memory estimate.

Every configuration runs in this one process, one after another, on the same data; the
figures and their ratios are printed and written to `<out>/gpu_train.json`.

    python benchmarks/gpu_train.py --arch DIR_WITH_CONFIG_AND_TOKENIZER --out OUT
"""
import argparse, gc, json, statistics, time
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, LlamaConfig, TrainerCallback

from ft_nb.data.load import load_data
from ft_nb.methods.core import count_parameters
from ft_nb.methods.qlora import quantize_nf4
from ft_nb.train.config import SFTConfig
from ft_nb.train.sft import train_sft

GiB = 2**30


CUDA = torch.cuda.is_available()  # without a GPU the script runs as a smoke test of itself (tiny sizes, no memory figures)
DEVICE = "cuda" if CUDA else "cpu"
sync = torch.cuda.synchronize if CUDA else (lambda: None)


class StepTimer(TrainerCallback):
    "Wall time of every optimizer step (the GPU synchronised at each end)."
    def on_step_begin(self, args, state, control, **kw):
        sync(); self.t = time.perf_counter()
    def on_step_end(self, args, state, control, **kw):
        sync(); self.times.append(time.perf_counter() - self.t)
    def __init__(self): self.times = []


def llama_1b(vocab_size: int) -> LlamaConfig:
    "Llama-3.2-1B's shape (hidden 2048, 16 layers, SwiGLU 8192, GQA 32/8 heads) with the given vocabulary."
    return LlamaConfig(vocab_size=vocab_size, hidden_size=2048, intermediate_size=8192, num_hidden_layers=16,
                       num_attention_heads=32, num_key_value_heads=8, max_position_embeddings=4096, rope_theta=500000.0,
                       tie_word_embeddings=True, bos_token_id=1, eos_token_id=2, pad_token_id=2)


def run(name, config, tok, data, method, cfg, quantize=False, attn="sdpa"):
    free()
    torch.manual_seed(0)
    dtype = torch.bfloat16 if CUDA else torch.float32
    with torch.device(DEVICE): model = AutoModelForCausalLM.from_config(config, dtype=dtype, attn_implementation=attn)
    if quantize:
        model = quantize_nf4(model, dtype)  # the 4-bit copy; the original is dropped here
        free()
    if CUDA: torch.cuda.reset_peak_memory_stats()
    timer = StepTimer()
    res = train_sft(model, tok, data, method, cfg, callbacks=[timer])
    model, hist = res.model, res.history
    peak = torch.cuda.max_memory_allocated() if CUDA else 0
    rows = [r for r in hist.rows if "tokens_per_s" in r]
    steady = rows[2:] or rows  # the first steps include compilation and allocator warm-up
    out = {"name": name, "method": method, "attention": attn, "packing": cfg.packing, "gradient_checkpointing": cfg.gradient_checkpointing,
           "batch_size": cfg.batch_size, "steps": cfg.max_steps, **count_parameters(model),
           "peak_memory_gib": peak / GiB, "estimate_gib": res.memory_estimate.total / GiB,
           "step_s_median": statistics.median(timer.times[2:] or timer.times),
           "tokens_per_s": statistics.mean(r["tokens_per_s"] for r in steady),
           "supervised_tokens": rows[-1]["supervised_tokens"], "tokens": rows[-1]["num_input_tokens_seen"],
           "eval_loss": hist.series("eval_loss")[1]}
    print(json.dumps(out), flush=True)
    del model, hist, res; free()
    return out


def free():
    gc.collect()
    if CUDA: torch.cuda.empty_cache()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", required=True, help="folder with the embedded model's config.json and tokenizer files")
    ap.add_argument("--out", required=True)
    ap.add_argument("--steps", type=int, default=40, help="optimizer steps of each 135M run")
    ap.add_argument("--small-batch", type=int, default=32, help="examples per step, 135M runs")
    ap.add_argument("--big-batch", type=int, default=8, help="examples per step, 1B runs")
    ap.add_argument("--big-packing", action="store_true", help="pack the 1B runs' batches")
    ap.add_argument("--big-checkpointing", action="store_true", help="gradient checkpointing in the 1B runs")
    ap.add_argument("--flex", action="store_true", help="also a packed 135M run with flex attention")
    a = ap.parse_args()
    tok = AutoTokenizer.from_pretrained(a.arch)
    if tok.pad_token is None: tok.pad_token = tok.eos_token
    data = load_data("stdlib")
    device = torch.cuda.get_device_name() if CUDA else "cpu (smoke test)"
    print({k: len(v) for k, v in data.items()}, device, torch.__version__, flush=True)
    small = AutoConfig.from_pretrained(a.arch)
    if not CUDA: small.num_hidden_layers, a.steps = 2, 4
    results = []
    base = dict(max_steps=a.steps, batch_size=a.small_batch if CUDA else 4, max_length=512, eval_every=a.steps // 2, seed=0, lr=1e-3)
    for name, kw in (("135M lora padded", {}), ("135M lora packed", {"packing": True}),
                     ("135M lora packed + checkpointing", {"packing": True, "gradient_checkpointing": True})):
        results.append(run(name, small, tok, data, "lora", SFTConfig(**base, **kw)))
    if a.flex and CUDA:
        try: results.append(run("135M lora packed flex", small, tok, data, "lora", SFTConfig(**base, packing=True), attn="flex_attention"))
        except Exception as e: print(f"flex attention run failed: {type(e).__name__}: {str(e)[:300]}", flush=True)
    big = llama_1b(len(tok))
    if not CUDA: big.num_hidden_layers, big.hidden_size, big.intermediate_size = 2, 256, 512
    one_b = dict(max_steps=12 if CUDA else 3, batch_size=a.big_batch, packing=a.big_packing, gradient_checkpointing=a.big_checkpointing, max_length=512, eval_every=12, seed=0)
    for name, method in (("1B full", "full"), ("1B lora", "lora"), ("1B qlora", "qlora")):
        results.append(run(name, big, tok, data, method, SFTConfig(**one_b), quantize=method == "qlora"))
    by = {r["name"]: r for r in results}
    mem, step = (lambda n: by[n]["peak_memory_gib"]), (lambda n: by[n]["step_s_median"])
    ratios = {
        "packed/padded tokens per s (135M)": by["135M lora packed"]["tokens_per_s"] / by["135M lora padded"]["tokens_per_s"],
        "full/lora step time (1B)": step("1B full") / step("1B lora"),
        "qlora/lora step time (1B)": step("1B qlora") / step("1B lora"),
    }
    if CUDA: ratios |= {
        "checkpointing/plain peak memory (135M packed)": mem("135M lora packed + checkpointing") / mem("135M lora packed"),
        "full/lora peak memory (1B)": mem("1B full") / mem("1B lora"),
        "full/qlora peak memory (1B)": mem("1B full") / mem("1B qlora"),
        "lora/qlora peak memory (1B)": mem("1B lora") / mem("1B qlora"),
    }
    for k, v in ratios.items(): print(f"{k}: {v:.2f}")
    Path(a.out).mkdir(parents=True, exist_ok=True)
    (Path(a.out) / f"gpu_train_b{a.small_batch}_{a.big_batch}{'_ckpt' if a.big_checkpointing else ''}.json").write_text(json.dumps({"device": device, "torch": torch.__version__,
                                                            "results": results, "ratios": ratios}, indent=1))


if __name__ == "__main__":
    main()
