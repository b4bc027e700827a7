"""The recommender that asks, measured: simulated new visitors who click, or answer questions.

On the ``session`` protocol's split (users 70 / 10 / 20, seeded; the model is fitted on the
training users), each test visitor starts with an empty session and interacts until one of
their held-out likes (their likes after the first 10, as in ``clicks@10``) is in the top 10
of the list, at most ``--max-steps`` times. Three ways to interact, on the same visitors:

* ``click``: today's simulation (:func:`movierec.evaluation.session.clicks_to_relevant`'s
  rule): Like the best-ranked of their first 10 likes in the top 10, else a random one of
  them (as if found by search);
* ``random``: a question of the same kinds (two movies, two tags, an era, a genre) chosen
  at random among the candidates;
* ``chosen``: the question with the largest expected information (:mod:`movierec.asking`).

The simulated visitor answers from their own ratings (held-out ones included: their taste):
two movies: the one they rated higher, if at or above their like threshold, else "neither";
two tags / an era: the side whose movies they rated higher on average (at least 2 rated),
if that average is at least their own mean, else "neither"; a genre: yes if their average
on it (2+ rated) is at least their mean, no if below, "neither" if they rated too few.
Choosing a held-out like as a movie option counts as finding it.

Prints, per way: interactions until found (median; ``max + 1`` = not found), the share found
within 3 / 5 / 10, NDCG@24 of the list after 3 and after 5 interactions (held-out likes as the
truth), paired differences (chosen minus random, chosen minus click; bootstrap 95% CIs), and
the time to choose one question (one visitor, scoring included), p50 / p99.

    .venv/bin/python benchmarks/bench_asking.py --model sequence-attn --seeds 0,1,2
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from movierec.asking import (
    ANSWERS,
    TOP_M,
    Change,
    Question,
    QuestionSpace,
    apply_answer,
    candidate_questions,
    choose_question,
    question_space,
)
from movierec.data.dataset import Dataset
from movierec.data.load import load_dataset
from movierec.evaluation.protocols import feedback_thresholds, get_protocol
from movierec.models.base import Query
from movierec.models.registry import create
from movierec.ranking import Catalog, Filters, recommend
from movierec.settings import Settings

WAYS = ("click", "random", "chosen")
#: questions asked and answers given, per way: (kind, "option" | "neither" | "skip") -> count
ANSWERED: dict[str, Counter[tuple[str, str]]] = {w: Counter() for w in WAYS}


@dataclass
class Visitor:
    own: np.ndarray  # their first 10 likes (what a clicking visitor clicks)
    targets: np.ndarray  # the rest of their likes
    ratings: dict[int, float]  # every rating they gave (their taste, for answering)
    like: float
    mean: float
    liked: list[int] = field(default_factory=list)
    disliked: list[int] = field(default_factory=list)
    liked_tags: list[int] = field(default_factory=list)
    disliked_tags: list[int] = field(default_factory=list)
    year_min: int | None = None
    year_max: int | None = None
    genres: tuple[str, ...] = ()
    asked: list[Question] = field(default_factory=list)

    def query(self) -> Query:
        return Query.session(self.liked, self.disliked, self.liked_tags, self.disliked_tags)

    def filters(self) -> Filters:
        return Filters(year_min=self.year_min, year_max=self.year_max, genres=self.genres)

    def apply(self, change: Change) -> None:
        for m in change.like_movies:
            if m not in self.liked:
                self.liked.append(int(m))
        self.disliked += [int(m) for m in change.dislike_movies if m not in self.disliked]
        self.liked_tags += [int(t) for t in change.like_tags if t not in self.liked_tags]
        self.disliked_tags += [int(t) for t in change.dislike_tags if t not in self.disliked_tags]
        self.year_min = change.year_min if change.year_min is not None else self.year_min
        self.year_max = change.year_max if change.year_max is not None else self.year_max
        self.genres = change.genres or self.genres


def respond(q: Question, v: Visitor, space: QuestionSpace) -> int | str:
    """The simulated visitor's answer (see the module docstring)."""
    if q.kind == "movies":
        rated = [(v.ratings[int(m)], i) for i, m in enumerate(q.options) if int(m) in v.ratings]
        best = max(rated, default=None)
        return best[1] if best is not None and best[0] >= v.like else "neither"
    rated_idx = np.fromiter(v.ratings.keys(), np.int64)
    rated_val = np.fromiter(v.ratings.values(), np.float64)

    def mean_of(mask: np.ndarray) -> float | None:
        return float(rated_val[mask].mean()) if mask.sum() >= 2 else None

    if q.kind == "tags":
        carries = space.carries[rated_idx][:, [int(t) for t in q.options]].toarray() > 0
        sides = [mean_of(carries[:, i]) for i in range(2)]
    elif q.kind == "era":
        years = space.years[rated_idx]
        sides = [mean_of((years > 0) & (years < int(q.options[0]))), mean_of(years >= int(q.options[0]))]
    else:
        g = space.genre_names.index(str(q.options[0]))
        m = mean_of(space.genres[rated_idx, g])
        return "neither" if m is None else (0 if m >= v.mean else 1)
    known = [(s, i) for i, s in enumerate(sides) if s is not None]
    best = max(known, default=None)
    return best[1] if best is not None and best[0] >= v.mean else "neither"


