"Every registered method trains on the tiny model, its validation loss falls, and what it saves reloads to the same outputs."
import json, re

import pytest
import torch
from datasets import DatasetDict

from conftest import ft_nb
from ft_nb.data.load import load_data
from ft_nb.methods.core import count_parameters, get_method, list_methods, load_trained, save_trained
from ft_nb.models import load_base_model
from ft_nb.train.config import SFTConfig
from ft_nb.train.sft import train_sft

# The matrix is the registry: a method notebook that registers a method is tested here with no other file edited.
METHODS = list(list_methods())


@pytest.fixture(scope="module")
def small():
    d = load_data("people")
    return DatasetDict({"train": d["train"].select(range(64)), "validation": d["validation"].select(range(8))})


def test_the_registry_holds_the_methods_the_readme_documents():
    assert {"full", "lora", "qlora", "prefix", "prompt", "ia3", "houlsby", "pfeiffer"} <= set(METHODS)


@pytest.mark.parametrize("method", METHODS)
def test_method_trains_and_reloads(method, small, tmp_path):
    base, tok = load_base_model("tiny", device="cpu")
    cfg = SFTConfig(**{"max_steps": 8, "eval_every": 4, "batch_size": 8, "seed": 0, **get_method(method).test})
    result = train_sft(base, tok, small, method, cfg)
    evals = result.history.series("eval_loss")[1]
    assert evals[-1] < evals[0] - 0.01, evals
    share = count_parameters(result.model)["percent"]
    assert (share == 100) if method == "full" else (0 < share < 5), share
    x = tok(["Ada Lovelace, 36, lives in London.", "import os"], return_tensors="pt", padding=True)
    with torch.no_grad():
        out = result.model(**x).logits
        folder = save_trained(result.model, tmp_path / "saved", method)
        again = load_trained(load_base_model("tiny", device="cpu")[0], folder).eval()  # a fresh copy of the same base
        assert (again(**x).logits - out).abs().max().item() < 1e-4
    assert json.loads((folder / "ft_nb_method.json").read_text())["method"] == method


def test_report_to_tensorboard_and_offline_wandb(small, tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_MODE", raising=False); monkeypatch.delenv("WANDB_DIR", raising=False)
    base, tok = load_base_model("tiny", device="cpu")
    train_sft(base, tok, small, "lora", SFTConfig(max_steps=2, eval_every=2, seed=0, report_to="tensorboard,wandb"), output_dir=tmp_path)
    assert list(tmp_path.glob("tensorboard/events.out.tfevents.*")), "no TensorBoard event file"
    assert list(tmp_path.glob("wandb/offline-run-*")), "no offline W&B run"
    import os
    assert "WANDB_MODE" not in os.environ and "WANDB_DIR" not in os.environ, "the run's environment leaked into the process"
    with pytest.raises(ValueError, match="unknown integration"):
        train_sft(*load_base_model("tiny", device="cpu"), small, "lora", SFTConfig(max_steps=1, report_to="mlflow"))


@pytest.mark.slow
def test_train_job_runs_a_method_with_options(out):
    r = ft_nb("run", "train", "--quick", "-p", "method", "houlsby", "-p", "method_options", '{"size": 8}', "-p", "data", "people",
              "-p", "n_generate", "2", "--output-root", out, "--run-name", "h")
    assert r.returncode == 0, r.stderr[-3000:]
    m = json.loads((out / "h" / "metrics.json").read_text())
    assert m["method"] == "houlsby" and m["method_options"] == {"size": 8}
    assert m["reload_max_abs_diff"] < 1e-4 and m["adapter_bytes"] > 0 and m["step_s_median"] > 0
    assert set(m["before"]) >= {"valid_json", "exact", "fields", "token_f1", "rougeL", "bleu", "chrf", "probe_accuracy"}
    assert m["difference"]["fields"]["items"] == 2 and m["difference"]["fields"]["low"] <= m["difference"]["fields"]["diff"] <= m["difference"]["fields"]["high"]
    assert len((out / "h" / "generations.jsonl").read_text().splitlines()) == 2
    for f in ("metrics.jsonl", "loss.png", "lr.png", "adapter/ft_nb_method.json"): assert (out / "h" / f).is_file(), f


def test_bad_method_options_are_refused_naming_the_parameter():
    "What the train job's `parse_options` refuses (before any work); a job's recorded failure is test_jobs' business."
    from ft_nb.methods.core import parse_options
    with pytest.raises(ValueError, match="parameter method_options: expected a JSON object"): parse_options("lora", "{r: 8}")
    with pytest.raises(TypeError, match=re.escape("has no option(s) ['rank']")): parse_options("lora", '{"rank": 8}')


@pytest.mark.parametrize("job, files", [("compare", ["comparison.md", "comparison.png", "comparison.json"]),
                                        ("sweep", ["sweep.md", "sweep.png", "sweep.json"])])
@pytest.mark.slow
def test_compare_and_sweep_jobs_quick(job, files, out):
    r = ft_nb("run", job, "--quick", "--output-root", out, "--run-name", job)
    assert r.returncode == 0, r.stderr[-3000:]
    for f in files: assert (out / job / f).stat().st_size > 0, f
    rows = json.loads((out / job / files[2]).read_text())
    assert len(rows) == 2 and all("error" not in r for r in rows)


@pytest.mark.slow
def test_quick_profile_yields_to_explicit_parameters(out):
    r = ft_nb("run", "train", "--quick", "-p", "max_steps", "3", "-p", "eval_every", "3", "-p", "save_every", "3",
              "--output-root", out, "--run-name", "q3")
    assert r.returncode == 0, r.stderr[-3000:]
    m = json.loads((out / "q3" / "manifest.json").read_text())
    assert m["params"]["max_steps"] == 3 and m["params"]["base_model"] == "tiny"  # the user's steps, the quick profile's model
    assert json.loads((out / "q3" / "metrics.json").read_text())["steps"] == 3
