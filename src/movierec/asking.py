"""The recommender that asks: the question whose answer tells the most about what to show.

A question offers two options (two movies, two tags, before or after a year, a genre or
not) and always "neither" and "skip". Every answer becomes session input the models
already understand (:class:`Change`: liked / disliked movies and tags, a year or genre
filter), so any served model works with it and the visitor can undo each part.

The question is chosen, not scripted, from the model's own ranking for the session now:
the top ``M`` movies get the weights the list gives them (NDCG's ``1 / log2(rank + 2)``,
normalised: the "top-N distribution"), each candidate question splits that mass between
its answers (a movie option takes the movies nearer to it than to the other option in the
tag-profile space, a tag option the movies carrying that tag, the era options the movies
on either side of the year, the genre options the genre's movies and the rest), and the
chosen question is the one with the largest expected information about where the
visitor's movie is: the entropy, in bits, of its answers' probabilities (a perfectly
even two-way split is worth 1 bit). Candidate movies come from the top of the list and,
for the second option, from a region of the profile space well apart from the first
(cosine similarity at most :data:`MAX_PAIR_SIMILARITY`), so the two are genuinely
different.

Everything here works on indices and arrays; :class:`movierec.serving.Engine` maps ids
and sessions, and ``benchmarks/bench_asking.py`` simulates visitors who answer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import scipy.sparse as sp

from movierec.ranking import Catalog

__all__ = [
    "ANSWERS",
    "Change",
    "Question",
    "QuestionSpace",
    "apply_answer",
    "candidate_questions",
    "choose_question",
    "list_weights",
    "question_space",
    "seen_share",
]

Kind = Literal["movies", "tags", "era", "genre"]
#: what a visitor may answer: an option's position, or one of these
ANSWERS = ("neither", "skip")
#: movies considered (the top of the current list)
TOP_M = 200
#: first options tried for a movie question (from the top of the list)
FIRST_OPTIONS = 4
#: second options tried (from the top ``SECOND_POOL`` of the list)
SECOND_POOL = 60
#: two movies offered together are at most this similar (cosine of their tag profiles)
MAX_PAIR_SIMILARITY = 0.35
#: a movie nearer to neither option than this goes to "neither"
MIN_SIMILARITY = 0.05
#: tags tried for a tag question (by mass in the top of the list)
TAG_POOL = 30
#: the share of answers assumed to be "neither" whatever the question (not a split of the list)
NEITHER_PRIOR = 0.1


@dataclass(frozen=True)
class Question:
    """One question: ``options`` are movie indices (``movies``), tag indices (``tags``), the
    year that splits the list (``era``: before it, from it on) or a genre name (``genre``:
    yes, no). ``masses``: the model's probability of each option, then of "neither";
    ``gain``: the expected information of the answer, in bits."""

    kind: Kind
    options: tuple[int | str, ...]
    masses: tuple[float, ...]
    gain: float


@dataclass(frozen=True)
class Change:
    """What an answer does to the session (ids are indices; filters ``None`` = unchanged)."""

    like_movies: tuple[int, ...] = ()
    dislike_movies: tuple[int, ...] = ()
    like_tags: tuple[int, ...] = ()
    dislike_tags: tuple[int, ...] = ()
    year_min: int | None = None
    year_max: int | None = None
    genres: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return self == Change()


@dataclass
class QuestionSpace:
    """What questions are built from, aligned with a model's movie and tag indices.

    ``profiles``: ``(n_movies, n_tags)`` CSR, rows L2-normalised (tag profiles: where two
    movies sit apart); ``tags``: the same matrix unnormalised (weights > 0 = the movie
    carries the tag); ``years`` ``(n_movies,)`` (0 unknown); ``genres`` ``(n_movies, g)``
    bool with ``genre_names``; ``genre_tags`` ``(g,)``: each genre's tag index, -1 if the
    tags have none (such tags are left to the genre question, and a genre whose tag the
    session holds is not asked about).
    """

    tags: sp.csr_matrix
    years: np.ndarray
    genres: np.ndarray
    genre_names: tuple[str, ...]
    genre_tags: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    #: ``(n_movies,)`` the chance a visitor has seen each movie, 0-1 (None: everyone has
    #: seen everything); a movie question is worth its information times the chance the
    #: visitor can answer it (has seen one of the two)
    seen: np.ndarray | None = None
    profiles: sp.csr_matrix = field(init=False)

    def __post_init__(self) -> None:
        t = sp.csr_matrix(self.tags, dtype=np.float32)
        norms = np.sqrt(np.asarray(t.multiply(t).sum(axis=1)).ravel())
        inv = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
        self.profiles = sp.csr_matrix(sp.diags(inv.astype(np.float32)) @ t)
        self.carries = sp.csr_matrix((t > 0).astype(np.float32))


def seen_share(rating_counts: np.ndarray, n_people: int) -> np.ndarray:
    """The chance a visitor has seen each movie: the share of the ``n_people`` in the data
    who rated it (clipped to 1). A floor under what visitors know (many have seen more
    than they rated), which is what the simulated visitors of ``bench_asking.py`` can answer."""
    if n_people <= 0:
        raise ValueError(f"n_people must be positive, got {n_people}")
    return np.minimum(np.asarray(rating_counts, np.float64) / float(n_people), 1.0)


def question_space(
    catalog: Catalog, movie_tags: sp.spmatrix, tag_index: Mapping[str, int], n_people: int
) -> QuestionSpace:
    """The :class:`QuestionSpace` of a catalogue (:class:`movierec.ranking.Catalog`), its
    ``(n_movies, n_tags)`` movie x tag weights, tag name -> index, and the number of people
    behind its rating counts: each genre's tag is the tag of its lower-case name, if any."""
    return QuestionSpace(
        tags=sp.csr_matrix(movie_tags),
        years=catalog.year,
        genres=catalog.genres,
        genre_names=catalog.genre_names,
        genre_tags=np.asarray([tag_index.get(g.lower(), -1) for g in catalog.genre_names], np.int64),
        seen=seen_share(catalog.rating_count, max(int(n_people), 1)),
    )


