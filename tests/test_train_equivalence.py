"Training equivalences: gradient accumulation and packing change how a batch is computed, not what is learned."
import pytest
import torch

from ft_nb.data.load import load_data
from ft_nb.models import load_base_model
from ft_nb.train.config import SFTConfig
from ft_nb.train.sft import train_sft


@pytest.fixture(scope="module")
def data():
    d = load_data("people")
    return {"train": d["train"].select(range(32)), "validation": d["validation"].select(range(4))}


def _train(data, **kw):
    model, tok = load_base_model("tiny", device="cpu")
    cfg = SFTConfig(max_steps=3, lr=1e-2, warmup_ratio=0, eval_every=100, seed=0, **kw)
    result = train_sft(model, tok, data, "lora", cfg, {"dropout": 0.0})
    weights = {k: v.detach().clone() for k, v in result.model.named_parameters() if v.requires_grad}
    return weights, result.history.series("loss")[1]


def _assert_same(a, b, atol):
    assert a.keys() == b.keys()
    moved = max((a[k] - b[k]).abs().max().item() for k in a)
    assert moved < atol, f"weights differ by {moved}"


def test_accumulation_gives_the_same_update(data):
    one, loss_one = _train(data, batch_size=8, grad_accum=1)
    four, loss_four = _train(data, batch_size=2, grad_accum=4)
    _assert_same(one, four, atol=1e-5)
    assert loss_one == pytest.approx(loss_four, rel=1e-4)  # the logged loss is per supervised token in both


def test_packing_gives_the_same_update(data):
    padded, loss_padded = _train(data, batch_size=4)
    packed, loss_packed = _train(data, batch_size=4, packing=True)
    # Adam divides each gradient entry by its running RMS, so rounding differences in tiny entries
    # (masked SDPA on one packed row against padded rows) come out at step size: 5e-5 is 0.5% of a step at lr 1e-2
    _assert_same(padded, packed, atol=5e-5)
    assert loss_padded == pytest.approx(loss_packed, rel=1e-4)


def test_training_moves_the_weights(data):
    a, _ = _train(data, batch_size=4)
    assert max(v.abs().max().item() for k, v in a.items() if "lora_B" in k) > 1e-4  # B starts at zero


def _hook(model, record):
    "Record, at every training forward, what `record(module, kwargs)` returns; returns the hook's handle."
    return model.register_forward_pre_hook(lambda m, args, kw: record.append((m.training, kw)) if m.training else None, with_kwargs=True)


def test_fast_path_reads_epochs_of_rows_in_full_batches():
    "Five packed rows, two a batch, six steps: the run reads the rows epoch after epoch (the later ones in a seeded order) in batches of one shape, every one full, and the loss stays finite."
    from datasets import Dataset, DatasetDict
    from ft_nb.train.plan import plan_training
    from ft_nb.train.prepare import prepare_data
    from ft_nb.train.sft import run_training
    g = torch.Generator().manual_seed(0)
    ids = [torch.randint(3, 100, (100,), generator=g).tolist() for _ in range(5)]  # one example a row of 128
    data = DatasetDict({"train": Dataset.from_dict({"input_ids": ids, "labels": ids})})
    model, tok = load_base_model("tiny", device="cpu")
    cfg = SFTConfig(max_steps=6, lr=1e-3, warmup_ratio=0, seed=0, fast=True, pack_length=128, pack_rows=2, max_length=128)
    ready = prepare_data(data, tok, cfg, device="cpu")
    firsts = [r[0] for r in ready.train["input_ids"]]
    assert ready.units == 5 and len(firsts) == 12 and sorted(firsts[:5]) == sorted(firsts[5:10]) == sorted(x[0] for x in ids)  # two whole epochs, then two rows
    plan, model = plan_training(model, ready, "lora", cfg)
    seen = []
    _hook(model, seen)
    result = run_training(model, plan, ready, tok)
    shapes = [(tuple(kw["input_ids"].shape), int((kw["labels"] != -100).any(-1).sum())) for _, kw in seen]
    assert shapes == [((2, 128), 2)] * 6  # every batch two real rows, also across the epochs' ends
    assert all(torch.isfinite(torch.tensor(l)) for l in result.history.series("loss")[1])


