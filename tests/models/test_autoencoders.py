"""Mult-VAE and RecVAE under the shared contract, plus known answers of their own."""

from __future__ import annotations

import numpy as np
import pytest

from contract import ModelContract, make_checkerboard
from movierec.data.dataset import Dataset
from movierec.data.synthetic import checkerboard
from movierec.models.autoencoders import MultVAE, RecVAE
from movierec.models.base import Query

FAST = {"hidden": 32, "latent": 8, "batch_size": 8, "threads": 1}


class TestMultVAE(ModelContract):
    make = staticmethod(lambda: MultVAE(**FAST, epochs=40, anneal_steps=50, beta=0.2, patience=0))
    quality = "checkerboard"


class TestRecVAE(ModelContract):
    make = staticmethod(lambda: RecVAE(**FAST, epochs=12, enc_epochs=2, lr=3e-3, patience=0))
    quality = "checkerboard"


def _blocks(rng: np.random.Generator) -> Dataset:
    """Three blocks of 20 users and 30 movies; each user rates half of their own block."""
    return checkerboard(60, 90, 0.5, rng, n_groups=3)


@pytest.mark.parametrize("make", [TestMultVAE.make, TestRecVAE.make], ids=["multvae", "recvae"])
def test_a_session_gets_its_own_block(make) -> None:  # type: ignore[no-untyped-def]
    """A new visitor who likes three movies of one block gets that block's movies first,
    and a dislike of a block's movie pushes that block down."""
    data = _blocks(np.random.default_rng(1))
    model = make().fit(data, np.random.default_rng(0))
    block = np.arange(90) % 3
    for b in range(3):
        liked = np.flatnonzero(block == b)[:3]
        s = model.score([Query.session(liked=liked)])[0]
        s[liked] = -np.inf
        top = np.argsort(-s)[:10]
        assert (block[top] == b).all(), f"block {b}: top-10 blocks {block[top].tolist()}"
    liked = np.flatnonzero(block == 0)[:2]
    plain = model.score([Query.session(liked=liked)])[0]
    disliked = np.flatnonzero(block == 1)[:2]
    pushed = model.score([Query.session(liked=liked, disliked=disliked)])[0]
    others = np.flatnonzero(block == 1)[2:]
    assert (pushed[others] - pushed.mean() < plain[others] - plain.mean()).mean() > 0.8


def test_recvae_prior_follows_the_encoder() -> None:
    """After training, the composite prior's middle part is the encoder of the epoch before
    the last (updated each epoch), not the initial weights."""
    data = make_checkerboard()
    model = RecVAE(**FAST, epochs=3, enc_epochs=1, patience=0).fit(data, np.random.default_rng(0))
    state = model.state()
    init = (
        RecVAE(**FAST, epochs=1, enc_epochs=1, lr=1e-12, patience=0)
        .fit(data, np.random.default_rng(0))
        .state()
    )
    key = "prior_encoder.inp.weight"
    assert not np.allclose(state[key], init[key])
    assert not np.allclose(state[key], state["encoder.inp.weight"])


def test_more_epochs_lower_the_training_loss() -> None:
    data = make_checkerboard()
    model = MultVAE(**FAST, epochs=15, anneal_steps=0, patience=0).fit(data, np.random.default_rng(0))
    losses = [h["loss"] for h in model.fit_info.history]
    assert losses[-1] < losses[0]


def test_bad_settings_are_refused() -> None:
    data = make_checkerboard()
    with pytest.raises(ValueError, match="invalid MultVAE"):
        MultVAE(dropout=1.0).fit(data)
    with pytest.raises(ValueError, match="prior_mix"):
        RecVAE(prior_mix=(0.5, 0.5, 0.0)).fit(data)
