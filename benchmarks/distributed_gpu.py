"""Distributed training on GPUs through ft_nb's own launch path (`ft_nb.distributed.launch`).

Each run is a fresh set of processes: the plain path (`train_sft` in one process, no launcher)
and, through torchrun, DDP, FSDP2 and DeepSpeed ZeRO-2/3 on 1 and 2 GPUs, for LoRA and full
fine-tuning of Llama shapes built from configs with random weights (`random:FOLDER`; weights
do not change speed or memory). Every run of a shape sees the same rows in the same order with
the same global batch (per-GPU micro-batch x accumulation x GPUs), so their per-step losses
must agree; tokens/s are the run's tokens over the median optimizer step (steady state) and
over the whole training loop (first pass, every warm-up included). A kill test SIGKILLs rank 1
after the first checkpoint and resumes.

    python benchmarks/distributed_gpu.py --write-shapes .gpu/shapes          # here: configs + the embedded tokenizer
    python benchmarks/distributed_gpu.py --shapes .gpu/shapes --out OUT [--only 1b]   # on the GPU machine

Results: OUT/runs/<name>.json (rank 0's record, per-step losses) and OUT/distributed_gpu.json.
"""
import argparse, json, os, shutil, signal, statistics, subprocess, sys, tempfile, threading, time
from pathlib import Path

for k, v in {"NCCL_NVLS_ENABLE": "0", "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1", "NVSHMEM_DISABLE_NVLS": "1"}.items():
    os.environ.setdefault(k, v)  # NVLink multicast stays off (the lending workplace's rule), in every child too

SHAPES = {  # Llama-3.2-1B's and Llama-3.1-8B's shapes, with the embedded tokenizer's 49,152-entry vocabulary
    "1b": dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32, num_key_value_heads=8, tie_word_embeddings=True),
    "8b": dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8, tie_word_embeddings=False),
}


def write_shapes(folder: Path):
    from transformers import LlamaConfig
    from ft_nb.models import build_embedded_cache, load_tokenizer
    tok = load_tokenizer("embedded")
    for name, kw in SHAPES.items():
        d = folder / name
        d.mkdir(parents=True, exist_ok=True)
        LlamaConfig(vocab_size=len(tok), max_position_embeddings=4096, rope_theta=500000.0, bos_token_id=1, eos_token_id=2, pad_token_id=2, **kw).save_pretrained(d)
        tok.save_pretrained(d)
    print("wrote", sorted(p.name for p in folder.iterdir()))


def runs(only: str):
    "name -> (shape, method, strategy or 'single', gpus, packed rows a micro-batch per GPU, accumulation); global batch fixed per shape."
    out = {}
    for method in ("lora", "full"):
        out[f"1b-{method}-single"] = ("1b", method, "single", 1, 2, 2)
        for strategy in ("ddp", "fsdp", "zero2", "zero3"):
            out[f"1b-{method}-{strategy}-1"], out[f"1b-{method}-{strategy}-2"] = ("1b", method, strategy, 1, 2, 2), ("1b", method, strategy, 2, 2, 1)
    for method in ("lora", "full"):
        out[f"8b-{method}-single"] = ("8b", method, "single", 1, 1, 2)
        out[f"8b-{method}-fsdp-1"], out[f"8b-{method}-fsdp-2"] = ("8b", method, "fsdp", 1, 1, 2), ("8b", method, "fsdp", 2, 1, 1)
    keep = [o for o in only.split(",") if o]
    return {k: v for k, v in out.items() if not keep or any(k.startswith(o) for o in keep)}


ROW = 4096  # tokens per packed row: the fast path's default


def data(copies: int = 8):
    "The `stdlib` examples, `copies` times over (about 21 packed rows each): enough rows that no run of this script starts a second epoch."
    from datasets import DatasetDict, concatenate_datasets
    from ft_nb.data.load import load_data
    return DatasetDict({"train": concatenate_datasets([load_data("stdlib")["train"]] * copies)})  # no validation: timing only the training steps