def ndcg(top: np.ndarray, targets: np.ndarray, k: int = 24) -> float:
    hits = np.isin(top[:k], targets)
    dcg = float((hits / np.log2(np.arange(2, hits.size + 2))).sum())
    ideal = float((1.0 / np.log2(np.arange(2, min(k, targets.size) + 2))).sum())
    return dcg / ideal if ideal else 0.0


def simulate(
    way: str,
    model: Any,
    visitors: list[Visitor],
    space: QuestionSpace,
    catalog: Catalog,
    rng: np.random.Generator,
    max_steps: int,
    genre_tag: dict[str, int],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per visitor: interactions until found, NDCG@24 after 3 and after 5 interactions."""
    n = len(visitors)
    found = np.full(n, max_steps + 1, np.int64)
    at = {3: np.zeros(n), 5: np.zeros(n)}
    active = list(range(n))
    for step in range(max_steps + 1):
        if not active:
            break
        vs = [visitors[i] for i in active]
        recs = recommend(
            model, [v.query() for v in vs], TOP_M, catalog=catalog, filters=[v.filters() for v in vs]
        )
        still = []
        for i, v, rec in zip(active, vs, recs, strict=True):
            top = rec.movies
            if step in at:
                at[step][i] = ndcg(top, v.targets)
            if np.isin(top[:10], v.targets).any():
                found[i] = step
                for k in at:  # found: they stop, and their list stays as it is
                    if k > step:
                        at[k][i] = ndcg(top, v.targets)
                continue
            if step == max_steps:
                continue
            if way == "click":
                shown = top[:10][np.isin(top[:10], v.own)]
                left = np.setdiff1d(v.own, v.liked)
                if shown.size:
                    v.liked.append(int(shown[0]))
                elif left.size:
                    v.liked.append(int(rng.choice(left)))
            else:
                qs = candidate_questions(
                    top, space, held_movies=v.liked + v.disliked, held_tags=v.liked_tags + v.disliked_tags,
                    asked=v.asked, year_filtered=v.year_min is not None or v.year_max is not None,
                    genre_filtered=bool(v.genres),
                )  # fmt: skip
                q = choose_question(qs, rng if way == "random" else None)
                if q is not None:
                    v.asked.append(q)
                    a = respond(q, v, space)
                    ANSWERED[way][(q.kind, a if a in ANSWERS else "option")] += 1
                    tag = genre_tag.get(str(q.options[0]).lower()) if q.kind == "genre" else None
                    v.apply(apply_answer(q, a, genre_tag=tag))
                    if q.kind == "movies" and a != "neither" and int(q.options[int(a)]) in v.targets:
                        found[i] = step + 1  # they found it among the options; they stop here
                        for k in at:
                            if k > step:
                                at[k][i] = ndcg(top, v.targets)
                        continue
            still.append(i)
        active = still
    return found, at[3], at[5]


def paired(a: np.ndarray, b: np.ndarray, rng: np.random.Generator, reps: int = 2000) -> str:
    d = a.astype(np.float64) - b.astype(np.float64)
    boot = d[rng.integers(0, d.size, (reps, d.size))].mean(axis=1)
    lo, hi = np.percentile(boot, [2.5, 97.5])
    return f"{d.mean():+.3f} [{lo:+.3f}, {hi:+.3f}]"


def visitors_of(prepared: Any, protocol: Any, data: Dataset) -> list[Visitor]:
    like, _ = feedback_thresholds(data)
    part = prepared.test
    out = []
    for u, likes in zip(prepared.users, protocol.likes(prepared), strict=True):
        rows = slice(part.user_ptr[u], part.user_ptr[u + 1])
        movies, ratings = part.movie[rows].astype(np.int64), part.rating[rows].astype(np.float64)
        taste = dict(zip(movies.tolist(), ratings.tolist(), strict=True))
        v = Visitor(likes[:10], likes[10:], taste, like, float(ratings.mean()))
        v.liked = [int(likes[0])]  # every visitor starts having liked one movie (the page's k = 1)
        out.append(v)
    return out


def space_of(train: Dataset) -> tuple[QuestionSpace, dict[str, int], Catalog]:
    """The questions' space of the training data, genre name -> its tag, and its catalogue."""
    catalog = Catalog.from_dataset(train)
    names = {str(t): i for i, t in enumerate(train.tags.ids.tolist())} if train.tags is not None else {}
    genre_tag = {g.lower(): names[g.lower()] for g in catalog.genre_names if g.lower() in names}
    return question_space(catalog, train.movie_tags, names, train.n_users), genre_tag, catalog


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="ml-latest-small")
    p.add_argument("--model", default="sequence-attn")
    p.add_argument("--seeds", default="0")
    p.add_argument("--max-steps", type=int, default=10)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--timing-calls", type=int, default=200)
    p.add_argument("--home", type=Path, default=None, help="MOVIEREC_HOME (default: the settings')")
    p.add_argument(
        "--validation",
        action="store_true",
        help="simulate the validation users (for tuning; test users untouched)",
    )
    args = p.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    settings = Settings(home=args.home) if args.home else Settings()
    data = load_dataset(args.dataset, settings)
    protocol = get_protocol("session")
    rows: dict[str, list[np.ndarray]] = {f"{w}:{m}": [] for w in WAYS for m in ("found", "n3", "n5")}
    times: list[float] = []
    for seed in (int(s) for s in args.seeds.split(",")):
        rng = np.random.default_rng(seed)
        prepared = protocol.prepare(data, rng)
        if args.validation:
            prepared = protocol.validation(prepared)
        overrides = {"threads": args.threads} if args.model.startswith("sequence") else {}
        start = time.perf_counter()
        model = create(args.model, **overrides).fit(prepared.train, np.random.default_rng(seed))
        fit_s = time.perf_counter() - start
        space, genre_tag, catalog = space_of(prepared.train)
        print(
            f"seed {seed}: {len(prepared.users)} test visitors, {args.model} fitted in {fit_s:.0f} s",
            flush=True,
        )
        for way in WAYS:
            found, n3, n5 = simulate(
                way, model, visitors_of(prepared, protocol, data), space, catalog,
                np.random.default_rng([seed, WAYS.index(way)]), args.max_steps, genre_tag,
            )  # fmt: skip
            rows[f"{way}:found"].append(found)
            rows[f"{way}:n3"].append(n3)
            rows[f"{way}:n5"].append(n5)
        # the time to choose one question: one visitor's session after 3 likes, scoring included
        for v in visitors_of(prepared, protocol, data)[: args.timing_calls]:
            v.liked = [int(m) for m in v.own[:3]]
            t0 = time.perf_counter()
            top = recommend(model, [v.query()], TOP_M, catalog=catalog)[0].movies
            choose_question(candidate_questions(top, space, held_movies=v.liked))
            times.append(time.perf_counter() - t0)

    m = args.max_steps
    cat = {k: np.concatenate(v) for k, v in rows.items()}
    print(f"\n{args.dataset}, {args.model}, seeds {args.seeds}: {cat['click:found'].size} visitors; "
          f"interactions until a held-out like is in the top 10 ({m + 1} = not within {m})")  # fmt: skip
    # the visitors the first list did not already serve (the same ones for every way: step 0 is
    # the same list) are the ones a way of asking can help
    helped = cat["click:found"] > 0
    print(
        f"{'way':8} {'median':>6} {'<=3':>6} {'<=5':>6} {'<=10':>6} {'NDCG@24 after 3':>16} {'after 5':>8}"
        f"   {'of the ' + str(int(helped.sum())) + ' not served at once: median':>40} {'<=5':>6}"
    )
    for w in WAYS:
        f = cat[f"{w}:found"]
        print(
            f"{w:8} {np.median(f):6.1f} {np.mean(f <= 3):6.3f} {np.mean(f <= 5):6.3f} {np.mean(f <= 10):6.3f} "
            f"{cat[f'{w}:n3'].mean():16.4f} {cat[f'{w}:n5'].mean():8.4f}"
            f"   {np.median(f[helped]):40.1f} {np.mean(f[helped] <= 5):6.3f}"
        )
    boot = np.random.default_rng(0)
    for other in ("random", "click"):
        print(
            f"chosen minus {other}: interactions {paired(cat['chosen:found'], cat[f'{other}:found'], boot)}; "
            f"NDCG@24 after 3 {paired(cat['chosen:n3'], cat[f'{other}:n3'], boot)}, "
            f"after 5 {paired(cat['chosen:n5'], cat[f'{other}:n5'], boot)}"
        )
    for w in ("random", "chosen"):
        print(f"{w} questions (kind, answer): {dict(sorted(ANSWERED[w].items()))}")
    t = np.asarray(times) * 1000
    print(f"choosing one question (scoring the session included): p50 {np.percentile(t, 50):.1f} ms, "
          f"p99 {np.percentile(t, 99):.1f} ms over {t.size} calls")  # fmt: skip


if __name__ == "__main__":
    main()
