"Data integrity: cleaning that keeps meaning, bad bytes that cost one row, results that cannot be empty by accident, curate and train that fit, overwrites that never mix runs."
import json, re, os, signal, subprocess, time, unicodedata

import regex

import psutil
import pytest
from hypothesis import given, settings, strategies as st

from conftest import FT_NB, ROOT, ft_nb
from ft_nb.core import read_manifest
from ft_nb.data.builtin import make_people
from ft_nb.data.clean import clean_text
from ft_nb.data.records import read_jsonl, record_key, write_jsonl


def qa(q, a): return {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}


# 1. Cleaning: text that is already normal comes out byte for byte; anything else changes only as documented.
LINE = st.one_of(
    st.builds(lambda ind, s: " " * ind + s, st.integers(0, 12), st.sampled_from(["def f(a, b):", "return a + b", "x = {'k': [1, 2]}", "if a < b and b > c:", "\tpass"])),
    st.sampled_from(["<p><b>hello</b></p>", '<img src="cat.png" alt="a cat">', "Tom &amp; Jerry", "&lt;tag&gt;", "<br/>", "<div class='x'>a</div>"]),
    st.builds(lambda ind, k: " " * ind + k, st.integers(0, 8), st.sampled_from(["server:", "port: 8080", "- item", "key: 'value'"])),
    st.sampled_from(["# Title", "* a list item", "1. first", "```python", "```", "| a | b |", "> quoted", ""]),
    st.text(st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp", "Cf")), max_size=30).map(lambda s: unicodedata.normalize("NFC", s)),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(LINE, min_size=1, max_size=12))
def test_default_clean_leaves_code_markup_and_yaml_alone(lines):
    text = "\n".join(lines).strip("\n")
    assert clean_text(text) == (text, [])


def documented(t: str) -> str:
    "The default normalisations, written out independently: line ends, NFC, control and zero-width characters, joiners that join nothing."
    t = unicodedata.normalize("NFC", t.replace("\r\n", "\n").replace("\r", "\n"))
    t = "".join(c for c in t if not ((unicodedata.category(c) == "Cc" and c not in "\t\n") or c in "\u200b\u2060\ufeff"))
    has = lambda c, prop: c is not None and regex.fullmatch(rf"\p{{{prop}}}", c) is not None
    joins = lambda c: any(has(c, f"Joining_Type={j}") for j in "LDRC")
    def neighbour(i, step, skip):
        while 0 <= i < len(t) and skip(t[i]): i += step
        return t[i] if 0 <= i < len(t) else None
    out = []
    for i, c in enumerate(t):
        if c in "\u200c\u200d":
            emoji = c == "\u200d" and has(neighbour(i - 1, -1, lambda x: has(x, "Emoji_Modifier") or x == "\ufe0f"), "Extended_Pictographic") \
                and has(neighbour(i + 1, 1, lambda x: False), "Extended_Pictographic")
            virama = has(neighbour(i - 1, -1, lambda x: False), "Canonical_Combining_Class=Virama")
            word = joins(neighbour(i - 1, -1, lambda x: has(x, "Joining_Type=T"))) and joins(neighbour(i + 1, 1, lambda x: has(x, "Joining_Type=T")))
            if not (emoji or virama or word): continue
        out.append(c)
    return "".join(out)


@settings(max_examples=300, deadline=None)
@given(st.text(st.sampled_from(list("ab <>&;\t\r\n\x07\u200b\u200c\u200d\u00e9\u0301 بی👩💻\U0001F3FD\ufe0f\u094dक\u064b")) | st.characters(), max_size=80))
def test_default_clean_is_the_documented_normalisation(text):
    assert clean_text(text)[0] == documented(text)


# The curation scenario of the issue: 1,000 lines with 10 bad-byte lines, 20 code answers, 10 prompts asked twice.
CODE = ["def add_{i}(a, b):\n    return a + b + {i}", "class Queue{i}:\n    def __init__(self):\n        self.items = [{i}]\n\n    def pop(self):\n        return self.items.pop(0)"]


def _scenario(path):
    rows = make_people(960, seed=7)
    code = [qa(f"Write function number {i} in Python.", CODE[i % 2].format(i=i)) for i in range(20)]
    twins = [qa(r["messages"][0]["content"], json.dumps({"note": f"another answer {i}"})) for i, r in enumerate(rows[:10])]
    lines = [json.dumps(r, ensure_ascii=False).encode() for r in rows + code + twins]
    for k in range(10): lines.insert(50 * k + 3, b'{"instruction": "caf\xe9 ' + str(k).encode() + b'", "output": "x"}')
    path.write_bytes(b"\n".join(lines) + b"\n")
    return code


def test_curating_1000_lines_accounts_for_every_row(out, tmp_path):
    code = _scenario(tmp_path / "mixed.jsonl")
    r = ft_nb("run", "curate", "-p", "source", tmp_path / "mixed.jsonl", "-p", "tokenizer", "tiny", "--output-root", out, "--run-name", "c")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "ft_nb: rows: rows_in 1,000; kept: train" in r.stdout, r.stdout  # the counts, printed
    rep = json.loads((out / "c" / "report.json").read_text())
    assert rep["rows_in"] == 1000 and rep["rejected"]["load:invalid_utf8"] == 10
    assert sum(rep["rows_out"].values()) + sum(rep["rejected"].values()) == 1000
    rejected = [json.loads(l) for l in (out / "c" / "rejected.jsonl").read_text().splitlines()]
    assert all(x["where"].startswith(str(tmp_path / "mixed.jsonl") + ":") for x in rejected), "every rejected row names its file and line"
    kept = {s: read_jsonl(out / "c" / f, allow_empty=True) for s, f in (("train", "train.jsonl"), ("validation", "val.jsonl"), ("test", "test.jsonl"))}
    answers = {r["messages"][1]["content"] for rows in kept.values() for r in rows}
    assert all(c["messages"][1]["content"] in answers for c in code), "code answers must come out byte for byte"
    splits = {}
    for s, rows in kept.items():
        for r in rows: splits.setdefault(record_key(r), set()).add(s)
    assert max(len(v) for v in splits.values()) == 1, "a prompt in two splits"
    assert sum(len(v) for v in kept.values()) == sum(rep["rows_out"].values())


# 3. Results that cannot be empty by accident; ranges; negative numbers.
@pytest.mark.parametrize("rows, fracs, says", [
    ([], {}, "curation read no rows from"),
    ([{"question": "?", "reply": "!"}] * 3, {}, "curation left train"),
    ([qa(f"q{i}", f"a{i}") for i in range(30)], {"val_frac": 0.7, "test_frac": 0.7}, "val_frac + test_frac must be below 1"),
    ([qa("What is the capital of France?", "Paris.")] * 5, {"val_frac": 0.5, "test_frac": 0.4}, "empty"),
])
def test_empty_results_fail(rows, fracs, says, tmp_path):
    "Refused where the curation raises (the job records such a failure: test_an_empty_curation_fails_the_job)."
    from ft_nb.data.curate import CurateConfig, curate
    from ft_nb.models import load_tokenizer
    (tmp_path / "src.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(ValueError, match=re.escape(says)): curate(tmp_path / "src.jsonl", tmp_path / "out", load_tokenizer("tiny"), CurateConfig(**fracs))


@pytest.mark.slow
def test_an_empty_curation_fails_the_job(out, tmp_path):
    (tmp_path / "src.jsonl").write_text("")
    r = ft_nb("run", "curate", "-p", "source", tmp_path / "src.jsonl", "-p", "tokenizer", "tiny", "--output-root", out, "--run-name", "e")
    assert r.returncode == 1 and "curation read no rows from" in r.stderr, r.stderr[-2000:]
    m = read_manifest(out / "e")
    assert m["status"] == "failed" and "curation read no rows from" in m["error"]


@pytest.mark.parametrize("args, says", [
    (["-p", "val_frac", "1.5"], "parameter 'val_frac' must be in [0, 1), got 1.5"),
    (["-p", "max_tokens", "0"], "parameter 'max_tokens' must be in [1, inf), got 0"),
])
def test_ranges_are_checked_before_anything_runs(args, says, out):
    r = ft_nb("run", "curate", *args, "--output-root", out)
    assert r.returncode == 2 and says in r.stderr and not out.exists()


def test_negative_numbers_parse_and_are_refused_by_range(out):
    r = ft_nb("run", "train", "--quick", "-p", "lr", "-1e-3", "--output-root", out)
    assert r.returncode == 2 and "parameter 'lr' must be in (0, inf), got -0.001" in r.stderr, r.stderr


# 4. Curate hands training what it can use.
@pytest.mark.slow
def test_curate_then_train_fits(out, tmp_path):
    write_jsonl(tmp_path / "small.jsonl", make_people(40))
    r = ft_nb("run", "curate", "-p", "source", tmp_path / "small.jsonl", "-p", "tokenizer", "tiny", "-p", "max_tokens", "300",
              "-p", "test_frac", "0", "--output-root", out, "--run-name", "cur")
    assert r.returncode == 0, r.stderr[-2000:]
    assert not (out / "cur" / "test.jsonl").read_text()  # no test split asked, none made
    r = ft_nb("run", "train", "--quick", "-p", "data", out / "cur", "-p", "n_generate", "2", "--output-root", out, "--run-name", "t")
    assert r.returncode == 0, r.stderr[-2000:]
    assert read_manifest(out / "t")["params"]["max_length"] is None and json.loads((out / "t" / "metrics.json").read_text())["counts"]["train"] > 0
    r = ft_nb("run", "train", "--quick", "-p", "data", out / "cur", "-p", "max_length", "64", "--output-root", out, "--run-name", "t2")
    assert r.returncode == 1 and "max_length 64 is below the token limit 300" in r.stderr
    (out / "cur" / "train.jsonl").unlink()
    r = ft_nb("run", "train", "--quick", "-p", "data", out / "cur", "--output-root", out, "--run-name", "t3")
    assert r.returncode == 1 and "has no train.jsonl" in r.stderr


@pytest.mark.slow
def test_audit_runs_before_generation_and_names_a_real_parameter(out, tmp_path):
    write_jsonl(tmp_path / "long.jsonl", [qa("word " * 300, "ok " + str(i)) for i in range(20)])
    r = ft_nb("run", "train", "--quick", "-p", "data", tmp_path / "long.jsonl", "-p", "max_length", "64", "-p", "n_generate", "4",
              "--output-root", out, "--run-name", "a")
    assert r.returncode == 1 and "supervision audit failed" in r.stderr and "-p audit False" in r.stderr
    assert not (out / "a" / "generations.jsonl").exists()
    r = ft_nb("run", "train", "--quick", "-p", "data", tmp_path / "long.jsonl", "-p", "max_length", "400", "-p", "audit", "False",
              "--output-root", out, "--run-name", "b")
    assert r.returncode == 0, r.stderr[-2000:]


# 5. --overwrite never leaves a failed run beside stale results.
@pytest.mark.slow
def test_overwrite_replaces_on_success_and_keeps_the_old_run_on_failure(out, tmp_path):
    write_jsonl(tmp_path / "a.jsonl", make_people(30))
    assert ft_nb("run", "curate", "-p", "source", tmp_path / "a.jsonl", "-p", "tokenizer", "tiny", "--output-root", out, "--run-name", "o").returncode == 0
    before = (out / "o" / "train.jsonl").read_text()
    (tmp_path / "bad.jsonl").write_text('{"nothing": "usable"}\n')
    r = ft_nb("run", "curate", "-p", "source", tmp_path / "bad.jsonl", "-p", "tokenizer", "tiny", "--output-root", out, "--run-name", "o", "--overwrite")
    assert r.returncode == 1 and "kept as it was" in r.stderr
    assert (out / "o" / "train.jsonl").read_text() == before and read_manifest(out / "o")["status"] == "succeeded"
    assert read_manifest(out / "o.failed")["status"] == "failed"
    write_jsonl(tmp_path / "b.jsonl", make_people(30, seed=1))
    r = ft_nb("run", "curate", "-p", "source", tmp_path / "b.jsonl", "-p", "tokenizer", "tiny", "--output-root", out, "--run-name", "o", "--overwrite")
    assert r.returncode == 0, r.stderr[-2000:]
    m = read_manifest(out / "o")
    assert (out / "o" / "train.jsonl").read_text() != before and m["params"]["source"].endswith("b.jsonl") and m["run_dir"] == str((out / "o").resolve())
    assert [p.name for p in out.glob(".o.*")] == [".o.lock"]  # no half-swapped folder left; the claim's lock file stays (core.claim_run)


# 9. A killed run is found as interrupted, and its temporary files go.
@pytest.mark.slow
def test_killed_run_is_found_interrupted(out, tmp_path):
    write_jsonl(tmp_path / "a.jsonl", make_people(300))
    proc = subprocess.Popen([str(FT_NB), "run", "curate", "-p", "source", str(tmp_path / "a.jsonl"), "-p", "tokenizer", "tiny",
                             "--output-root", str(out), "--run-name", "k"], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not (out / "k" / "manifest.json").exists(): time.sleep(0.05)
    while time.time() < deadline and read_manifest(out / "k").get("pid") == proc.pid: time.sleep(0.05)  # the kernel has taken over
    for pid in [proc.pid] + [c.pid for c in psutil.Process(proc.pid).children(recursive=True)]:  # the command and its kernel
        try: os.kill(pid, signal.SIGKILL)
        except ProcessLookupError: pass
    proc.wait()
    (out / "k" / ".kept.jsonl").write_text("half")  # what a kill mid-curation leaves
    assert read_manifest(out / "k")["status"] == "running"
    r = ft_nb("run", "curate", "--output-root", out, "--run-name", "k")
    assert r.returncode == 2 and "already holds a run" in r.stderr
    m = read_manifest(out / "k")
    assert m["status"] == "interrupted" and not (out / "k" / ".kept.jsonl").exists()


# 1, 7, 8, 9 through the library, on small fixture files.
def test_curate_keeps_code_html_and_yaml_answers_byte_for_byte(tmp_path):
    from ft_nb.data.curate import CurateConfig, curate
    from ft_nb.models import load_tokenizer
    answers = ["def f(a, b):\n    return a + b", "<p><b>hello</b></p>", '<img src="cat.png" alt="a cat">', "a:\n  b:\n    - c", "x &amp; y"]
    write_jsonl(tmp_path / "a.jsonl", [qa(f"Show {i}.", a) for i, a in enumerate(answers)])
    curate(tmp_path / "a.jsonl", tmp_path / "out", load_tokenizer("tiny"), CurateConfig(val_frac=0, test_frac=0))
    assert sorted(r["messages"][1]["content"] for r in read_jsonl(tmp_path / "out" / "train.jsonl")) == sorted(answers)


def test_mixed_formats_and_nested_instances_keep_every_row(tmp_path):
    from ft_nb.data.load import LoadReport, iter_records
    rows = [{"instruction": "Add 1 and 1.", "output": "2"}, {"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello"}]},
            {"instruction": "Even?", "instances": [{"input": "2", "output": "yes"}, {"input": "3", "output": "no"}, {"input": "4", "output": "yes"}]},
            {"prompt": "2+2=", "completion": 4}]
    (tmp_path / "m.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    rep = LoadReport("m")
    recs = list(iter_records(tmp_path / "m.jsonl", report=rep))
    assert len(recs) == 6 and dict(rep.formats) == {"alpaca": 1, "sharegpt": 1, "instances": 1, "prompt_completion": 1}
    assert recs[-1]["messages"][1]["content"] == "4"  # an integer answer is kept, as text


def test_wrong_type_is_named_as_such(tmp_path):
    from ft_nb.data.load import iter_records
    rows = [{"instruction": "Ok.", "output": "ok"}, {"instruction": "List.", "output": ["a"]}, {"instruction": "x"}]
    (tmp_path / "w.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    list(iter_records(tmp_path / "w.jsonl", mode="keep", rejected=tmp_path / "r.jsonl"))
    assert [json.loads(l)["reason"] for l in (tmp_path / "r.jsonl").read_text().splitlines()] == ["wrong_type", "missing_field"]


def test_quality_filters_keep_code_lists_and_short_answers():
    from ft_nb.data.clean import quality_issue
    good = [qa("Sort a list.", "def s(xs):\n    for i in range(len(xs)):\n        for j in range(len(xs) - 1):\n            if xs[j] > xs[j + 1]:\n                xs[j], xs[j + 1] = xs[j + 1], xs[j]\n    return xs"),
            qa("Links?", "\n".join(f"https://example.com/docs/{i}" for i in range(10))),
            qa("Capital of Peru?", "Lima."), qa("Is the US border open to Canada?", "Yes, the US border is open to Canada.")]
    assert [quality_issue(r) for r in good] == [None] * 4
    assert quality_issue(qa("Go on.", "and then " * 20)) == "repetitive"


# Runs never overwrite each other: a run folder is claimed for the run's life.
def test_a_run_name_in_use_is_refused_at_once(out, capsys):
    from ft_nb.cli import main
    holder = subprocess.Popen([str(FT_NB.parent / "python"), "-c", "import time; from ft_nb.core import claim_run\n"
                               f"with claim_run({str(out / 'r')!r}): print('held', flush=True); time.sleep(60)"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        for extra in ([], ["--overwrite"], ["--resume"]):
            t0 = time.perf_counter()
            assert main(["run", "quickstart", "--quick", "--run-name", "r", "--output-root", str(out), *extra]) == 2
            assert time.perf_counter() - t0 < 1
            assert f"Run folder {out / 'r'} is in use by process {holder.pid}" in capsys.readouterr().err
    finally: holder.kill(); holder.wait()
    assert not (out / "r").exists()


def test_an_output_root_that_cannot_be_written_is_refused(tmp_path, capsys):
    from ft_nb.cli import main
    (tmp_path / "file").write_text("x")
    assert main(["run", "quickstart", "--quick", "--output-root", str(tmp_path / "file" / "runs")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"output root {tmp_path / 'file' / 'runs'} cannot be written (Not a directory)" in err


@pytest.mark.slow
def test_two_runs_of_one_name_started_a_second_apart(out, tmp_path):
    write_jsonl(tmp_path / "a.jsonl", make_people(200))
    first = subprocess.Popen([str(FT_NB), "run", "curate", "-p", "source", str(tmp_path / "a.jsonl"), "-p", "tokenizer", "tiny",
                              "--output-root", str(out), "--run-name", "same"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(1)
    write_jsonl(tmp_path / "b.jsonl", make_people(50, seed=1))
    t0 = time.perf_counter()
    second = ft_nb("run", "curate", "-p", "source", tmp_path / "b.jsonl", "-p", "tokenizer", "tiny", "--output-root", out, "--run-name", "same")
    assert second.returncode == 2 and f"is in use by process {first.pid}" in second.stderr and time.perf_counter() - t0 < 5
    stdout, stderr = first.communicate(timeout=600)
    assert first.returncode == 0, stderr[-2000:]
    m = read_manifest(out / "same")
    assert m["status"] == "succeeded" and m["params"]["source"].endswith("a.jsonl")
    assert json.loads((out / "same" / "metrics.json").read_text())["counts"]["rows_in"] == 200 and "rows_in 200" in stdout


# Cleaning keeps meaning, and the filters keep correct answers that look unusual.
UNUSUAL = {  # prompt -> a correct answer that a careless cleaner or filter would change or drop
    "Reply only with emoji: a technologist and a rainbow flag.": "👩\u200d💻 🏳\ufe0f\u200d🌈",
    "Family emoji, one skin tone.": "👨🏽\u200d👩🏽\u200d👧🏽",
    "How do you write 'I want' in Persian?": "می\u200cخواهم",
    "Plural of 'book' in Persian?": "کتاب\u200cها",
    "Persian for 'cars'?": "خودرو\u200cها",
    "Devanagari ksha with an explicit half form.": "क्\u200dष",
    "One word: the capital of Peru.": "Lima",
    "How many legs has a spider?": "8",
    "A 3x3 zero matrix in NumPy.": "np.zeros((3, 3))\narray([[0., 0., 0.],\n       [0., 0., 0.],\n       [0., 0., 0.]])",
    "A list of 24 zeros in Python.": "[" + ", ".join(["0"] * 24) + "]",
    "A 3x4 HTML table of zeros.": "<table>\n" + "".join("  <tr>" + "<td>0</td>" * 4 + "</tr>\n" for _ in range(3)) + "</table>",
    "Extract the date from: 'The meeting was moved to 12 March 2024 at the main office.'": "12 March 2024",
    "Extract the company names from: Acme Corp and Globex Inc signed the deal with Initech.": "Acme Corp, Globex Inc, Initech",
    "Two lines with a Markdown line break.": "first line  \nsecond line",
}


def test_curation_keeps_unusual_correct_answers_byte_for_byte(tmp_path):
    from ft_nb.data.curate import CurateConfig, curate
    from ft_nb.models import load_tokenizer
    write_jsonl(tmp_path / "a.jsonl", [qa(q, a) for q, a in UNUSUAL.items()])
    report = curate(tmp_path / "a.jsonl", tmp_path / "out", load_tokenizer("tiny"), CurateConfig(val_frac=0, test_frac=0))
    assert report["rejected"] == {} and report["rows_out"]["train"] == len(UNUSUAL)
    assert {r["messages"][0]["content"]: r["messages"][1]["content"] for r in read_jsonl(tmp_path / "out" / "train.jsonl")} == UNUSUAL
    flagged = [json.loads(line) for line in (tmp_path / "out" / "flagged.jsonl").read_text().splitlines()]
    assert {f["flag"] for f in flagged} <= {"short_answer", "repetitive", "echo"}  # looked at, never dropped by default


def test_stray_joiners_go_and_each_kind_is_counted():
    assert clean_text("\u200dHi\u200c there\u200b") == ("Hi there", ["zero_width", "stray_joiner"])
    assert clean_text("a\u200cb")[0] == "ab"  # Latin letters do not join: nothing to keep apart
