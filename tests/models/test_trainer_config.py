"""Training settings live in one nested ``TrainConfig`` per neural model (``config.train``),
set by their leaf names as before; none is dropped on the way to the training loop."""

from __future__ import annotations

from movierec.models.ncf import NeuMF
from movierec.models.rating_mlp import RatingRegressor
from movierec.models.sequence import SequenceAttention
from movierec.models.trainer import TrainConfig


def test_the_models_hand_their_settings_over() -> None:
    seq = SequenceAttention(epochs=2, lr_decay=0.7, clip_norm=1.0, checkpoint_dir="ckpt", resume=True)
    train = seq.config.train
    assert (train.epochs, train.lr_decay, train.clip_norm, train.checkpoint_dir, train.resume) == (
        2,
        0.7,
        1.0,
        "ckpt",
        True,
    )
    assert train.batch_size == 64  # what is not set keeps the model's own default
    mlp = RatingRegressor(epochs=4, weight_decay=0.2)._train_config(patience=1)
    assert (mlp.epochs, mlp.weight_decay, mlp.patience, mlp.batch_size) == (4, 0.2, 1, 1024)
    assert NeuMF(**{"train.lr": 1e-2}).config.train.lr == 1e-2


def test_each_model_keeps_its_own_training_defaults() -> None:
    assert SequenceAttention().config.train == TrainConfig(batch_size=64, patience=4, lr_decay=0.9)
    assert RatingRegressor().config.train.epochs == 5
    assert NeuMF().config.train.batch_size == 4096
