"""Install the carried wheels (a folder of .whl files) whose distributions this interpreter lacks, without
dependencies and without an index: for a GPU machine that cannot reach a package registry.

    python3 benchmarks/install_carried.py .gpu/whl
"""
import importlib.metadata as md, re, subprocess, sys
from pathlib import Path

folder = Path(sys.argv[1])
missing = []
for wheel in sorted(folder.glob("*.whl")):
    name = re.split(r"-\d", wheel.name, maxsplit=1)[0].replace("_", "-")
    try: md.version(name)
    except md.PackageNotFoundError: missing.append(wheel)
print("installing:", [w.name.split("-")[0] for w in missing] or "nothing", flush=True)
if missing: subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", *map(str, missing)], check=True)
