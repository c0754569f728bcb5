"Real public data nobody here wrote (tests/fixtures/real, with its NOTICE): every job on the files people bring, with the rows accounted for."
import json, shutil

import pytest

from conftest import ROOT, ft_nb
from ft_nb.core import read_manifest

REAL = ROOT / "tests" / "fixtures" / "real"


@pytest.mark.slow
def test_real_data_through_curate_train_eval_forgetting_and_export(out, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for f in ("alpaca_eval_outputs.jsonl", "code_alpaca.json", "self_instruct_seed.jsonl"): shutil.copy(REAL / f, src / f)
    r = ft_nb("run", "curate", "-p", "source", src, "-p", "tokenizer", "tiny", "-p", "max_tokens", "512", "--output-root", out, "--run-name", "c")
    assert r.returncode == 0, r.stderr[-2000:]
    rep = json.loads((out / "c" / "report.json").read_text())
    seeds = sum(len(json.loads(line)["instances"]) for line in (src / "self_instruct_seed.jsonl").read_text().splitlines())
    assert rep["rows_in"] == 300 + 300 + seeds  # every row read...
    assert rep["rows_in"] == sum(rep["rows_out"].values()) + sum(rep["rejected"].values())  # ...and every row accounted for
    assert set(rep["formats"]) >= {"alpaca", "instances"} and rep["rows_out"]["train"] > 400
    rejected = [json.loads(line) for line in (out / "c" / "rejected.jsonl").read_text().splitlines()]
    assert len(rejected) == sum(rep["rejected"].values()) and all(x["where"].startswith(str(src)) for x in rejected)
    for args, name in ((["train", "-p", "data", out / "c"], "t"), (["eval", "-p", "run", out / "t"], "e"),
                       (["forgetting", "-p", "run", out / "t"], "f"), (["export", "-p", "run", out / "t"], "x")):
        r = ft_nb("run", args[0], "--quick", *args[1:], "--output-root", out, "--run-name", name)
        assert r.returncode == 0, f"{args[0]}: {r.stderr[-2000:]}"
        assert read_manifest(out / name)["status"] == "succeeded"
    m = json.loads((out / "t" / "metrics.json").read_text())
    assert m["eval_items"] > 0 and "difference" in m


@pytest.mark.slow
def test_rag_runs_on_documentation_with_code_blocks_by_default(out):
    r = ft_nb("run", "rag", "--quick", "-p", "documents", REAL / "requests_docs", "-p", "questions", REAL / "requests_questions.jsonl",
              "--output-root", out, "--run-name", "r")
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads((out / "r" / "rag.json").read_text())


def test_documentation_passages_fit_and_keep_every_line():
    from ft_nb.rag import folder_documents
    docs = folder_documents(REAL / "requests_docs", max_words=120)
    assert all(len(d["text"].split()) <= 120 for d in docs)
    for page in (REAL / "requests_docs").glob("*.rst"):
        lines = {l for l in page.read_text().splitlines() if l.strip()}
        kept = {l for d in docs if d["title"] == page.name for l in d["text"].splitlines()}
        assert lines <= kept, page.name