def cfg(rows, accum, steps, save_every=0, compile=None):
    "Packed rows of ROW tokens, `rows` a micro-batch on each GPU: the fast path on a GPU (`compile`: None, its default)."
    from ft_nb.train.config import SFTConfig
    return SFTConfig(max_steps=steps, batch_size=rows, grad_accum=accum, max_length=512, packing=True, pack_length=ROW, pack_rows=rows, seed=0,
                     save_every=save_every, eval_every=max(save_every, 1), lr=1e-4, compile=compile)


def single(spec_path):
    "The plain path: train_sft in this one process (called in a fresh subprocess)."
    import torch
    from ft_nb.models import load_base_model
    from ft_nb.train.config import SFTConfig
    from ft_nb.train.record import run_metrics
    from ft_nb.train.sft import train_sft
    spec = json.loads(Path(spec_path).read_text())
    model, tok = load_base_model(spec["base_model"], device="cuda" if torch.cuda.is_available() else "cpu")
    result = train_sft(model, tok, data(), spec["method"], SFTConfig(**spec["cfg"]), {})
    rows = result.history.rows
    m = run_metrics(result) | {"strategy": "single", "world_size": 1, "per_rank": [{"rank": 0, "peak_gpu_gib": result.peak_gpu_gib}],
                               "tokens_seen": next((r["num_input_tokens_seen"] for r in reversed(rows) if "num_input_tokens_seen" in r), None)}
    Path(spec["out"]).write_text(json.dumps(m | {"rows": rows}, default=str))


def measure(name, shape, method, strategy, gpus, rows, accum, shapes, steps, work, compile=None):
    from ft_nb.distributed.launch import launch
    base, c, run_dir = f"random:{shapes / shape}", cfg(rows, accum, steps, compile=compile), work / name
    t0 = time.perf_counter()
    if strategy == "single":
        run_dir.mkdir(parents=True, exist_ok=True)
        spec = run_dir / "spec.json"
        spec.write_text(json.dumps({"base_model": base, "method": method, "cfg": c.__dict__, "out": str(run_dir / "result.json")}))
        r = subprocess.run([sys.executable, __file__, "--single", str(spec)], capture_output=True, text=True,
                           env=os.environ | {"CUDA_VISIBLE_DEVICES": "0"})  # one process on a machine of several GPUs: one of them
        if r.returncode: raise RuntimeError(r.stdout[-3000:] + r.stderr[-3000:])
        m = json.loads((run_dir / "result.json").read_text())
    else:
        m = launch(run_dir, base, data(), method, c, {}, processes=gpus, strategy=strategy, echo=False).metrics
        m["rows"] = [json.loads(l) for l in (run_dir / "metrics.jsonl").read_text().splitlines()]
    wall = time.perf_counter() - t0
    per_step = m["tokens_seen"] / m["steps"]
    return {"name": name, "shape": shape, "method": method, "strategy": strategy, "gpus": gpus, "micro_batch": rows, "micro_tokens": rows * ROW, "accum": accum, "compile": compile,
            "steps": m["steps"], "tokens_per_step": per_step, "step_s_median": m["step_s_median"],
            "tokens_per_s_steady": per_step / m["step_s_median"], "tokens_per_s_first_pass": m["tokens_seen"] / m["seconds"],
            "loop_seconds": m["seconds"], "wall_seconds": wall, "peak_gpu_gib": [p["peak_gpu_gib"] for p in m["per_rank"]],
            "sharded": m.get("sharded"), "fast": m.get("fast"), "trainable": m["trainable"], "total_params": m["total"],
            "losses": [r["loss"] for r in m["rows"] if "loss" in r and "eval_loss" not in r]}


