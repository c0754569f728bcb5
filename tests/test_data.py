"Supervision: only assistant tokens are trained on, across the whole built-in dataset."
from ft_nb.data.load import load_data
from ft_nb.data.tokenize import IGNORE_INDEX, tokenize_chat
from ft_nb.models import load_tokenizer


def test_prompt_tokens_are_masked_and_answers_are_not():
    tok = load_tokenizer("tiny")
    rows = [r for split in load_data("people").values() for r in split]
    assert len(rows) >= 200
    for r in rows:
        ex = tokenize_chat(r["messages"], tok)
        prompt = tok.apply_chat_template(r["messages"][:-1], add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"]
        assert ex["input_ids"][:len(prompt)] == list(prompt)
        assert all(l == IGNORE_INDEX for l in ex["labels"][:len(prompt)]), "a prompt token is trained on"
        trained = tok.decode([l for l in ex["labels"] if l != IGNORE_INDEX])
        assert trained == r["messages"][-1]["content"] + "<|im_end|>"
