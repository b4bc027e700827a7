"""The metric a model validates on is handed to ``fit`` (issue "One way through the house"):
models import no evaluation code; NCF's early stopping and the sequence models' early stopping
call the metric they are given, on full rankings at its cut-off."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp

from movierec.data.splits import per_user_holdout
from movierec.data.synthetic import checkerboard, markov_sequences
from movierec.evaluation.metrics import ValidationMetric
from movierec.models.registry import create


class Probe:
    """A metric that records what it was asked and says the score ``values`` in turn."""

    def __init__(self, k: int, values: list[float]) -> None:
        self.k, self.label = k, f"probe@{k}"
        self.values = values
        self.calls: list[tuple[tuple[int, ...], tuple[int, ...]]] = []

    def __call__(self, ranked: np.ndarray, relevant: Any) -> float:
        assert sp.issparse(relevant)
        self.calls.append((np.shape(ranked), relevant.shape))
        return self.values[min(len(self.calls), len(self.values)) - 1]


@pytest.mark.parametrize(
    ("name", "make_data", "settings"),
    [
        ("gmf", lambda rng: checkerboard(40, 30, 0.3, rng), {"epochs": 6, "patience": 2, "threads": 1}),
        (
            "sequence-attn",
            lambda rng: markov_sequences(30, 25, 12, rng),
            {"epochs": 6, "patience": 2, "threads": 1, "transition_prior": False},
        ),
    ],
)
def test_fit_validates_with_the_metric_it_is_given(
    name: str, make_data: Any, settings: dict[str, Any]
) -> None:
    rng = np.random.default_rng(0)
    data = make_data(rng)
    train, valid = per_user_holdout(data, 0.2, rng)
    # the best epoch is the first; two worse ones after it stop training (patience 2)
    probe = Probe(k=7, values=[0.9, 0.1, 0.1, 0.1])
    model = create(name, **settings).fit(train, np.random.default_rng(1), valid=valid, metric=probe)  # type: ignore[arg-type]
    assert len(probe.calls) == 3, probe.calls  # stopped by the probe's figures, not its own
    (rows, k), (rows_rel, n_movies) = probe.calls[0]
    assert k == 7 and rows == rows_rel and n_movies == data.n_movies
    assert [row["valid"] for row in model.fit_info.history] == [0.9, 0.1, 0.1]
    assert model.valid_metric is probe


def test_the_default_is_ndcg_at_10() -> None:
    model = create("pop")
    assert model.valid_metric == ValidationMetric("ndcg", 10)


def test_validation_metric_scores_and_refuses_nonsense() -> None:
    ranked = np.array([[1, 2, 3], [0, 1, 2], [3, 2, 1]])
    relevant = sp.csr_matrix(np.array([[0, 0, 1, 0], [0, 0, 0, 1], [0, 0, 0, 0]]))
    assert ValidationMetric("ndcg", 3)(ranked, relevant) == pytest.approx(0.5 / np.log2(3))  # row 3: none
    assert ValidationMetric("hr", 3)(ranked, relevant) == pytest.approx(0.5)
    assert ValidationMetric("recall", 1)(ranked, relevant) == 0.0
    assert ValidationMetric("ndcg", 10)(ranked, relevant) == ValidationMetric("ndcg", 3)(ranked, relevant)
    assert np.isnan(ValidationMetric()(ranked, sp.csr_matrix((3, 4))))
    assert ValidationMetric("mrr", 5).label == "mrr@5"
    with pytest.raises(ValueError, match="unknown validation metric"):
        ValidationMetric("auc")
    with pytest.raises(ValueError, match="cut-off"):
        ValidationMetric("ndcg", 0)
