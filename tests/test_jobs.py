"Job notebooks run through the `ft_nb` command: files, manifests, reproducibility and refusals."
import json, os, re, subprocess

import nbformat
import pytest

from conftest import FT_NB, ROOT, ft_nb
from ft_nb.runner import job_parameters, list_jobs


@pytest.mark.parametrize("nb", sorted((ROOT / "nbs" / "jobs").glob("*.ipynb")), ids=lambda p: p.stem)
def test_job_notebooks_keep_their_parameters_cell(nb):
    cells = nbformat.read(nb, as_version=4).cells
    tagged = [c for c in cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, f"{nb.name}: expected one cell tagged 'parameters' (did nbdev-clean strip the tags?)"
    params = job_parameters(nb)
    assert {"quick", "run_dir", "seed"} <= set(params), f"{nb.name} lacks the quick profile, run_dir or seed"


def test_list_shows_jobs_and_parameters():
    r = ft_nb("list")
    assert r.returncode == 0, r.stderr
    assert "quickstart" in r.stdout and "max_steps: int = 24  # optimizer steps" in r.stdout
    assert set(list_jobs()) >= {"quickstart"}


def _run(out, name, *extra):
    r = ft_nb("run", "quickstart", "--quick", "--output-root", out, "--run-name", name, *extra)
    return r, out / name


@pytest.mark.slow
def test_quickstart_writes_a_complete_run_and_repeats_exactly(out):
    r, run = _run(out, "a")
    assert r.returncode == 0, r.stderr[-3000:]
    for f in ["quickstart.ipynb", "metrics.json", "metrics.jsonl", "manifest.json", "loss.png", "generations.jsonl", "adapter/adapter_model.safetensors",
              "eval.json", "eval.png", "probes.jsonl", "review.html", "review_key.json", "alpaca_eval/tuned.json"]:
        assert (run / f).is_file(), f"missing {f}"
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "succeeded" and manifest["ended"] and manifest["params"]["quick"] is True
    assert manifest["versions"]["torch"] and manifest["seed"] == 42
    m = json.loads((run / "metrics.json").read_text())
    # the training plan, printed before the first step, stored in the manifest and shown by `ft_nb show`
    assert manifest["plan"]["steps"] == m["steps"] and manifest["plan"]["summary"].splitlines()[0] in r.stdout
    assert "plan: " in r.stdout and r.stdout.index("plan: ") < r.stdout.index("step ")  # before the first progress line
    assert "| test (2 items) | base | tuned |" in r.stdout  # the headline table ends the terminal's output
    assert "it/s]" not in (run / "quickstart.ipynb").read_text()  # no progress bar stored refresh by refresh
    shown = ft_nb("show", run)
    assert shown.returncode == 0 and manifest["plan"]["summary"] in shown.stdout
    assert m["best_val_loss"] < m["first_val_loss"]
    assert m["eval_split"] == "test" and m["eval_items"] == 2 and m["forgetting"] is not None and set(m["difference"]) >= {"fields", "token_f1"}
    assert (run / "loss.png").read_bytes()[:4] == b"\x89PNG"
    # the training's progress reached the terminal as plain lines, and the whole printed output is kept in log.txt
    last = re.findall(r"^step (\d+)/(\d+)  loss [\d.]+.*elapsed, ~[\d:]+ left$", r.stdout, re.M)[-1]
    assert last[0] == last[1] == str(m["steps"]) and "step " + last[0] in (run / "log.txt").read_text()

    r2, run2 = _run(out, "b")
    assert r2.returncode == 0, r2.stderr[-3000:]
    m2 = json.loads((run2 / "metrics.json").read_text())
    for k in ("before", "after", "first_val_loss", "best_val_loss", "final_train_loss", "trainable"): assert m2[k] == m[k], k
    history = lambda run: [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
    strip = lambda rows: [{k: v for k, v in row.items() if not any(t in k for t in ("runtime", "per_second", "_time", "per_s"))} for row in rows]
    assert strip(history(run2)) == strip(history(run))


@pytest.mark.parametrize("args, says", [
    (["run", "quickstrat"], "Unknown job 'quickstrat'; jobs: compare, curate, distributed, eval, export, forgetting, instruct, prefer, quickstart, rag, search, sweep, train"),
    (["run", "quickstart", "-p", "max_step", "3"], "Unknown parameter(s) max_step for quickstart; valid: base_model"),
    (["run", "quickstart", "-p", "max_steps", "three"], "parameter 'max_steps' expects int, got 'three'"),
    (["run", "quickstart", "-p", "run_dir", "/tmp/x"], "Unknown parameter(s) run_dir"),
    (["run", "missing.ipynb"], "No notebook at missing.ipynb"),
])
def test_bad_input_is_refused_before_anything_runs(out, args, says):
    r = ft_nb(*args, "--output-root", out)
    assert r.returncode == 2
    assert says in r.stderr and r.stderr.count("ft_nb: error:") == 1
    assert not out.exists(), "nothing may be written for refused input"


def test_existing_run_folder_is_not_overwritten(out):
    (out / "taken").mkdir(parents=True); (out / "taken" / "keep.txt").write_text("x")
    r = ft_nb("run", "quickstart", "--quick", "--output-root", out, "--run-name", "taken")
    assert r.returncode == 2 and "already holds a run" in r.stderr
    assert (out / "taken" / "keep.txt").read_text() == "x"


@pytest.mark.parametrize("call, says", [
    (lambda: __import__("ft_nb.data.load", fromlist=["load_data"]).load_data("nope"), "Unknown data 'nope'"),
    (lambda: __import__("ft_nb.models", fromlist=["load_base_model"]).load_base_model("smollm"), "Unknown base model 'smollm'"),
    (lambda: __import__("ft_nb.methods.core", fromlist=["get_method"]).get_method("lorra"), "Unknown method 'lorra'"),
])
def test_unknown_names_are_refused_where_they_are_looked_up(call, says):
    "What the quickstart job's `data`, `base_model` and `method` meet (the job records such a failure: test_failed_job_is_recorded_as_failed)."
    with pytest.raises(Exception, match=re.escape(says)): call()


@pytest.mark.slow
def test_failed_job_is_recorded_as_failed(out):
    says = "Unknown method 'lorra'"
    r, run = _run(out, "bad-method", "-p", "method", "lorra")
    assert r.returncode == 1 and says in r.stderr
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "failed" and says in manifest["error"]
    executed = nbformat.read(run / "quickstart.ipynb", as_version=4)
    errors = [o for c in executed.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert errors and says in errors[0]["evalue"]
    assert not (run / "metrics.json").exists()


@pytest.mark.slow
def test_forgetting_and_eval_jobs_check_a_train_run(out):
    r = ft_nb("run", "train", "--quick", "-p", "data", "people", "-p", "balance_by", "category", "--output-root", out, "--run-name", "t")
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads((out / "t" / "manifest.json").read_text())["params"]["balance_by"] == "category"
    r = ft_nb("run", "train", "--quick", "-p", "data", "people", "-p", "balance_by", "colour", "--output-root", out, "--run-name", "t0")
    assert r.returncode == 1 and "balance_by: the training rows of people have no field 'colour'" in r.stderr
    r = ft_nb("run", "forgetting", "--quick", "-p", "run", out / "t", "--output-root", out, "--run-name", "f")
    assert r.returncode == 0, r.stderr[-2000:]
    for f in ("forgetting.json", "forgetting.png", "probes.jsonl", "metrics.json"): assert (out / "f" / f).is_file(), f
    rep = json.loads((out / "f" / "forgetting.json").read_text())
    assert len((out / "f" / "probes.jsonl").read_text().splitlines()) == 12 and rep["score"] >= 0 and rep["threshold"] == 5.0
    r = ft_nb("run", "forgetting", "--quick", "--output-root", out, "--run-name", "g")
    assert r.returncode == 1 and "run: expected a train run folder" in r.stderr

    r = ft_nb("run", "export", "--quick", "-p", "run", out / "t", "-p", "dtype", "q8_0", "--output-root", out, "--run-name", "x")
    assert r.returncode == 0, r.stderr[-2000:]
    check = json.loads((out / "x" / "export.json").read_text())
    assert check["bytes"] == (out / "x" / "model.gguf").stat().st_size and check["tokenizer_ids_equal"] and check["prompts"] == 2
    assert check["max_abs_logit_diff"] < 0.05  # q8_0's rounding on the tiny model

    r = ft_nb("run", "prefer", "--quick", "-p", "sft_run", out / "t", "--output-root", out, "--run-name", "pref")
    assert r.returncode == 0, r.stderr[-2000:]
    acc = json.loads((out / "pref" / "prefer.json").read_text())
    assert acc["before"]["pairs"] == acc["after"]["pairs"] > 0 and 0 <= acc["after"]["accuracy"] <= 1
    for f in ("prefer.png", "loss.png", "eval.json", "probes.jsonl", "adapter/adapter_model.safetensors"): assert (out / "pref" / f).is_file(), f
    assert json.loads((out / "pref" / "metrics.json").read_text())["reload_max_abs_diff"] < 1e-4

    r = ft_nb("run", "eval", "--quick", "-p", "run", out / "t", "--output-root", out, "--run-name", "e")
    assert r.returncode == 0, r.stderr[-2000:]
    rep = json.loads((out / "e" / "eval.json").read_text())
    assert rep["split"] == "test" and rep["items"] == 4 and list(rep["models"]) == ["base", "base 1-shot", "tuned"]
    assert set(rep["difference"]) == {"valid_json", "exact", "fields", "exact_match", "token_f1", "rougeL"} and "probes" in rep
    alpaca = json.loads((out / "e" / "alpaca_eval" / "tuned.json").read_text())
    assert len(alpaca) == 4 and set(alpaca[0]) == {"instruction", "output", "generator"}
    r = ft_nb("run", "eval", "--quick", "-p", "run", out / "t" / "adapter", "--output-root", out, "--run-name", "e2")
    assert r.returncode == 1 and "has no manifest.json naming its data: pass it with -p data" in r.stderr
    r = ft_nb("run", "eval", "--quick", "-p", "run", out / "t", "-p", "split", "val", "--output-root", out, "--run-name", "e3")
    assert r.returncode == 1 and "people has no split 'val'; it has train, validation, test" in r.stderr


@pytest.mark.slow
def test_rag_job_measures_four_options_and_recommends(out):
    r = ft_nb("run", "rag", "--quick", "--output-root", out, "--run-name", "r")
    assert r.returncode == 0, r.stderr[-2000:]
    rep = json.loads((out / "r" / "rag.json").read_text())
    assert list(rep["before"]) == ["closed-book base", "base + RAG", "fine-tuned", "fine-tuned + RAG"] and set(rep["recall"]) == {"bm25", "dense"}
    assert rep["cost"]["base + RAG"]["prompt_tokens"] > rep["cost"]["closed-book base"]["prompt_tokens"] and rep["approach"]
    assert len((out / "r" / "generations_changed.jsonl").read_text().splitlines()) == 2 and (out / "r" / "rag.png").is_file()
    r = ft_nb("run", "rag", "--quick", "-p", "retriever", "tfidf", "--output-root", out, "--run-name", "bad")
    assert r.returncode == 1 and "expected 'bm25', 'dense' or 'best'" in r.stderr


@pytest.mark.slow
def test_rag_job_reads_a_folder_of_documents_given_by_relative_paths(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "faq.md").write_text("# FAQ\n\nRefunds take 14 days.\n\nSupport answers within 2 hours.\n\nThe office is in Lyon.\n")
    qs = [("How long do refunds take?", "14 days"), ("How fast is support?", "2 hours"), ("Where is the office?", "Lyon")]
    (tmp_path / "q.jsonl").write_text("\n".join(json.dumps({"question": q, "answer": a}) for q, a in qs))
    r = ft_nb("run", "rag", "--quick", "-p", "documents", "docs", "-p", "questions", "q.jsonl", "-p", "n_questions", 3,
              "--output-root", "outputs", "--run-name", "mine", cwd=tmp_path)  # paths relative to where the user stands
    assert r.returncode == 0, r.stderr[-2000:]
    run = tmp_path / "outputs" / "mine"
    assert json.loads((run / "metrics.json").read_text())["questions"] == 3
    changed = [json.loads(l) for l in (run / "generations_changed.jsonl").read_text().splitlines()]
    assert {c["reference"] for c in changed} == {"14 days", "2 hours"}  # two answers swapped between their passages
    (tmp_path / "bad.jsonl").write_text(json.dumps({"question": "Colour?", "answer": "blue"}))
    r = ft_nb("run", "rag", "--quick", "-p", "documents", "docs", "-p", "questions", "bad.jsonl", "--output-root", "outputs", "--run-name", "bad", cwd=tmp_path)
    assert r.returncode == 1 and "bad.jsonl: question 1: the answer 'blue' is in no passage" in r.stderr


@pytest.mark.slow
def test_prefer_job_refuses_bad_pairs_naming_file_and_line(out, tmp_path):
    msg = lambda role, text: [{"role": role, "content": text}]
    pairs = [{"prompt": msg("user", "2 + 2?"), "chosen": msg("assistant", "4"), "rejected": msg("assistant", "5")},
             {"prompt": msg("user", "3 + 3?"), "chosen": msg("assistant", "6"), "rejected": msg("assistant", "6")}]
    (tmp_path / "prefs.jsonl").write_text("\n".join(json.dumps(p) for p in pairs))  # pairs as training reads them (other formats: curate first)
    r = ft_nb("run", "prefer", "--quick", "-p", "data", tmp_path / "prefs.jsonl", "--output-root", out, "--run-name", "bad")
    assert r.returncode == 1 and "prefs.jsonl:2: 'chosen' and 'rejected' are the same answer" in r.stderr, r.stderr[-1500:]


@pytest.mark.slow
def test_instruct_job_keeps_held_out_tasks_out_of_training(out):
    r = ft_nb("run", "instruct", "--quick", "-p", "held_out", "kind_of", "--output-root", out, "--run-name", "i")
    assert r.returncode == 0, r.stderr[-2000:]
    made = json.loads((out / "i" / "mixture.json").read_text())
    assert "kind_of" not in made["records"] and sum(made["records"].values()) == 40 and abs(sum(made["rates"].values()) - 1) < 1e-9
    rep = json.loads((out / "i" / "instruct.json").read_text())
    assert list(rep) == ["kind_of"] and rep["kind_of"]["items"] == 4 and rep["kind_of"]["split"] == "held-out task kind_of"
    r = ft_nb("run", "instruct", "--quick", "-p", "held_out", "nope", "--output-root", out, "--run-name", "bad")
    assert r.returncode == 1 and "unknown task(s) ['nope']" in r.stderr


@pytest.mark.slow
def test_parameter_files_are_checked_and_then_used(out, tmp_path):
    (tmp_path / "bad.yaml").write_text("max_steps: two\n")
    r = ft_nb("run", "quickstart", "-f", tmp_path / "bad.yaml", "--output-root", out)
    assert r.returncode == 2 and "bad.yaml: parameter 'max_steps' expects int, got 'two'" in r.stderr and not out.exists()
    (tmp_path / "typo.yaml").write_text("max_step: 2\n")
    r = ft_nb("run", "quickstart", "-f", tmp_path / "typo.yaml", "--output-root", out)
    assert r.returncode == 2 and "typo.yaml: unknown parameter(s) max_step for quickstart" in r.stderr and not out.exists()
    (tmp_path / "good.yaml").write_text("max_steps: 3\nlr: 2.0e-3\nn_probes: 2\n")
    r = ft_nb("run", "quickstart", "--quick", "-f", tmp_path / "good.yaml", "-p", "max_steps", "2", "--output-root", out, "--run-name", "f")
    assert r.returncode == 0, r.stderr[-2000:]
    params = json.loads((out / "f" / "manifest.json").read_text())["params"]
    assert (params["max_steps"], params["lr"], params["n_probes"]) == (2, 2e-3, 2)  # -p wins over the file


def test_train_job_passes_the_fast_paths_knobs_to_the_training_config():
    "`-p pack_length 8192 -p pack_rows -1 -p fast true` reach SFTConfig typed; a row count below -1 is refused."
    from ft_nb.runner import check_parameters
    from ft_nb.train.config import sft_config
    nb = ROOT / "nbs" / "jobs" / "train.ipynb"
    params = check_parameters(nb, {"pack_length": "8192", "pack_rows": "-1", "fast": "true", "max_length": "6000"})
    cfg = sft_config(params)
    assert (cfg.pack_length, cfg.pack_rows, cfg.fast, cfg.max_length) == (8192, -1, True, 6000)
    assert sft_config(check_parameters(nb, {"fast": "None"})).fast is None
    with pytest.raises(ValueError, match=r"'pack_rows' must be in \[-1, inf\)"): check_parameters(nb, {"pack_rows": "-2"})


# Inputs checked before a kernel starts; a command whose reader goes away ends quietly.
def test_unusable_data_is_refused_before_the_job_starts(tmp_path, capsys):
    from ft_nb.cli import main
    from ft_nb.core import finish_run, start_run
    failed = tmp_path / "cur"
    start_run(failed, "curate", {}); finish_run(failed, "failed", error="ValueError: curation left validation and test empty")
    (failed / "train.jsonl").write_text(json.dumps({"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}) + "\n")
    (tmp_path / "empty").mkdir()
    cases = {"data": (str(failed), f"{failed} holds a curate run that failed (ValueError: curation left validation and test empty)"),
             "source": (str(tmp_path / "empty"), f"parameter source: the folder {tmp_path / 'empty'} holds no data files"),
             "documents": (str(tmp_path / "no" / "docs"), f"parameter documents: no file or folder at {tmp_path / 'no' / 'docs'}")}
    for (param, (value, says)), job in zip(cases.items(), ("train", "curate", "rag")):
        assert main(["run", job, "-p", param, value, "--output-root", str(tmp_path / "out")]) == 2
        assert says in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    from ft_nb.data.builtin import load_curated
    with pytest.raises(ValueError, match="holds a curate run that failed"): load_curated(failed)  # the library refuses it too


def test_a_closed_output_pipe_ends_the_command_quietly():
    read, write = os.pipe()
    os.close(read)  # as `ft_nb list | head -1` once head has its line
    r = subprocess.run([str(FT_NB), "list"], stdout=write, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    os.close(write)
    assert r.returncode == 0 and r.stderr == ""


@pytest.mark.slow
def test_prefer_trains_on_a_text_preference_file_and_answers_its_held_out_prompts(tmp_path, out):
    rows = [{"prompt": f"What is {i} plus {i}?", "chosen": f"{2 * i}.", "rejected": f"{2 * i + 1}."} for i in range(120)]
    (tmp_path / "prefs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    r = ft_nb("run", "prefer", "--quick", "-p", "data", tmp_path / "prefs.jsonl", "-p", "n_generate", "3", "--output-root", out, "--run-name", "p")
    assert r.returncode == 0, r.stderr[-2000:]
    gens = (out / "p" / "generations.jsonl").read_text().splitlines()
    assert len(gens) == 3 and json.loads((out / "p" / "metrics.json").read_text())["steps"] == 4
