"""The interactive session recommender: a sequence network over liked movies and tags.

A session (or a user's history) is an ordered list of steps. Each step is a
movie with feedback (like / seen / dislike); a special *start* step opens
every sequence, so a session holding only tags is a start step carrying them.
The input vector of a step is

    movie embedding + mean(tag embeddings of the movie's tags) + feedback embedding
    [+ mean(chosen-tag embeddings of the chosen tags), last step only]

where the *chosen tags* stand for "tags of the movie I
want next": in training a random subset of the next liked movie's tags (in a
share ``tag_prob`` of the examples), when serving the session's liked tags.

Two encoders read the steps: :class:`SequenceLSTM` (2-layer LSTM) and
:class:`SequenceAttention` (SASRec-style causal transformer with learned
recency positions). The last output feeds two heads: a full softmax over all
movies (next liked movie) and a softmax over tags (the next movie's tags).
Disliked movies in the input are pushed down by an unlikelihood term
``-log(1 - p(disliked))``. Training alone does not push down the movies *like*
a disliked one (in MovieLens the co-watched movies of a low-rated movie are
still likely next), so the scores carry a structural, Rocchio-style term: each
movie's logit loses ``dislike_push * agg_d relu(cos(e_j, e_d))`` over the
query's disliked movies ``d``, in the model's own embedding space (see
:meth:`SequenceNet.dislike_penalty`).

Training examples are ``(user, cut position)`` pairs: every liked rating of a
user is a target once per epoch, with the (at most ``max_len - 1``) ratings
before it as input, so short prefixes are trained as much as long ones.
"""

from movierec.models.sequence.config import SequenceConfig
from movierec.models.sequence.net import SequenceNet
from movierec.models.sequence.recommender import (
    REASON_PREFIX,
    SequenceAttention,
    SequenceLSTM,
    parse_reason,
)

__all__ = [
    "REASON_PREFIX",
    "SequenceAttention",
    "SequenceConfig",
    "SequenceLSTM",
    "SequenceNet",
    "parse_reason",
]
