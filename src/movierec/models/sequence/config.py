"""Settings of the sequence recommenders, and the structural feedback terms they imply."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

from movierec.models.trainer import TrainConfig


@dataclass
class PushConfig:
    """The structural feedback terms of the sequence models' scores (see :class:`Push`)."""

    #: structural dislike push, in logit units (0: off): movie ``j``'s logit loses
    #: ``dislike_push * agg_d relu(cos(e_j, e_d))`` over the query's most recent ``max_len - 1``
    #: disliked movies ``d``, so a dislike lowers that movie and the movies like it; applied in
    #: ``score`` (evaluation and serving), not in ``query_vectors`` / ``item_vectors``. On
    #: ml-latest-small's next-item validation item (benchmarks/tune_feedback.py, seed 0, the
    #: default sequence-attn) a dislike of the top recommendation moves its 10 item-kNN
    #: neighbours' median rank 103 -> 97 without the push (they rise), 127 -> 134 at 2,
    #: 149 -> 177 at 4.5; NDCG@10 of the validation item 0.056 without, 0.051-0.053 with
    dislike_push: float = 4.5
    #: embedding whose cosine the push uses: ``"input"`` (the input movie embedding) or
    #: ``"head"`` (movie-head weight rows; closer to item-kNN, but pushing there costs far more
    #: next-item NDCG for the same effect on the neighbours)
    dislike_push_space: str = "input"
    #: how several dislikes combine: ``"max"`` (the closest dislike counts) or ``"mean"``
    dislike_push_agg: str = "max"
    #: cosine below which a movie is not pushed at all: the similarity used is
    #: ``relu(cos - floor) / (1 - floor)`` (0: plain ``relu(cos)``; a disliked movie itself stays at 1)
    dislike_push_floor: float = 0.0
    #: disliked tags, in logit units (0: off): a movie carrying one of the query's disliked tags
    #: among its ``tags_per_movie`` heaviest loses this much, in ``score`` and ``dislike_adjustment``
    dislike_tag_push: float = 3.0
    #: liked tags, in logit units (0: off): a movie carrying one of the query's liked tags among its
    #: ``tags_per_movie`` heaviest gains this much (the chosen-tag input alone moves little once
    #: the set term dominates training). Next-item NDCG@10 of the validation item with its 3
    #: heaviest tags given (benchmarks/tune_feedback.py, seed 0): 0 -> 0.053, 1 -> 0.079,
    #: 2 -> 0.093, 3 -> 0.099, 4 -> 0.101 (0.056 without tags)
    liked_tag_pull: float = 3.0
    #: also apply the push while training (on the dislikes in each example's input window), so
    #: the network learns with it in place; ``False``: inference only
    dislike_push_train: bool = False


@dataclass
class PriorConfig:
    """The learned transition prior of the sequence models."""

    #: a learned item-to-item prior inside the network: the movie logits gain
    #: ``softplus(gate(h)) * log1p(transition support)``, the support counted on the training
    #: histories (pairs up to ``transition_window`` apart, from the input's last
    #: ``transition_context`` not-disliked movies, ``transition_decay`` per step back) and the gate
    #: learned from the session's state with the rest of the network, so a session with chosen
    #: tags can lean on it less; a dislike's push also takes support away from the movies it pushes.
    #: Next-item NDCG@10 of every training user's last like (the holdout), sequence-attn: 0.039-0.045
    #: without, 0.069-0.080 with; session NDCG@24 0.01-0.017 lower with it (tune_session.py, seeds 0, 1)
    transition_prior: bool = True
    #: pairs up to this many steps apart are counted (weight 1 / distance)
    transition_window: int = 2
    #: the query's last this many not-disliked movies reach their successors (most recent first)
    transition_context: int = 3
    #: weight of a context movie ``age`` steps before the last: ``decay ** age``
    transition_decay: float = 0.5


