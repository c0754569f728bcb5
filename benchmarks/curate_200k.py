"""Benchmark: the whole curation chain on 200,000 generated records, near-duplicate detection on.

Prints records per second for each stage and overall, and the peak memory of the process.
Target (issue 3): under 5 minutes and under 4 GB on a 2-core machine.

    .venv/bin/python benchmarks/curate_200k.py [--rows 200000] [--keep DIR]
"""
import argparse, json, random, re, resource, subprocess, sys, tempfile, time
from pathlib import Path


def vocabulary() -> list[str]:
    "Real English words, from the installed standard library's docstrings."
    from ft_nb.data.stdlib import make_stdlib
    words = {w.lower() for r in make_stdlib() for m in r["messages"] for w in re.findall(r"[A-Za-z]{3,12}", m["content"])}
    return sorted(words)


def make_rows(n: int, seed: int = 0) -> list[dict]:
    "Alpaca-style rows of realistic length (instructions 10-60 words, answers 40-200), with 3% exact and 3% near duplicates."
    rng, vocab = random.Random(seed), vocabulary()
    cats = [f"topic-{i}" for i in range(12)]
    sent = lambda a, b: " ".join(rng.choices(vocab, k=rng.randint(a, b))).capitalize() + "."
    rows = []
    for i in range(n):
        r = rng.random()
        if rows and r < 0.03: rows.append(dict(rng.choice(rows))); continue  # exact duplicate
        if rows and r < 0.06:  # near duplicate: a few words more at the start
            src = rng.choice(rows); rows.append({**src, "instruction": "Please, " + src["instruction"]}); continue
        rows.append({"instruction": sent(10, 60), "input": sent(0, 30) if rng.random() < 0.3 else "",
                     "output": " ".join(sent(8, 25) for _ in range(rng.randint(2, 8))), "category": rng.choice(cats)})
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--keep", help="write the source and results here instead of a temporary folder")
    ap.add_argument("--generate-only", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.generate_only:  # run in a child process, so that the rows it holds do not count in the curation's peak memory
        with open(args.generate_only, "w") as f:
            for r in make_rows(args.rows): f.write(json.dumps(r) + "\n")
        return

    work = Path(args.keep or tempfile.mkdtemp(prefix="ft_nb-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    src = work / "source.jsonl"
    subprocess.run([sys.executable, __file__, "--rows", str(args.rows), "--generate-only", str(src)], check=True)
    print(f"generated {args.rows:,} rows ({src.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - t:.1f}s")

    from ft_nb.data.curate import CurateConfig, curate
    from ft_nb.models import load_tokenizer
    tok = load_tokenizer("embedded")
    base_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    print(f"memory before curating (libraries and tokenizer loaded): {base_gb:.2f} GB")
    t = time.perf_counter()
    rep = curate(src, work / "out", tok, CurateConfig(max_tokens=1024))
    total = time.perf_counter() - t
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    print(f"rows in {rep['rows_in']:,}; out {rep['rows_out']}; rejected {rep['rejected']}")
    print(f"duplicates removed {rep['duplicates']['removed']:,} ({rep['duplicates']['cross_split_clusters']:,} clusters across splits)")
    for stage, s in rep["seconds"].items():
        rate = f"{rep['rows_in'] / s:12,.0f} rows/s" if s >= 0.05 else "(nothing to do)" if s < 0.05 else ""
        print(f"  {stage:14s} {s:8.1f}s  {rate}")
    print(f"TOTAL {total:.1f}s = {rep['rows_in'] / total:,.0f} records/s; peak memory {peak_gb:.2f} GB "
          f"(targets: {total / 300:.2f}x of 5 min, {peak_gb / 4:.2f}x of 4 GB)")


if __name__ == "__main__":
    main()
