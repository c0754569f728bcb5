"""Benchmark: the whole curation chain on generated records at several sizes, near-duplicate detection on.

For each size it generates the rows (3% exact and 3% near duplicates), curates them in a fresh
process, and prints the seconds of each stage, records per second, and peak memory: the curating
process's own, its largest worker's, and the whole process tree's (proportional set size, which
counts a page shared by several processes once, sampled every half second).

    .venv/bin/python benchmarks/curate_200k.py                       # 200,000 rows
    .venv/bin/python benchmarks/curate_200k.py --rows 200000,600000,2000000 --record nbs/results/curate_scale_cpu.json

Targets (issue 38): 2,000,000 rows in at most 15 minutes with peak memory at most 2 GB, on a 2-core machine.
"""
import argparse, json, os, platform, random, re, resource, subprocess, sys, tempfile, threading, time
from pathlib import Path


def vocabulary() -> list[str]:
    "Real English words, from the installed standard library's docstrings."
    from ft_nb.data.stdlib import make_stdlib
    words = {w.lower() for r in make_stdlib() for m in r["messages"] for w in re.findall(r"[A-Za-z]{3,12}", m["content"])}
    return sorted(words)


def make_rows(n: int, seed: int = 0):
    "Alpaca-style rows of realistic length (instructions 10-60 words, answers 40-200), with 3% exact and 3% near duplicates."
    rng, vocab = random.Random(seed), vocabulary()
    cats = [f"topic-{i}" for i in range(12)]
    sent = lambda a, b: " ".join(rng.choices(vocab, k=rng.randint(a, b))).capitalize() + "."
    rows = []
    for i in range(n):
        r = rng.random()
        if rows and r < 0.03: rows.append(dict(rng.choice(rows)))  # exact duplicate
        elif rows and r < 0.06:  # near duplicate: a few words more at the start
            src = rng.choice(rows); rows.append({**src, "instruction": "Please, " + src["instruction"]})
        else: rows.append({"instruction": sent(10, 60), "input": sent(0, 30) if rng.random() < 0.3 else "",
                           "output": " ".join(sent(8, 25) for _ in range(rng.randint(2, 8))), "category": rng.choice(cats)})
        yield rows[-1]


class TreeMemory:
    "The peak proportional set size of this process and its children, sampled in a thread."
    def __init__(self, every: float = 0.5):
        import psutil
        self.me, self.every, self.peak, self.stop = psutil.Process(), every, 0, threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True); self.thread.start()
    def sample(self) -> int:
        total = 0
        for p in [self.me, *self.me.children(recursive=True)]:
            try: total += p.memory_full_info().pss
            except Exception: pass  # a worker that just ended
        return total
    def run(self):
        while not self.stop.is_set(): self.peak = max(self.peak, self.sample()); time.sleep(self.every)
    def close(self) -> float:
        self.stop.set(); self.thread.join(); return max(self.peak, self.sample()) / 1e9


def curate_once(src: Path, out: Path) -> dict:
    "Curate `src` into `out` in this process and measure it (run in a fresh process)."
    from ft_nb.data.curate import CurateConfig, curate
    from ft_nb.models import load_tokenizer
    tok = load_tokenizer("embedded")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    mem, t = TreeMemory(), time.perf_counter()
    rep = curate(src, out, tok, CurateConfig(max_tokens=1024))
    total, tree = time.perf_counter() - t, mem.close()
    return {"rows": rep["rows_in"], "seconds": total, "stages": rep["seconds"], "work_seconds": rep["work_seconds"],
            "rows_out": rep["rows_out"], "rejected": rep["rejected"], "duplicates_removed": rep["duplicates"]["removed"],
            "memory_gb": {"before": before, "process": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2,
                          "largest_worker": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024**2, "tree_pss": tree}}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", default="200000", help="sizes to curate, comma-separated")
    ap.add_argument("--keep", help="write the sources and results here instead of a temporary folder")
    ap.add_argument("--record", help="write the measurements to this JSON file")
    ap.add_argument("--generate-only", help=argparse.SUPPRESS)
    ap.add_argument("--curate-only", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.generate_only:  # a child process, so that the rows it holds do not count in the curation's memory
        with open(args.generate_only, "w") as f:
            for r in make_rows(int(args.rows)): f.write(json.dumps(r) + "\n")
        return
    if args.curate_only:
        print(json.dumps(curate_once(*map(Path, args.curate_only)))); return

    work = Path(args.keep or tempfile.mkdtemp(prefix="ft_nb-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    results = []
    for n in map(int, args.rows.split(",")):
        src, t = work / f"source-{n}.jsonl", time.perf_counter()
        if not src.exists():
            subprocess.run([sys.executable, __file__, "--rows", str(n), "--generate-only", str(src)], check=True)
            print(f"generated {n:,} rows ({src.stat().st_size / 1e6:,.0f} MB) in {time.perf_counter() - t:.1f}s", flush=True)
        done = subprocess.run([sys.executable, __file__, "--curate-only", str(src), str(work / f"out-{n}")], check=True,
                              stdout=subprocess.PIPE, text=True)
        r = json.loads(done.stdout.strip().splitlines()[-1]); results.append(r)
        m = r["memory_gb"]
        print(f"{n:>10,} rows: {r['seconds']:7.1f} s ({n / r['seconds']:,.0f} rows/s), peak {m['tree_pss']:.2f} GB for the process tree "
              f"(process {m['process']:.2f} GB, {m['before']:.2f} before curating; largest worker {m['largest_worker']:.2f} GB); "
              f"{r['duplicates_removed']:,} duplicates removed", flush=True)
        print("    stages (s): " + ", ".join(f"{k} {v:.1f}" for k, v in r["stages"].items()), flush=True)
        print("    pass 1's work (s, summed over processes): " + ", ".join(f"{k} {v:.1f}" for k, v in r["work_seconds"].items()), flush=True)
    big = results[-1]
    print(f"largest: {big['seconds'] / 900:.2f}x of 15 minutes, {big['memory_gb']['tree_pss'] / 2:.2f}x of 2 GB")
    if args.record:
        import ft_nb, tokenizers
        Path(args.record).write_text(json.dumps({
            "command": "benchmarks/curate_200k.py --rows " + args.rows, "machine": f"{os.cpu_count()} cores, {platform.processor() or platform.machine()}",
            "python": platform.python_version(), "tokenizers": tokenizers.__version__, "ft_nb": ft_nb.__version__,
            "results": results}, indent=1) + "\n")


if __name__ == "__main__":
    main()
