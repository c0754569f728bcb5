"The package's metrics load and compute with no network at all, and agree with the libraries that define them."
import socket

import numpy as np
import pytest
import sacrebleu
from rouge_score import rouge_scorer

from ft_nb.eval.metrics import METRICS, load_metric

PREDS = ["the cat sat on the mat", "Paris is the capital.", "no idea"]
REFS = ["the cat is on the mat", "The capital is Paris", "the answer is 42"]


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*a, **kw): raise OSError("network access attempted")
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


TEXT_METRICS = sorted(n for n in METRICS.names() if not getattr(METRICS.get(n), "needs_model", False))


def test_model_metrics_are_the_expected_ones():
    assert sorted(set(METRICS.names()) - set(TEXT_METRICS)) == ["multiple_choice", "perplexity"]


@pytest.mark.parametrize("name", TEXT_METRICS)
def test_every_metric_computes_offline(name, no_network):
    out = load_metric(name).compute(predictions=PREDS, references=REFS)
    assert out and all(isinstance(v, float) for v in out.values())


def test_values_equal_the_libraries():
    rouge = load_metric("rouge").compute(predictions=PREDS, references=REFS)
    ref = [rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"]).score(r, p) for p, r in zip(PREDS, REFS)]
    for k in ("rouge1", "rouge2", "rougeL"): assert rouge[k] == pytest.approx(np.mean([s[k].fmeasure for s in ref]))
    assert load_metric("bleu").compute(predictions=PREDS, references=REFS)["bleu"] == pytest.approx(sacrebleu.corpus_bleu(PREDS, [REFS]).score)
    assert load_metric("chrf").compute(predictions=PREDS, references=REFS)["chrf"] == pytest.approx(sacrebleu.corpus_chrf(PREDS, [REFS]).score)


def test_model_metrics_compute_offline(no_network):
    from ft_nb.models import load_base_model
    model, tok = load_base_model("tiny", device="cpu")
    ppl = load_metric("perplexity").compute(predictions=PREDS, model=model, tokenizer=tok)
    assert ppl["perplexity"] > 1 and ppl["mean_perplexity"] > 1
    mc = load_metric("multiple_choice").compute(prompts=["2 + 2 =", "Sky colour:"], options=[[" 4", " 5"], [" blue", " green", " red"]],
                                                references=[0, 0], model=model, tokenizer=tok)
    assert set(mc) == {"accuracy", "accuracy_norm"} and all(0 <= v <= 1 for v in mc.values())
