"""Grid selection on degenerate data: a clear error instead of a silent choice (the REAL fixture, one response
made extreme)."""

from __future__ import annotations

import pytest
from fixture_fold import FixtureFold

MUTATION = {"views": ["mutation"]}


@pytest.fixture(scope="module")
def fold():
    return FixtureFold(["mutation"], 100)


def test_a_non_finite_validation_error_is_an_error_not_a_silent_choice(fold):
    """SYNTHETIC: one response of 1e308 made every candidate's validation error infinite, the first candidate
    was kept and predictions reached 6e306 without a word."""
    from drp.models.selection import fit_best

    train = fold.train.copy()
    train.loc[0, "response"] = 1e308
    spec = {"class": "ridge", "params": MUTATION, "grid": {"tissue": [False, True]}}
    with pytest.raises(ValueError, match=r"ridge candidate .*validation mean squared error is (inf|nan) \(largest "
                                         r"\|response\| 1e\+308\).*check the data set's responses"):
        fit_best(spec, lambda index: fold.training_data(train=train, seed=0), seed=0)