@dataclass
class SequenceConfig:
    """Settings of the sequence recommenders (:class:`SequenceLSTM`, :class:`SequenceAttention`)."""

    #: encoder: ``"lstm"`` or ``"attention"`` (each class sets its own default)
    encoder: str = "lstm"
    #: size of movie, tag, feedback and position embeddings
    embed_dim: int = 64
    #: LSTM hidden size / transformer feed-forward size
    hidden_dim: int = 128
    #: LSTM layers / transformer blocks
    n_layers: int = 2
    #: attention heads (transformer only)
    n_heads: int = 2
    #: dropout on inputs, between layers and before the heads
    dropout: float = 0.2
    #: most recent steps fed to the network (the start step included)
    max_len: int = 20
    #: start the movie and tag heads' biases at the log-frequency of their targets
    #: (on ml-latest-small next-item NDCG@10 went from 0.015 to 0.040 at the same budget)
    init_popularity: bool = True
    #: tags per movie used as input and tag-head target (highest weight first)
    tags_per_movie: int = 10
    #: share of training examples whose last step carries some of the target's tags. Validation
    #: (tune_session.py, sequence-attn, seeds 0-2) at 0.3 against 0.7: next-item NDCG@10
    #: +0.0058 / -0.0037 / -0.0020, with the item's tags given +0.0028 / -0.0020 / -0.0029,
    #: session NDCG@24 -0.0013 / +0.0004 / -0.0042; at 0 session -0.009 (seed 0): kept at 0.7
    tag_prob: float = 0.7
    #: each of the target's tags is kept with this probability when tags are given
    tag_keep: float = 0.5
    #: weight of the tag-head loss (cross-entropy against the next movie's tags)
    tag_loss_weight: float = 0.3
    #: weight of the unlikelihood loss on disliked movies of the input
    dislike_weight: float = 0.5
    #: the unlikelihood also covers this many of each disliked movie's nearest item-kNN neighbours
    #: (0: off; see bench_session.py part 2 for what it does on real data)
    dislike_neighbours: int = 0
    #: weight of that neighbour term
    dislike_neighbour_weight: float = 0.5
    #: ratings at or above this are likes
    like_threshold: float = 4.0
    #: ratings at or below this are dislikes
    dislike_threshold: float = 2.0
    #: train on every position of each window at once (SASRec-style causal targets; windows of
    #: ``max_len`` steps overlap by half and each target is trained once per epoch), instead of
    #: one window per target with its loss on the last step. The attention encoder then counts
    #: positions from the window's first step instead of back from its last. Same quality, fewer
    #: encoder passes: sequence-attn's epoch on ml-latest-small costs about a third
    all_positions: bool = True
    #: train only on liked targets (``False``: every rated movie is a target)
    liked_targets_only: bool = True
    #: share of training examples whose input keeps only the liked movies before the target,
    #: as a page session holds them (the rest see the full history with seen and disliked steps);
    #: with all_positions, a share of the users each epoch
    likes_only_share: float = 0.5
    #: weight of the set term: besides the next liked movie, each example predicts the user's
    #: later likes (the next one and up to ``future_window - 1`` after it) as one multinomial
    #: target, the task of the ``session`` protocol (0: next movie only). Validation users of the
    #: ``session`` protocol (benchmarks/tune_session.py, seed 0, sequence-attn with the prior),
    #: NDCG@24 over k: 1 -> 0.226, 3 -> 0.256, 10 -> 0.285, 20 -> 0.285
    future_weight: float = 10.0
    #: likes from the target on that the set term covers
    future_window: int = 100
    #: hold out each training user's last liked movie for early stopping when ``fit`` gets no
    #: validation set that names training users (a user-disjoint one, say); ``False``: no holdout
    holdout: bool = True
    #: ``score`` and ``score_tags`` run the movie and tag heads with int8 weights (dynamic
    #: quantisation; training, ``query_vectors`` / ``item_vectors`` and the dislike push stay
    #: float32, so retrieval reproduces the float scores, not these). The heads are
    #: memory-bound and most of a recommendation's CPU: a batch of 4 sessions over 9.7k movies
    #: + 14k tags spends 0.3 ms in them instead of 2.4 ms. Off here (evaluations score in
    #: float32); the web service turns it on (``ServiceSettings.int8_heads``). Next-item
    #: NDCG@10 on ml-latest-small: 0.0355 against 0.0362 in float32 (paired -0.0007, 95% CI
    #: [-0.0019, +0.0001]; ``bench_session.py --int8-compare``)
    int8_heads: bool = False
    #: training: the sequence models' own defaults (the learning rate: session validation
    #: NDCG@24, seed 1: 2e-3 with patience 2 stopped after 4 epochs at 0.271; 1e-3 with
    #: patience 4 ran 10 at 0.289). ``batch_size`` counts windows (with all_positions)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(batch_size=64, patience=4, lr_decay=0.9))
    #: the structural feedback terms: disliked movies and tags push down, liked tags pull up
    push: PushConfig = field(default_factory=lambda: PushConfig())
    #: the learned transition prior inside the network
    prior: PriorConfig = field(default_factory=lambda: PriorConfig())

    #: settings that were removed (a saved ``config.json`` may still hold them): the
    #: validation cut-off is now the metric handed to ``fit``
    retired: ClassVar[frozenset[str]] = frozenset({"valid_k"})


@dataclass(frozen=True)
class Push:
    """Settings of the structural feedback terms: the dislike push (see
    :meth:`SequenceNet.dislike_penalty`), the disliked-tag push and the liked-tag pull
    (:meth:`SequenceNet.tag_hits`)."""

    strength: float = 0.0
    space: str = "input"
    agg: str = "max"
    floor: float = 0.0
    tags: float = 0.0
    pull: float = 0.0

    @classmethod
    def of(cls, config: PushConfig) -> Push:
        if config.dislike_push_space not in ("head", "input"):
            raise ValueError(
                f"SequenceConfig.push.dislike_push_space must be 'head' or 'input', got {config.dislike_push_space!r}"
            )
        if config.dislike_push_agg not in ("max", "mean", "linear"):
            raise ValueError(
                f"SequenceConfig.push.dislike_push_agg must be 'max', 'mean' or 'linear', got {config.dislike_push_agg!r}"
            )
        if not 0.0 <= config.dislike_push_floor < 1.0:
            raise ValueError(
                f"SequenceConfig.push.dislike_push_floor must be in [0, 1), got {config.dislike_push_floor}"
            )
        if not math.isfinite(config.dislike_push) or config.dislike_push < 0:
            raise ValueError(
                f"SequenceConfig.push.dislike_push must be a finite number >= 0, got {config.dislike_push}"
            )
        for name in ("dislike_tag_push", "liked_tag_pull"):
            value = getattr(config, name)
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"SequenceConfig.push.{name} must be a finite number >= 0, got {value}")
        return cls(
            float(config.dislike_push),
            config.dislike_push_space,
            config.dislike_push_agg,
            float(config.dislike_push_floor),
            float(config.dislike_tag_push),
            float(config.liked_tag_pull),
        )
