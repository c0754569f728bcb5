"The curate job through `ft_nb run`: every row accounted for, rejected rows kept with reasons, a report with a plot."
import pytest
import json

from conftest import ROOT, ft_nb


def _jsonl(p): return [json.loads(l) for l in p.read_text().splitlines()]


@pytest.mark.slow
def test_curate_job_accounts_for_every_row(out):
    # one good row survives: it cannot fill validation and test, which is allowed here and a failure by default
    r = ft_nb("run", "curate", "--quick", "-p", "source", ROOT / "tests/fixtures/broken.jsonl", "-p", "allow_empty_splits", "True",
              "--output-root", out, "--run-name", "c")
    assert r.returncode == 0, r.stderr[-3000:]
    run = out / "c"
    report = json.loads((run / "report.json").read_text())
    kept = sum(len(_jsonl(run / f)) for f in ("train.jsonl", "val.jsonl", "test.jsonl"))
    rejected = _jsonl(run / "rejected.jsonl")
    assert report["rows_in"] == 14 == kept + len(rejected)
    assert sum(report["rejected"].values()) == len(rejected)
    assert all(x["reason"] and x["stage"] for x in rejected)
    assert (run / "report.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads((run / "manifest.json").read_text())["status"] == "succeeded"


@pytest.mark.slow
def test_curate_builtin_stdlib_records_python_version(out):
    r = ft_nb("run", "curate", "-p", "tokenizer", "tiny", "--output-root", out, "--run-name", "s")
    assert r.returncode == 0, r.stderr[-3000:]
    train = _jsonl(out / "s" / "train.jsonl")
    assert len(train) > 500 and all(t["python_version"] for t in train)
    report = json.loads((out / "s" / "report.json").read_text())
    assert report["audit"]["ok"] and report["rows_in"] == sum(report["rows_out"].values()) + sum(report["rejected"].values())