def test_varlen_attention_trains_like_sdpa(data):
    "The fast path with ft_nb_varlen (on the CPU, its reference forward and hand-written backward) takes the same steps as with SDPA's packed mask; the batches carry the examples' bounds."
    from ft_nb.train.fast import VARLEN_CALLS
    sdpa, loss_sdpa = _train(data, batch_size=4, packing=True, fast=True, pack_length=512)
    VARLEN_CALLS.clear()
    varlen, loss_varlen = _train(data, batch_size=4, packing=True, fast=True, pack_length=512, attention="ft_nb_varlen")
    assert VARLEN_CALLS["varlen"] > 0 and VARLEN_CALLS["backward"] > 0 and VARLEN_CALLS["sdpa"] == 0
    assert VARLEN_CALLS["bounds"] == 0  # every batch's example bounds came from the collator
    _assert_same(sdpa, varlen, atol=5e-5)
    assert loss_sdpa == pytest.approx(loss_varlen, rel=1e-4)


def _fast_run(data, plan_change=None, **kw):
    "`_train` through the three steps, the plan changed by `plan_change` (a function of the plan) before the run."
    from ft_nb.train.plan import plan_training
    from ft_nb.train.prepare import prepare_data
    from ft_nb.train.sft import run_training
    model, tok = load_base_model("tiny", device="cpu")
    cfg = SFTConfig(max_steps=3, lr=1e-2, warmup_ratio=0, eval_every=100, seed=0, batch_size=4, packing=True, fast=True, pack_length=512, **kw)
    ready = prepare_data(data, tok, cfg, base=model)
    plan, model = plan_training(model, ready, "lora", cfg, {"dropout": 0.0})
    plan = plan_change(plan) if plan_change else plan
    casts = []  # whether a LoRA layer casts its input, at each training forward
    lora = next(m for m in model.modules() if type(m).__name__ == "Linear" and hasattr(m, "lora_A"))
    lora.register_forward_pre_hook(lambda m, args: casts.append(m.cast_input_dtype_enabled) if m.training else None)
    result = run_training(model, plan, ready, tok)
    weights = {k: v.detach().clone() for k, v in result.model.named_parameters() if v.requires_grad}
    return weights, result.history.series("loss")[1], casts, lora


def test_uncast_adapter_inputs_change_nothing_under_bf16_autocast(data):
    "Under bf16 autocast (forced on the CPU, a plan field) the fast path's LoRA layers take their inputs without PEFT's copies: the same weights and losses as with them, bit for bit; the copies are back afterwards."
    import dataclasses
    bf16 = lambda plan: dataclasses.replace(plan, bf16=True)  # the Trainer's bf16=True: CPU autocast
    uncast, loss_uncast, casts, lora = _fast_run(data, bf16)
    assert casts and not any(casts) and lora.cast_input_dtype_enabled  # no copies while training; back afterwards
    cast, loss_cast, casts, _ = _fast_run(data, lambda plan: dataclasses.replace(bf16(plan), fast=dataclasses.replace(plan.fast, uncast_adapters=False)))
    assert casts and all(casts)
    _assert_same(uncast, cast, atol=1e-30)
    assert loss_uncast == loss_cast


def test_chunked_loss_trains_like_the_full_logits(data, monkeypatch):
    "The fast path's loss from the hidden states, a chunk of labelled tokens at a time (train.fast.chunked_loss), takes the same steps as the model's own loss on the full logits."
    import ft_nb.train.fast as fast
    calls, real_loss = [], fast.linear_cross_entropy
    monkeypatch.setattr(fast, "linear_cross_entropy", lambda *a, **kw: calls.append(kw.get("positions")) or real_loss(*a, **kw))  # a spy
    chunked, loss_chunked = _train(data, batch_size=4, packing=True, fast=True, pack_length=512)
    assert len(calls) == 3 and all(p is not None for p in calls)  # one a training step, the labelled positions carried by the batch
    full, loss_full = _train(data, batch_size=4, packing=True, fast=True, pack_length=512, fast_loss="full")
    assert len(calls) == 3  # the model's own loss
    _assert_same(chunked, full, atol=5e-5)
    assert loss_chunked == pytest.approx(loss_full, rel=1e-4)
