import os, subprocess, sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no hub is reachable here: fail fast instead of retrying
os.environ.setdefault("MPLBACKEND", "Agg")
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FT_NB = Path(sys.executable).parent / "ft_nb"


def ft_nb(*args, timeout=900, cwd=ROOT) -> subprocess.CompletedProcess:
    "Run the installed `ft_nb` command, as a user would (from the project folder unless `cwd` is given)."
    return subprocess.run([str(FT_NB), *map(str, args)], capture_output=True, text=True, timeout=timeout, cwd=cwd)


@pytest.fixture
def out(tmp_path):
    "A fresh output root for runs."
    return tmp_path / "outputs"
