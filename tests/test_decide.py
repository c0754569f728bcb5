"The fine-tune-or-RAG rules of thumb: each of the six scenarios gives its approach, with its reasons."
import pytest

from ft_nb.decide import RULES, recommend


@pytest.mark.parametrize("answers, approach", [
    ({"new_knowledge": True}, "fine-tuning"),
    ({"changing_facts": True}, "RAG"),
    ({"sensitive_data": True}, "fine-tuning"),
    ({"behaviour_change": True}, "fine-tuning"),
    ({"factual_qa": True}, "RAG"),
    ({"new_knowledge": True, "factual_qa": True}, "hybrid (fine-tune + RAG)"),
])
def test_six_scenarios(answers, approach):
    rec = recommend(**answers)
    assert rec.approach == approach
    assert len(rec.reasons) == len(rec.considerations) >= len(answers)
    assert all(any(r.scenario in reason for r in RULES if r.question in answers) for reason in rec.reasons[:len(answers)])


def test_nothing_applies_and_unknown_questions():
    assert recommend().approach == "prompting first" and recommend().reasons == []
    with pytest.raises(ValueError, match="unknown question"): recommend(cheap=True)
