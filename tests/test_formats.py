"Every source format converts to chat records; broken rows are named by line and kept aside with their reason."
import json
from pathlib import Path

import pandas as pd
import pytest

from ft_nb.data.load import iter_records, load_records
from ft_nb.data.records import RecordError

FIX = Path(__file__).parent / "fixtures"
U, A, S = "user", "assistant", "system"


def msgs(rec): return [(m["role"], m["content"]) for m in rec["messages"]]


@pytest.mark.parametrize("file, fmt, first", [
    ("alpaca.json", "alpaca", [(U, "Give a synonym for happy."), (A, "Joyful.")]),
    ("dolly.jsonl", "dolly", [(U, "When was the Eiffel Tower finished?\n\nContext: The Eiffel Tower was completed in 1889 for the World's Fair."), (A, "In 1889.")]),
    ("sharegpt.jsonl", "sharegpt", [(S, "You answer briefly."), (U, "What is 2+2?"), (A, "4.")]),
    ("openai.jsonl", "openai", [(U, "Capital of Japan?"), (A, "Tokyo.")]),
    ("prompt_completion.csv", "prompt_completion", [(U, "Complete: The sky is"), (A, "blue.")]),
])
def test_each_format_converts(file, fmt, first, capsys):
    ds, rep = load_records(FIX / file)
    assert rep.format == fmt and f"rows in format '{fmt}'" in capsys.readouterr().out
    assert (rep.read, rep.kept, len(ds)) == (2, 2, 2)
    assert msgs(ds[0]) == first


def test_format_details():
    alpaca = list(iter_records(FIX / "alpaca.json"))
    assert msgs(alpaca[1])[0] == (U, "Translate to French.\n\nGood morning")  # input joins the instruction
    assert list(iter_records(FIX / "dolly.jsonl"))[0]["category"] == "closed_qa"
    share = list(iter_records(FIX / "sharegpt.jsonl"))
    assert share[1]["id"] == "s2" and [r for r, _ in msgs(share[1])] == [U, A, U, A]
    assert [r["text"] for r in iter_records(FIX / "text.jsonl")][0].startswith("The mitochondrion")


def test_column_mapping_and_parquet(tmp_path):
    recs = list(iter_records(FIX / "qa_custom.jsonl", columns={"prompt": "question", "completion": "answer", "category": "topic"}))
    assert msgs(recs[0]) == [(U, "Who painted the Mona Lisa?"), (A, "Leonardo da Vinci.")] and recs[1]["category"] == "biology"
    pd.read_csv(FIX / "prompt_completion.csv").to_parquet(tmp_path / "pc.parquet")
    assert [msgs(r) for r in iter_records(tmp_path / "pc.parquet")] == [msgs(r) for r in iter_records(FIX / "prompt_completion.csv")]


BROKEN = {2: "invalid_json", 3: "not_an_object", 4: "missing_field", 5: "empty_messages", 6: "empty_content",
          7: "non_string", 8: "unknown_role", 9: "role_order", 10: "no_final_assistant", 11: "no_assistant_turn",
          12: "bad_message", 13: "role_order"}


def test_keep_going_rejects_every_bad_row_with_its_reason(tmp_path):
    ds, rep = load_records(FIX / "broken.jsonl", mode="keep", rejected=tmp_path / "rejected.jsonl")
    assert len(set(BROKEN.values())) >= 10
    rejected = [json.loads(l) for l in (tmp_path / "rejected.jsonl").read_text().splitlines()]
    assert {int(r["where"].rsplit(":", 1)[1]): r["reason"] for r in rejected} == BROKEN
    assert (rep.read, rep.kept, len(ds)) == (14, 2, 2) and rep.read == rep.kept + sum(rep.rejected.values())
    assert all(r["error"] and "row" in r for r in rejected)


@pytest.mark.parametrize("line", sorted(BROKEN))
def test_stop_mode_names_file_and_line(tmp_path, line):
    rows = (FIX / "broken.jsonl").read_text().splitlines()
    f = tmp_path / "one_bad.jsonl"
    f.write_text(rows[0] + "\n" + rows[line - 1] + "\n")
    with pytest.raises(RecordError, match=rf"one_bad\.jsonl:2: ") as e: load_records(f)
    assert e.value.reason == BROKEN[line]
