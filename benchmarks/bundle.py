"""Gather every result JSON under a folder into one file (a device call returns only a few files).

    python benchmarks/bundle.py RESULTS_FOLDER OUT_FILE
"""
import json, sys
from pathlib import Path

root = Path(sys.argv[1])
found = {str(p.relative_to(root)): json.loads(p.read_text()) for p in sorted(root.rglob("*.json")) if p.name in ("bench.json", "varlen-check.json") or p.parent == root}
Path(sys.argv[2]).write_text(json.dumps(found))
print("bundled:", list(found))
