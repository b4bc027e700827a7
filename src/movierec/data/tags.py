"""Tags of a data set: where each came from (:data:`TAG_SOURCES`), the movie x tag matrix built
from user tag applications, genres, TMDB keywords and the tag genome, and that matrix less
removed applications."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import scipy.sparse as sp

from movierec.data.titles import normalise_tags
from movierec.data.validation import numeric
from movierec.data.vocab import Vocabulary

# the messages come from Dataset.build and keep its logger
log = logging.getLogger("movierec.data.dataset")

#: Bit flags naming where a tag in the vocabulary came from.
TAG_SOURCES: dict[str, int] = {"user": 1, "genre": 2, "tmdb": 4, "genome": 8}


def tag_matrix(
    movie_vocab: Vocabulary,
    info: pd.DataFrame,
    tags: pd.DataFrame | None,
    metadata: pd.DataFrame | None,
    genome_scores: pd.DataFrame | None,
    genome_tags: pd.DataFrame | None,
    genome_threshold: float,
    repairs: dict[str, int],
) -> tuple[Vocabulary, sp.csr_matrix, np.ndarray, pd.DataFrame]:
    """The tags of :meth:`~movierec.data.dataset.Dataset.build`: the tag vocabulary, the movie x
    tag matrix, the source bits per tag and the user tag applications (``events``).

    ``info`` is the movie table (its ``genres`` become tags); tag rows dropped for an unknown
    movie or an empty tag are counted in ``repairs``.
    """
    n_movies = len(movie_vocab)
    tag_frames: list[pd.DataFrame] = []  # columns movie (index), tag (str), weight, source
    events = pd.DataFrame({"user_id": [], "movie": [], "tag": [], "timestamp": []})
    if tags is not None and len(tags):
        t_movie_ids = numeric(tags, "movieId", np.int64, "tags")
        t_users = numeric(tags, "userId", np.int64, "tags")
        t_time = (
            numeric(tags, "timestamp", np.int64, "tags")
            if "timestamp" in tags
            else np.zeros(len(tags), np.int64)
        )
        t_movie = movie_vocab.index(t_movie_ids, missing="mask")
        t_name = normalise_tags(tags["tag"].fillna(""))
        ok = (t_movie >= 0) & (t_name.str.len() > 0).to_numpy() & tags["tag"].notna().to_numpy()
        if (~ok).any():
            repairs["tag_rows_dropped"] = int((~ok).sum())
            log.warning("tags: dropped %d row(s) with an unknown movie id or an empty tag", int((~ok).sum()))
        events = pd.DataFrame(
            {
                "user_id": t_users[ok],
                "movie": t_movie[ok],
                "tag": t_name[ok].to_numpy(),
                "timestamp": t_time[ok],
            }
        )
        tag_frames.append(
            events.groupby(["movie", "tag"], sort=False)
            .size()
            .rename("weight")
            .reset_index()
            .assign(source="user")
        )
    g = info[["genres"]].explode("genres").dropna()
    if len(g):
        tag_frames.append(
            pd.DataFrame(
                {
                    "movie": g.index.to_numpy(),
                    "tag": normalise_tags(g["genres"]).to_numpy(),
                    "weight": 1.0,
                    "source": "genre",
                }
            )
        )
    if metadata is not None and "keywords" in metadata and len(metadata):
        kw = metadata[["movieId", "keywords"]].explode("keywords").dropna()
        kidx = movie_vocab.index(kw["movieId"].to_numpy(np.int64), missing="mask")
        kw = kw.loc[kidx >= 0]
        if len(kw):
            tag_frames.append(
                pd.DataFrame(
                    {
                        "movie": kidx[kidx >= 0],
                        "tag": normalise_tags(kw["keywords"]).to_numpy(),
                        "weight": 1.0,
                        "source": "tmdb",
                    }
                )
            )
    if genome_scores is not None and genome_tags is not None and len(genome_scores):
        gs = genome_scores.loc[pd.to_numeric(genome_scores["relevance"], errors="coerce") >= genome_threshold]
        names = pd.Series(genome_tags["tag"].to_numpy(), index=genome_tags["tagId"].to_numpy())
        gidx = movie_vocab.index(gs["movieId"].to_numpy(np.int64), missing="mask")
        gs = gs.loc[gidx >= 0]
        if len(gs):
            tag_frames.append(
                pd.DataFrame(
                    {
                        "movie": gidx[gidx >= 0],
                        "tag": normalise_tags(names.reindex(gs["tagId"].to_numpy()).fillna("")).to_numpy(),
                        "weight": gs["relevance"].to_numpy(np.float32),
                        "source": "genome",
                    }
                )
            )
    all_tags = (
        pd.concat(tag_frames, ignore_index=True)
        if tag_frames
        else pd.DataFrame({"movie": [], "tag": [], "weight": [], "source": []})
    )
    all_tags = all_tags.loc[all_tags["tag"].str.len() > 0] if len(all_tags) else all_tags
    tag_vocab = (
        Vocabulary.from_values(all_tags["tag"].astype(str), "tag")
        if len(all_tags)
        else Vocabulary(np.array([], dtype=object), "tag")
    )
    tag_idx = tag_vocab.index(all_tags["tag"].to_numpy(object)) if len(all_tags) else np.array([], np.int64)
    movie_tags = sp.csr_matrix(
        (all_tags["weight"].to_numpy(np.float32), (all_tags["movie"].to_numpy(np.int64), tag_idx)),
        shape=(n_movies, len(tag_vocab)),
        dtype=np.float32,
    )
    movie_tags.sum_duplicates()
    tag_source = np.zeros(len(tag_vocab), np.int8)
    for source, bit in TAG_SOURCES.items():
        sel = tag_idx[(all_tags["source"] == source).to_numpy()] if len(all_tags) else tag_idx
        tag_source[np.unique(sel)] |= bit
    if len(events):
        events = events.assign(tag=tag_vocab.index(events["tag"].to_numpy(object)))
    events = events.astype({"user_id": np.int64, "movie": np.int64, "tag": np.int64, "timestamp": np.int64})
    return tag_vocab, movie_tags, tag_source, events


def minus_applications(movie_tags: sp.csr_matrix, removed: pd.DataFrame) -> sp.csr_matrix:
    """``movie_tags`` ``(n_movies, n_tags)`` float32 less weight 1 per user tag application in
    ``removed`` (columns ``movie``, ``tag``: indices), as
    :meth:`~movierec.data.dataset.Dataset.build` added them.

    Entries left at zero, or at float32 rounding residue of their old value, are dropped.
    """
    tags = movie_tags.copy()
    tags.sum_duplicates()  # canonical: one entry per (movie, tag), columns sorted within rows
    n_tags = tags.shape[1]
    key = np.repeat(np.arange(tags.shape[0], dtype=np.int64), np.diff(tags.indptr)) * n_tags + tags.indices
    pairs, counts = np.unique(
        removed["movie"].to_numpy(np.int64) * n_tags + removed["tag"].to_numpy(np.int64), return_counts=True
    )
    pos = np.searchsorted(key, pairs)
    if np.any(pos >= key.size) or np.any(key[np.minimum(pos, key.size - 1)] != pairs):
        raise ValueError("tag_events holds applications that movie_tags does not count")
    old = tags.data[pos].astype(np.float64)
    new = old - counts
    new[np.abs(new) <= 4 * np.finfo(np.float32).eps * old] = 0.0  # exact counts leave 0, not residue
    tags.data[pos] = new.astype(np.float32)
    tags.eliminate_zeros()
    return tags
