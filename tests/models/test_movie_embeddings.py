"""``Recommender.movie_embeddings`` of every registered model, fitted on the contract's
checkerboard with tiny settings: ``None``, or float32 ``(n_movies, d)`` vectors that are the
model's own (mf's ``q``, ALS's item factors, the sequence net's *input* table, ...), a fresh
copy, the same after save / load, and refused before ``fit``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from contract import TINY, make_checkerboard, tiny
from movierec.data.dataset import Dataset
from movierec.models.artifacts import load_model, save_model
from movierec.models.base import NotFittedError
from movierec.models.registry import MODELS
from movierec.serving import nearest_movies

#: the models with movie vectors of their own, and the size of a vector under TINY
DIMS = {
    "mf": 4,
    "als": 4,
    "mlp-reg": 8,
    "mlp-clf": 8,
    "gmf": 4,
    "mlp": 4,
    "neumf": 4 + 4,  # the GMF table and the MLP table side by side
    "sequence": 8,
    "sequence-attn": 8,
    "content": 16,  # contract.text_encoder's width
    "autorec": 16,
    "sparsefc": 16,
    "multvae": 16,  # the decoder's last layer: its hidden width
    "recvae": 8,  # the decoder is one layer: the latent size
}
#: the models without: popularity, neighbourhoods, EASE, transitions, and the hybrid blend
NONE = {"pop", "itemknn", "userknn", "ease", "transitions", "hybrid"}


@pytest.fixture(scope="module")
def data() -> Dataset:
    return make_checkerboard()


@pytest.mark.parametrize("name", list(MODELS))
def test_none_or_the_models_own_float32_vectors(name: str, data: Dataset, tmp_path: Path) -> None:
    model = tiny(name).fit(data, np.random.default_rng(0))
    emb = model.movie_embeddings()
    assert (emb is None) == (name in NONE), f"{name}: every registered model is listed in DIMS or NONE"
    if emb is None:
        assert name not in DIMS, f"{name} lost its movie embeddings"
        with pytest.raises(ValueError, match=f"{name!r} has no movie embeddings"):
            nearest_movies(model, 0, 5)
        return
    assert isinstance(emb, np.ndarray) and emb.dtype == np.float32 and emb.ndim == 2
    assert emb.shape[0] == data.n_movies and np.isfinite(emb).all()
    if name in DIMS:
        assert emb.shape[1] == DIMS[name]
    emb[:] = 0.0  # a copy: the model keeps its own
    again = model.movie_embeddings()
    assert again is not None and np.abs(again).sum() > 0
    path = save_model(model, tmp_path / name)
    loaded = load_model(path).movie_embeddings()
    assert loaded is not None
    np.testing.assert_array_equal(loaded, again)
    # nearest_movies answers in that space: the first is the best cosine with movie 0
    unit = again / np.maximum(np.linalg.norm(again, axis=1, keepdims=True), 1e-12)
    cos = unit @ unit[0]
    cos[0] = -np.inf
    found = nearest_movies(model, 0, 3)
    assert len(found) == 3 and found[0].score == pytest.approx(cos.max(), abs=1e-5)
    assert model.movies is not None and model.movies.index_one(found[0].movie_id) != 0
    with pytest.raises(NotFittedError):
        tiny(name).movie_embeddings()


def test_mf_embeddings_are_its_q_factors(data: Dataset) -> None:
    model = tiny("mf").fit(data, np.random.default_rng(0))
    np.testing.assert_array_equal(model.movie_embeddings(), model.state()["q"])


def test_als_embeddings_are_its_item_factors(data: Dataset) -> None:
    from movierec.models.als import ALS

    model = tiny("als").fit(data, np.random.default_rng(0))
    assert isinstance(model, ALS)
    np.testing.assert_array_equal(model.movie_embeddings(), model.item_factors)


def test_neural_embeddings_are_the_nets_movie_tables(data: Dataset) -> None:
    from movierec.models.ncf import NeuMF
    from movierec.models.rating_mlp import RatingRegressor
    from movierec.models.sequence import SequenceLSTM

    reg = tiny("mlp-reg").fit(data, np.random.default_rng(0))
    assert isinstance(reg, RatingRegressor)
    np.testing.assert_array_equal(reg.movie_embeddings(), reg.state()["net.movie_emb.weight"])
    neumf = tiny("neumf").fit(data, np.random.default_rng(0))
    assert isinstance(neumf, NeuMF)
    state = neumf.state()
    both = np.hstack([state["net.gmf.movie_emb.weight"], state["net.mlp.movie_emb.weight"]])
    np.testing.assert_array_equal(neumf.movie_embeddings(), both)
    seq = tiny("sequence").fit(data, np.random.default_rng(0))
    assert isinstance(seq, SequenceLSTM)
    # the input table without its start and padding rows, not the output head (item_vectors)
    table = seq.state()["net.movie_emb.weight"]
    assert table.shape[0] == data.n_movies + 2
    np.testing.assert_array_equal(seq.movie_embeddings(), table[: data.n_movies])
    assert seq.item_vectors().shape[1] == TINY["hidden_dim"] + 1  # the head: encoder width + bias


def test_content_embeddings_are_its_unit_text_vectors(data: Dataset) -> None:
    model = tiny("content").fit(data, np.random.default_rng(0))
    emb = model.movie_embeddings()
    assert emb is not None
    np.testing.assert_array_equal(emb, model.state()["movie_emb"])
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
