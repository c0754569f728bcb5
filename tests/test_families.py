"Every model family of the table through every method, on tiny random models (CPU): train a few steps, save, reload onto a fresh copy of the base (same logits), and merge where the method merges."
import pytest
import torch
from datasets import DatasetDict

from ft_nb.data.load import load_data
from ft_nb.families import FAMILIES, tiny_family_folder
from ft_nb.methods.core import get_method, list_methods, load_trained, save_trained
from ft_nb.models import load_base_model
from ft_nb.train.config import SFTConfig
from ft_nb.train.sft import train_sft


@pytest.fixture(scope="module")
def small():
    d = load_data("people")
    return DatasetDict({"train": d["train"].select(range(32)), "validation": d["validation"].select(range(8))})


def _trains_and_reloads(family: str, method: str, small, tmp_path):
    folder = tiny_family_folder(family, tmp_path / family)
    base, tok = load_base_model(f"random:{folder}", device="cpu")
    cfg = SFTConfig(**{"max_steps": 4, "eval_every": 4, "batch_size": 8, "seed": 0, **get_method(method).test})
    result = train_sft(base, tok, small, method, cfg)
    losses = result.history.series("loss")[1]
    assert all(l == l for l in losses) and len(losses) == 4, losses  # four steps, no NaN
    x = tok(["Ada Lovelace, 36, lives in London.", "import os"], return_tensors="pt", padding=True)
    with torch.no_grad():
        out = result.model(**x).logits
        saved = save_trained(result.model, tmp_path / "saved", method)
        again = load_trained(load_base_model(f"random:{folder}", device="cpu")[0], saved).eval()
        assert (again(**x).logits - out).abs().max().item() < 1e-4
        if hasattr(again, "merge_and_unload") and method in ("lora", "ia3"):  # the adapter folded into the weights computes the same
            assert (again.merge_and_unload()(**x).logits - out).abs().max().item() < 1e-3


def test_ia3_and_lora_train_and_reload_on_fused_projections(small, tmp_path):
    for method in ("lora", "ia3"): _trains_and_reloads("phi3", method, small, tmp_path / method)  # Phi-3: one qkv_proj, one gate_up_proj


@pytest.mark.slow
@pytest.mark.parametrize("family", [f for f in FAMILIES if f != "phi3"])
def test_lora_and_ia3_train_and_reload_on_every_family(family, small, tmp_path):
    for method in ("lora", "ia3"): _trains_and_reloads(family, method, small, tmp_path / method)


@pytest.mark.slow
@pytest.mark.parametrize("method", [m for m in list_methods() if m not in ("lora", "ia3")])
@pytest.mark.parametrize("family", FAMILIES)
def test_every_method_trains_and_reloads_on_every_family(family, method, small, tmp_path):
    if (family, method) == ("qwen2", "qlora"):  # found by this matrix, not fixed yet: Qwen 2's biased q/k/v projections in 4 bits
        pytest.xfail("bitsandbytes' 4-bit CPU matmul with a bias: 'a view of a leaf Variable that requires grad is being used in an in-place operation'")
    _trains_and_reloads(family, method, small, tmp_path)
