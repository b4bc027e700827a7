"""TrainConfig.of: a model config's training settings reach the training loop, none dropped."""

from __future__ import annotations

import dataclasses

from movierec.models.rating_mlp import RatingRegressor
from movierec.models.sequence import SequenceConfig
from movierec.models.trainer import TrainConfig


@dataclasses.dataclass
class _Config:
    epochs: int = 3
    lr_decay: float = 0.5
    checkpoint_dir: str = "ckpt"
    resume: bool = True
    hidden: int = 8  # not a training setting: left out


def test_every_shared_field_is_copied_and_overrides_win() -> None:
    tc = TrainConfig.of(_Config(), patience=7)
    assert (tc.epochs, tc.lr_decay, tc.checkpoint_dir, tc.resume, tc.patience) == (3, 0.5, "ckpt", True, 7)
    assert tc.batch_size == TrainConfig().batch_size  # what the config does not set keeps its default


def test_the_models_hand_their_settings_over() -> None:
    seq = SequenceConfig(epochs=2, lr_decay=0.7, clip_norm=1.0).train_config()
    assert (seq.epochs, seq.lr_decay, seq.clip_norm) == (2, 0.7, 1.0)
    mlp = RatingRegressor(epochs=4, weight_decay=0.2)._train_config(patience=1)
    assert (mlp.epochs, mlp.weight_decay, mlp.patience) == (4, 0.2, 1)