def kill_and_resume(shapes, work, strategy="ddp", processes=2):
    "1B LoRA, checkpoints every 4 steps: the last rank SIGKILLed after the first complete checkpoint, then the launch repeated into the same folder."
    from ft_nb.distributed.launch import LaunchError, launch
    from ft_nb.train.checkpoints import last_complete_checkpoint
    run, c, victim = work / f"kill-{strategy}-{processes}", cfg(2, 1, 16, save_every=4), processes - 1
    def kill():
        pid = run / "distributed" / f"rank{victim}.pid"
        while not (pid.exists() and last_complete_checkpoint(run / "checkpoints")): time.sleep(0.05)
        os.kill(int(pid.read_text()), signal.SIGKILL)
    threading.Thread(target=kill, daemon=True).start()
    try:
        launch(run, f"random:{shapes / '1b'}", data(), "lora", c, {}, processes=processes, strategy=strategy, echo=False); error = None
    except LaunchError as e: error = str(e)
    last = last_complete_checkpoint(run / "checkpoints")
    files = sorted(str(p.relative_to(last)) for p in last.rglob("*") if p.is_file())[:20] if last else []
    again = launch(run, f"random:{shapes / '1b'}", data(), "lora", c, {}, processes=processes, strategy=strategy, echo=False).metrics
    return {"strategy": strategy, "processes": processes, "error": error, "last_checkpoint": last.name if last else None, "checkpoint_files": files,
            "resumed_from": again["resumed_from"], "steps": again["steps"], "sharded": again["sharded"]}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write-shapes"); ap.add_argument("--single"); ap.add_argument("--shapes"); ap.add_argument("--out")
    ap.add_argument("--only", default="", help="comma-separated run-name prefixes; 'kill' runs the kill test")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--no-compile", action="store_true", help="SFTConfig(compile=False): eager decoder layers on the fast path")
    a = ap.parse_args()
    if a.write_shapes: return write_shapes(Path(a.write_shapes))
    if a.single: return single(a.single)
    import torch
    out, shapes, work = Path(a.out), Path(a.shapes).resolve(), Path(tempfile.mkdtemp(prefix="dist-"))
    (out / "runs").mkdir(parents=True, exist_ok=True)
    gpus = torch.cuda.device_count() or 2  # without GPUs: a smoke test on two CPU processes (DDP and the plain path only)
    smi = shutil.which("nvidia-smi")  # the GPU's name without initialising CUDA in this driver process
    env = {"gpu": subprocess.run([smi, "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True).stdout.strip() if smi else None,
           "gpus": gpus, "torch": torch.__version__}
    for pkg in ("transformers", "peft", "accelerate", "deepspeed"):
        try: env[pkg] = __import__(pkg).__version__
        except Exception as e: env[pkg] = f"not available: {type(e).__name__}: {e}"
    print(json.dumps(env), flush=True)
    results = []
    for name, (shape, method, strategy, n, rows, accum) in runs(a.only).items():
        if n > gpus: print(f"skip {name}: needs {n} GPUs"); continue
        try: r = measure(name, shape, method, strategy, n, rows, accum, shapes, a.steps, work, False if a.no_compile else None)
        except Exception as e:
            r = {"name": name, "error": f"{type(e).__name__}: {str(e)[-1500:]}"}
            if (log := work / name / "distributed" / "launch.log").is_file():  # keep the failure's evidence
                r["log_tail"] = [l for l in log.read_text().splitlines() if "it/s]" not in l and "examples/s]" not in l][-60:]
        results.append(r)
        (out / "runs" / f"{name}.json").write_text(json.dumps(r, indent=1))
        print(name, {k: r.get(k) for k in ("tokens_per_s_steady", "tokens_per_s_first_pass", "peak_gpu_gib", "sharded", "error")}, flush=True)
        shutil.rmtree(work / name, ignore_errors=True)
    for name in ("kill", "kill-fsdp-1"):  # DDP on 2 GPUs; FSDP on one (its sharded checkpoint resumed)
        if name not in a.only.split(","): continue
        k = kill_and_resume(shapes, work) if name == "kill" else kill_and_resume(shapes, work, "fsdp", 1)
        print(name, k, flush=True)
        (out / "runs" / f"{name}.json").write_text(json.dumps(k, indent=1))
    from ft_nb.distributed.launch import gpu_bytes_here
    env["cuda_initialised_in_this_process"] = torch.cuda.is_initialized()  # importing peft imports bitsandbytes, which initialises CUDA
    env["gpu_bytes_in_this_process"] = gpu_bytes_here()  # the launching process (a notebook's kernel, in a job) allocates nothing on a GPU
    print("CUDA initialised in the launching process:", env["cuda_initialised_in_this_process"], "; GPU bytes allocated there:", env["gpu_bytes_in_this_process"], flush=True)
    (out / "distributed_gpu.json").write_text(json.dumps({"env": env, "runs": results}, indent=1))


if __name__ == "__main__":
    main()
