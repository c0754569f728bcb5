"The embedded model: its safetensors cache is verified and rebuilt when damaged; it answers sensibly."
import shutil

import pytest
import torch

from ft_nb.models import build_embedded_cache, cache_is_valid, chat, embedded_cache_dir, load_base_model


@pytest.fixture(scope="module")
def embedded():
    return load_base_model("embedded", device="cpu")


def test_chat_answers_the_capital_of_france(embedded):
    answer = chat(*embedded, "What is the capital of France?")
    assert "Paris" in answer, answer


def _damaged_copy(tmp_path, damage):
    cache = embedded_cache_dir(tmp_path)
    shutil.copytree(build_embedded_cache(), cache)
    weights = cache / "model.safetensors"
    if damage == "truncated":  # a copy killed half-way
        with open(weights, "r+b") as f: f.truncate(weights.stat().st_size // 2)
    elif damage == "flipped":  # silent corruption of the same size
        with open(weights, "r+b") as f: f.seek(4096); b = f.read(1); f.seek(4096); f.write(bytes([b[0] ^ 0xFF]))
    elif damage == "unmarked":  # the mark is written last: a folder without it was never finished
        (cache / "ft_nb_cache.json").unlink()
    return cache


@pytest.mark.parametrize("damage", ["truncated", "flipped", "unmarked"])
def test_damaged_cache_is_detected(tmp_path, damage):
    assert cache_is_valid(_damaged_copy(tmp_path, "none"))
    assert not cache_is_valid(_damaged_copy(tmp_path / "d", damage))


@pytest.mark.slow
def test_damaged_cache_is_rebuilt_not_loaded(tmp_path):
    cache = _damaged_copy(tmp_path, "truncated")
    rebuilt = build_embedded_cache(tmp_path)  # converts the GGUF again: about 30 s
    assert rebuilt == cache and cache_is_valid(cache)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".") and p.is_dir()], "temporary build folders left behind"


def test_local_folder_loads_safely(tmp_path):
    tiny, tok = load_base_model("tiny", device="cpu")
    tiny.save_pretrained(tmp_path); tok.save_pretrained(tmp_path)
    assert list(tmp_path.glob("*.safetensors")) and not list(tmp_path.glob("*.bin"))
    again, _ = load_base_model(str(tmp_path), device="cpu")
    x = torch.tensor([[1, 2, 3, 4]])
    torch.testing.assert_close(again(x).logits, tiny(x).logits)


@pytest.mark.parametrize("name, says", [("smollm", "Unknown base model 'smollm'"), ("./nowhere", "No model folder at"),
                                        ("settings.ini", "is a file")])
def test_bad_model_names_say_what_is_accepted(name, says):
    with pytest.raises((ValueError, FileNotFoundError, NotADirectoryError), match=says): load_base_model(name)