def list_weights(n: int) -> np.ndarray:
    """The top-N distribution of a ranked list of ``n``: ``1 / log2(rank + 2)``, summing to 1."""
    w = 1.0 / np.log2(np.arange(n, dtype=np.float64) + 2.0)
    return w / w.sum() if n else w


def _entropy(masses: np.ndarray) -> np.ndarray:
    """Entropy in bits along the last axis of probability vectors (zeros allowed)."""
    m = np.clip(masses, 0.0, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(m > 0, -m * np.log2(np.where(m > 0, m, 1.0)), 0.0)
    return terms.sum(axis=-1)


def _with_neither(option_masses: np.ndarray, rest: np.ndarray) -> np.ndarray:
    """Answer probabilities ``(..., k + 1)``: the options' shares of the list, shrunk so that
    "neither" has at least :data:`NEITHER_PRIOR`, and "neither" last."""
    opts = option_masses * (1.0 - NEITHER_PRIOR)
    return np.concatenate([opts, (rest * (1.0 - NEITHER_PRIOR) + NEITHER_PRIOR)[..., None]], axis=-1)


def candidate_questions(
    top: np.ndarray,
    space: QuestionSpace,
    *,
    held_movies: Sequence[int] = (),
    held_tags: Sequence[int] = (),
    asked: Sequence[Question] = (),
    year_filtered: bool = False,
    genre_filtered: bool = False,
) -> list[Question]:
    """The best question of each kind for the ranked list ``top`` (movie indices, best
    first), with its answers' probabilities and expected information. Questions already
    ``asked`` (same kind and options) are not offered again; movies and tags the session
    holds are never options; no era or genre question while such a filter is set."""
    top = np.asarray(top, np.int64)[:TOP_M]
    out: list[Question] = []
    if top.size < 2:
        return out
    w = list_weights(top.size)
    seen = {(q.kind, frozenset(q.options)) for q in asked}
    held_m = set(int(m) for m in held_movies)
    held_t = set(int(t) for t in held_tags) | {int(t) for t in space.genre_tags if t >= 0}

    # two movies: the first from the top, the second from well apart
    first = np.asarray(
        [m for m in top[: FIRST_OPTIONS * 3] if int(m) not in held_m][:FIRST_OPTIONS], np.int64
    )
    second = np.asarray([m for m in top[:SECOND_POOL] if int(m) not in held_m], np.int64)
    prof = space.profiles
    if first.size and second.size > 1:
        sim_first = (prof[first] @ prof[top].T).toarray()  # (F, M)
        sim_second = (prof[second] @ prof[top].T).toarray()  # (S, M)
        pair_sim = (prof[first] @ prof[second].T).toarray()  # (F, S)
        a, b = sim_first[:, None, :], sim_second[None, :, :]
        to_a = (a > b) & (a >= MIN_SIMILARITY)
        to_b = (b >= a) & (b >= MIN_SIMILARITY)
        ma, mb = to_a @ w, to_b @ w  # (F, S)
        probs = _with_neither(np.stack([ma, mb], axis=-1), 1.0 - ma - mb)
        gain = _entropy(probs)
        if space.seen is not None:  # worth nothing to a visitor who has seen neither movie
            can = 1.0 - (1.0 - space.seen[first])[:, None] * (1.0 - space.seen[second])[None, :]
            gain = gain * can
            probs = np.concatenate(
                [probs[..., :2] * can[..., None], (1.0 - can * (1.0 - probs[..., 2]))[..., None]], axis=-1
            )
        ok = (pair_sim <= MAX_PAIR_SIMILARITY) & (first[:, None] != second[None, :])
        for i, j in np.argwhere(ok):
            if ("movies", frozenset((int(first[i]), int(second[j])))) in seen:
                ok[i, j] = False
        if ok.any():
            gain_ok = np.where(ok, gain, -np.inf)
            i, j = np.unravel_index(int(np.argmax(gain_ok)), gain_ok.shape)
            out.append(
                Question(
                    "movies", (int(first[i]), int(second[j])), tuple(probs[i, j].tolist()), float(gain[i, j])
                )
            )

    # two tags that split the list
    carries = space.carries[top]  # (M, T)
    mass = np.asarray(carries.T @ w).ravel()
    order = [int(t) for t in np.argsort(-mass, kind="stable") if mass[t] > 0 and int(t) not in held_t][
        :TAG_POOL
    ]
    if len(order) >= 2:
        c = carries[:, order].toarray().astype(bool)  # (M, P)
        both = (c[:, :, None] & c[:, None, :]).astype(np.float64)
        both_mass = np.einsum("m,mij->ij", w, both)
        single = np.asarray(c.T.astype(np.float64) @ w)
        mx = single[:, None] - both_mass / 2  # a movie with both tags counts half to each
        my = single[None, :] - both_mass / 2
        probs = _with_neither(
            np.stack([mx, my], axis=-1), np.clip(1.0 - single[:, None] - single[None, :] + both_mass, 0, 1)
        )
        gain = _entropy(probs)
        np.fill_diagonal(gain, -np.inf)
        for i in range(len(order)):
            for j in range(len(order)):
                if ("tags", frozenset((order[i], order[j]))) in seen:
                    gain[i, j] = -np.inf
        if np.isfinite(gain).any():
            i, j = np.unravel_index(int(np.argmax(gain)), gain.shape)
            out.append(Question("tags", (order[i], order[j]), tuple(probs[i, j].tolist()), float(gain[i, j])))

    # before or after a year: the list's weighted median, to five years
    years = space.years[top]
    known = years > 0
    if not year_filtered and known.sum() >= 2:
        order_y = np.argsort(years[known], kind="stable")
        cum = np.cumsum(w[known][order_y])
        median = int(years[known][order_y][int(np.searchsorted(cum, cum[-1] / 2))])
        split = max(5 * round(median / 5), int(years[known].min()) + 1)
        before, after = float(w[known & (years < split)].sum()), float(w[known & (years >= split)].sum())
        if before > 0 and after > 0 and ("era", frozenset((split,))) not in seen:
            probs = _with_neither(np.array([before, after]), np.array(1.0 - before - after))
            out.append(Question("era", (split,), tuple(probs.tolist()), float(_entropy(probs))))

    # a genre, yes or no: the one nearest half of the list
    if not genre_filtered and space.genres.shape[1]:
        g_mass = space.genres[top].T.astype(np.float64) @ w
        said = {int(t) for t in held_tags}
        tag_of = (
            space.genre_tags
            if space.genre_tags.size == len(space.genre_names)
            else np.full(len(space.genre_names), -1)
        )
        cand = [
            g for g in np.argsort(np.abs(g_mass - 0.5), kind="stable")
            if 1e-9 < g_mass[g] < 1 - 1e-9 and ("genre", frozenset((space.genre_names[g],))) not in seen
            and int(tag_of[g]) not in said
        ]  # fmt: skip
        if cand:
            g = int(cand[0])
            probs = _with_neither(np.array([g_mass[g], 1.0 - g_mass[g]]), np.array(0.0))
            out.append(
                Question("genre", (space.genre_names[g],), tuple(probs.tolist()), float(_entropy(probs)))
            )
    return out


def choose_question(questions: Sequence[Question], rng: np.random.Generator | None = None) -> Question | None:
    """The question with the largest expected information (with ``rng``: one at random, the
    baseline the choice is measured against); ``None`` if there is none."""
    if not questions:
        return None
    if rng is not None:
        return questions[int(rng.integers(len(questions)))]
    return max(questions, key=lambda q: q.gain)


def apply_answer(question: Question, answer: int | str, *, genre_tag: int | None = None) -> Change:
    """What ``answer`` (an option's position, ``"neither"`` or ``"skip"``) does to the session.

    * two movies: the chosen one is liked; "neither": nothing (most often the visitor has
      seen neither, which says nothing against them; the simulated visitors of
      ``bench_asking.py`` found their movies less often when it disliked both);
    * two tags: the chosen one is liked; "neither" dislikes both;
    * era (options: before the year, from the year on): a year filter; "neither": nothing;
    * genre (options: yes, no): yes likes the genre's tag and no dislikes it (``genre_tag``,
      when the model knows one: it steers without hiding the rest; measured on validation
      visitors, a genre filter hid held-out likes), else yes filters on the genre;
      "neither": nothing;
    * "skip": nothing, whatever the question.
    """
    if answer == "skip":
        return Change()
    n_options = 2
    if answer != "neither" and not (isinstance(answer, int) and 0 <= answer < n_options):
        raise ValueError(f"an answer is an option's position (0 or 1), 'neither' or 'skip'; got {answer!r}")
    k = question.kind
    if k == "movies":
        ids = tuple(int(o) for o in question.options)
        return Change() if answer == "neither" else Change(like_movies=(ids[int(answer)],))
    if k == "tags":
        tags = tuple(int(o) for o in question.options)
        return Change(dislike_tags=tags) if answer == "neither" else Change(like_tags=(tags[int(answer)],))
    if answer == "neither":
        return Change()
    if k == "era":
        year = int(question.options[0])
        return Change(year_max=year - 1) if answer == 0 else Change(year_min=year)
    if k == "genre":
        if genre_tag is not None:  # a liked / disliked tag steers without hiding the rest
            return Change(like_tags=(genre_tag,)) if answer == 0 else Change(dislike_tags=(genre_tag,))
        return Change(genres=(str(question.options[0]),)) if answer == 0 else Change()
    raise ValueError(f"unknown question kind {k!r}")
