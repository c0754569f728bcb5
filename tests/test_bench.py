import json, subprocess, sys
from pathlib import Path

import pytest
import torch
from datasets import DatasetDict

from ft_nb.bench.speed import QUICK, BenchSpec, run_arm
from ft_nb.data.load import load_data
from ft_nb.models import load_base_model
from ft_nb.train.config import SFTConfig
from ft_nb.train.sft import train_sft

FT_NB = str(Path(sys.executable).parent / "ft_nb")


@pytest.mark.slow
def test_bench_quick_runs_every_arm_on_the_same_batches_and_they_agree(tmp_path):
    p = subprocess.run([FT_NB, "bench", "--quick", "--out", str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]
    assert "| tiny lora, 2x256 | ft_nb |" in p.stdout and f"results: {tmp_path}" in p.stdout
    saved = json.loads((tmp_path / "bench.json").read_text())
    runs = {a: rs[0] for a, rs in saved["runs"].items()}
    assert set(runs) == {"tutorial", "expert", "ft_nb"}
    assert all(len(r["losses"]) == QUICK.steps for r in runs.values())
    assert len({tuple(r["real_tokens"]) for r in runs.values()}) == 1  # the same batches
    first = runs["tutorial"]["losses"][0]
    for a, r in runs.items():
        gap = max(abs(x - y) for x, y in zip(r["losses"], runs["tutorial"]["losses"]))
        assert gap < 1e-4 * first, (a, gap)
    assert (tmp_path / "bench.png").stat().st_size > 0 and "| expert |" in (tmp_path / "bench.md").read_text()


@pytest.mark.slow
def test_an_arm_records_its_phases_and_can_profile_its_setup(tmp_path, monkeypatch):
    "Each run notes when its imports ended, its model was built and its first step began; FT_NB_BENCH_PROFILE=N keeps the setup's N costliest calls."
    spec = BenchSpec("tiny", steps=2, row_len=256, rows=1, median_len=40, max_len=200)
    monkeypatch.setenv("FT_NB_BENCH_PROFILE", "12")
    profiled = run_arm("ft_nb", spec, tmp_path, "-p")
    monkeypatch.delenv("FT_NB_BENCH_PROFILE")
    plain = run_arm("expert", spec, tmp_path, "-e")
    for r in (profiled, plain):
        assert 0 < r["imported_s"] < r["made_s"] < r["ready_s"] < r["ends"][0], r
        assert abs(r["ends"][0] - r["times"][0] - r["ready_s"]) < 0.05  # the first step begins when it is ready
    assert "plan_training" in profiled["setup_profile"] and "_ft_nb_arm" in profiled["setup_profile"]
    assert "setup_profile" not in plain


@pytest.mark.slow
def test_a_failing_arm_is_reported_with_its_log(tmp_path):
    res = run_arm("ft_nb", BenchSpec("tiny", steps=2, row_len=64, rows=1, median_len=40, max_len=200), tmp_path)  # examples longer than a row
    assert "failed" in res and "more than a packed row" in res["failed"]
    assert (tmp_path / "ft_nb.log").read_text().strip()
    p = subprocess.run([FT_NB, "bench", "--quick", "--arms", "tutorial,nope", "--out", str(tmp_path / "x")], capture_output=True, text=True)
    assert p.returncode == 2 and "unknown ['nope']" in p.stderr


@pytest.fixture(scope="module")
def tiny():
    src = load_data("people")
    return DatasetDict({"train": src["train"].select(range(16))}), load_base_model("tiny", device="cpu")


@pytest.mark.parametrize("kw, method, message", [
    ({"max_length": 512, "pack_length": 256}, "lora", "longer than a packed row"),
    ({"balance_by": "category"}, "lora", "balance_by draws single rows"),
    ({}, "prefix", "does not support packing"),
])
def test_the_fast_path_refuses_what_it_cannot_do(tiny, kw, method, message):
    data, (model, tok) = tiny
    with pytest.raises(ValueError, match=message):
        train_sft(model, tok, data, method, SFTConfig(max_steps=1, fast=True, audit=False, **kw))


def test_compile_needs_the_fast_path(tiny):
    data, (model, tok) = tiny
    with pytest.raises(ValueError, match="compile=True compiles the fast path's layers"):
        train_sft(model, tok, data, "lora", SFTConfig(max_steps=1, compile=True, audit=False))


def test_compiled_layers_train_as_eager_ones_and_are_eager_afterwards(tiny):
    "train_sft(compile=True) on the CPU: the same per-step losses as eager layers, one graph for every layer (LoRA leaves the first layer's input without grad: it must not get a graph of its own), and the returned model's layers run eagerly (for generation)."
    data, _ = tiny
    losses = {}
    for compile in (False, True):
        model, tok = load_base_model("tiny", device="cpu")
        torch._dynamo.reset(); torch._dynamo.utils.counters.clear()
        cfg = SFTConfig(max_steps=3, batch_size=4, max_length=256, pack_length=512, fast=True, compile=compile, shuffle=False, seed=0, audit=False, lr=1e-3)
        res = train_sft(model, tok, data, "lora", cfg)
        losses[compile] = res.history.series("loss")[1]
        assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == (1 if compile else 0)
        assert all(m._compiled_call_impl is None for m in res.model.modules())
    assert len(losses[True]) == 3 and max(abs(a - b) for a, b in zip(losses[False], losses[True])) < 1e-4, losses


def test_compiled_layers_keep_one_shape_through_validation():
    "Validation rows that do not fill the last batch: it is filled with empty rows, so the compiled layers get no graph for another batch size (which would also make the training graph dynamic); the validation losses are the eager ones."
    src = load_data("people")
    data = {"train": src["train"].select(range(64)), "validation": src["validation"].select(range(10))}  # 3 rows of validation, 2 a batch
    losses = {}
    for compile in (False, True):
        model, tok = load_base_model("tiny", device="cpu")
        torch._dynamo.reset(); torch._dynamo.utils.counters.clear()
        cfg = SFTConfig(max_steps=2, batch_size=4, max_length=256, pack_length=512, fast=True, compile=compile, eval_every=2, seed=0, audit=False)
        losses[compile] = train_sft(model, tok, data, "lora", cfg).history.series("eval_loss")[1]
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == 2  # validation (no grad) and training
    assert len(losses[True]) == 2 and max(abs(a - b) for a, b in zip(losses[False], losses[True])) < 1e-4, losses
