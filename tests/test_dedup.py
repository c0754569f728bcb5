"Near-duplicates planted across train and test are found, reported, and removed from training."
import copy

from ft_nb.data.builtin import make_people
from ft_nb.data.dedup import deduplicate


def test_planted_near_duplicates_across_splits_are_found():
    rows = make_people(200, seed=1)
    splits = ["train"] * len(rows)
    planted = []
    for k, i in enumerate(range(0, 50, 10)):  # 5 training rows get a lightly edited copy in test
        dup = copy.deepcopy(rows[i])
        user = dup["messages"][0]
        user["content"] = "Hello there! " + user["content"]  # a near duplicate, not an exact one: two words more
        rows.append(dup); splits.append("test"); planted.append((i, len(rows) - 1))
    keep, report = deduplicate(rows, splits, threshold=0.8)
    cross = [c for c in report["clusters"] if c["splits"] == ["test", "train"]]
    assert len(cross) >= len(planted) and report["cross_split_clusters"] >= len(planted)
    for train_i, test_i in planted:
        assert test_i in keep and train_i not in keep, "the test copy must stay and the training copy go"
    assert all(c["examples"] for c in cross)
