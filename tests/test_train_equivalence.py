"Training equivalences: gradient accumulation and packing change how a batch is computed, not what is learned."
import pytest
import torch

from ft_nb.data.builtin import load_data
from ft_nb.models import load_base_model
from ft_nb.train.sft import SFTConfig, train_sft


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


def test_fast_path_batches_keep_one_shape_through_an_epochs_end(monkeypatch):
    "Five packed rows, two a batch: the third batch of each epoch has one row, filled up with an empty one; the loss stays finite."
    from datasets import Dataset, DatasetDict
    import ft_nb.train.sft as sft
    shapes = []
    class Recording(sft.RowCollator):
        def __call__(self, rows):
            batch = super().__call__(rows)
            shapes.append((len(rows), tuple(batch["input_ids"].shape), int(batch["real_tokens"])))
            return batch
    monkeypatch.setattr(sft, "RowCollator", Recording)
    g = torch.Generator().manual_seed(0)
    ids = [torch.randint(3, 100, (100,), generator=g).tolist() for _ in range(5)]  # one example a row of 128
    data = DatasetDict({"train": Dataset.from_dict({"input_ids": ids, "labels": ids})})
    model, tok = load_base_model("tiny", device="cpu")
    result = train_sft(model, tok, data, "lora", SFTConfig(max_steps=6, lr=1e-3, warmup_ratio=0, seed=0, fast=True, pack_length=128, pack_rows=2, max_length=128))
    train = [s for s in shapes if s[0] in (1, 2)]
    assert [n for n, _, _ in train] == [2, 2, 1, 2, 2, 1]  # two epochs of 2 + 2 + 1 rows
    assert {shape for _, shape, _ in train} == {(2, 128)} and [r for n, _, r in train if n == 1] == [100, 100]
    assert all(torch.isfinite(torch.tensor(l)) for l in result.history.series("loss")[1])


def test_varlen_attention_trains_like_sdpa(data, monkeypatch):
    "The fast path with ft_nb_varlen (on the CPU, its reference forward and hand-written backward) takes the same steps as with SDPA's packed mask."
    import dataclasses
    import ft_nb.train.sft as sft
    from ft_nb.train.fast import VARLEN_CALLS
    sdpa, loss_sdpa = _train(data, batch_size=4, packing=True, fast=True, pack_length=512)
    real = sft.fast_parts
    monkeypatch.setattr(sft, "fast_parts", lambda model, **kw: dataclasses.replace(real(model, **kw), attention="ft_nb_varlen"))
    VARLEN_CALLS.clear()
    varlen, loss_varlen = _train(data, batch_size=4, packing=True, fast=True, pack_length=512)
    assert VARLEN_CALLS["varlen"] > 0 and VARLEN_CALLS["backward"] > 0 and VARLEN_CALLS["sdpa"] == 0
    assert VARLEN_CALLS["known"] > 0 and VARLEN_CALLS["bounds"] == 0  # every batch's example bounds came from the collator
    _assert_same(sdpa, varlen, atol=5e-5)
    assert loss_sdpa == pytest.approx(loss_varlen, rel=1e-4)


def test_uncast_adapter_inputs_change_nothing_under_bf16_autocast(data, monkeypatch):
    "Under bf16 autocast (forced on the CPU) the fast path's LoRA layers take their inputs without PEFT's copies: the same weights and losses as with them, bit for bit; the copies are back afterwards."
    import contextlib
    import ft_nb.train.sft as sft
    monkeypatch.setattr(sft, "_bf16", lambda model: True)  # the Trainer's bf16=True: CPU autocast
    real, seen = sft.uncast_adapter_inputs, []
    @contextlib.contextmanager
    def spy(model, on=True):
        with real(model, on) as layers:
            seen.append(layers); assert all(not m.cast_input_dtype_enabled for m in layers)
            yield layers
    monkeypatch.setattr(sft, "uncast_adapter_inputs", spy)
    uncast, loss_uncast = _train(data, batch_size=4, packing=True, fast=True, pack_length=512)
    assert len(seen) == 1 and len(seen[0]) == 7 * 2 and all(m.cast_input_dtype_enabled for m in seen[0])  # tiny: 2 decoder layers of 7 adapted linears
    monkeypatch.setattr(sft, "uncast_adapter_inputs", lambda model, on=True: contextlib.nullcontext([]))
    cast, loss_cast = _train(data, batch_size=4, packing=True, fast=True, pack_length=512)
    _assert_same(uncast, cast, atol=1e-30)
    assert loss_uncast == loss_cast


def test_chunked_loss_trains_like_the_full_logits(data, monkeypatch):
    "The fast path's loss from the hidden states, a chunk of labelled tokens at a time (train.fast.chunked_loss), takes the same steps as the model's own loss on the full logits."
    import dataclasses
    import ft_nb.train.fast as fast
    import ft_nb.train.sft as sft
    calls, real_loss = [], fast.linear_cross_entropy
    monkeypatch.setattr(fast, "linear_cross_entropy", lambda *a, **kw: calls.append(1) or real_loss(*a, **kw))
    chunked, loss_chunked = _train(data, batch_size=4, packing=True, fast=True, pack_length=512)
    assert len(calls) == 3  # one a training step
    real = sft.fast_parts
    monkeypatch.setattr(sft, "fast_parts", lambda model, **kw: dataclasses.replace(real(model, **kw), loss="full"))
    full, loss_full = _train(data, batch_size=4, packing=True, fast=True, pack_length=512)
    assert len(calls) == 3  # the model's own loss
    _assert_same(chunked, full, atol=5e-5)
    assert loss_chunked == pytest.approx(loss_full, rel=1e-4)
