"""Request and response bodies of the HTTP API, with limits on every field."""

from __future__ import annotations

import unicodedata
from typing import Annotated, Any, Literal
from urllib.parse import quote_plus

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StringConstraints,
    model_validator,
)

MAX_LIST = 200
MAX_STR = 200

MovieId = Annotated[StrictInt, Field(ge=1, le=2**62)]
#: characters no tag name holds: controls, format characters (bidi overrides and isolates,
#: zero-width joiners), surrogates, private use, line and paragraph separators
_UNPRINTABLE = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def _printable(text: str) -> str:
    bad = sorted({f"U+{ord(c):04X}" for c in text if unicodedata.category(c) in _UNPRINTABLE})
    if bad:
        raise ValueError(f"a tag name must be printable text; it holds {', '.join(bad[:5])}")
    return text


def _printable_text(text: str | None) -> str | None:
    bad = sorted({f"U+{ord(c):04X}" for c in text or "" if unicodedata.category(c) in _UNPRINTABLE})
    if bad:
        raise ValueError(f"the text must be printable; it holds {', '.join(bad[:5])}")
    return text or None


TagName = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_STR),
    AfterValidator(_printable),
]
Kind = Literal["movie", "tag"]
Feedback = Literal["like", "dislike"]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _check_value(kind: str, value: int | str) -> None:
    if kind == "movie" and not isinstance(value, int):
        raise ValueError("a movie value must be an integer movie id >= 1")
    if kind == "tag" and not isinstance(value, str):
        raise ValueError("a tag value must be a string of 1-200 characters")


class ItemRef(_In):
    """A movie (by MovieLens id) or a tag (by name) in the session."""

    kind: Kind
    value: MovieId | TagName

    @model_validator(mode="after")
    def _value_fits_kind(self) -> ItemRef:
        _check_value(self.kind, self.value)
        return self


class ItemIn(ItemRef):
    """Like or dislike a movie or a tag."""

    feedback: Feedback


class OrderIn(_In):
    """The new order of liked or disliked movies / tags; most important last."""

    kind: Kind
    feedback: Feedback
    ordered: Annotated[list[MovieId | TagName], Field(max_length=MAX_LIST)]

    @model_validator(mode="after")
    def _values_fit_kind(self) -> OrderIn:
        for v in self.ordered:
            _check_value(self.kind, v)
        return self


class FiltersIn(_In):
    """Filters on recommended movies; ``null`` removes a constraint."""

    min_rating: Annotated[float | None, Field(ge=0.0, le=5.0)] = None
    year_min: Annotated[int | None, Field(ge=1800, le=2200)] = None
    year_max: Annotated[int | None, Field(ge=1800, le=2200)] = None
    genres: Annotated[
        list[Annotated[str, StringConstraints(min_length=1, max_length=50)]], Field(max_length=40)
    ] = []
    text: Annotated[
        str | None,
        StringConstraints(strip_whitespace=True, max_length=MAX_STR),
        AfterValidator(_printable_text),
        Field(
            description="The taste in words ('slow-burn dystopia with a detective'): the tags it names "
            "join the liked tags of models that read text (the sequence models; content models embed it)."
        ),
    ] = None

    @model_validator(mode="after")
    def _years_in_order(self) -> FiltersIn:
        if self.year_min is not None and self.year_max is not None and self.year_min > self.year_max:
            raise ValueError(f"year_min ({self.year_min}) must not exceed year_max ({self.year_max})")
        return self


class FavouriteIn(_In):
    movie_id: MovieId


class Movie(BaseModel):
    """A movie card: what the page shows in a grid."""

    movie_id: int
    title: str = ""
    display_title: str = ""
    year: int | None = None
    genres: list[str] = []
    mean_rating: float | None = None
    rating: float | None = Field(
        None,
        description="The mean rating shrunk toward the mean of all ratings by 10 ratings' weight "
        "(what the page shows and the minimum-rating filter uses): two 5-star ratings give about 3.8",
    )
    rating_count: int = 0
    poster_path: str | None = None
    overview: str | None = Field(None, description="What the movie is about (from the metadata), when known.")
    score: float | None = None
    reason: str | None = None


class MovieDetail(Movie):
    """The movie view: a card plus overview, runtime, tags and outside links."""

    runtime: float | None = None
    release_date: str | None = None
    imdb_id: int | None = None
    tmdb_id: int | None = None
    tags: list[str] = []
    imdb_url: str | None = None
    tmdb_url: str | None = None
    trailer_url: str = ""
    stills: list[str] = Field(
        default=[], description="Image paths of stills (TMDB backdrops), for the health's image_base."
    )
    trailer_youtube_key: str | None = Field(
        default=None,
        description="The official trailer's YouTube id, when TMDB gave one (embed it from youtube-nocookie.com).",
    )


def movie_detail(row: dict[str, Any]) -> MovieDetail:
    """A :class:`MovieDetail` of a catalogue row, with IMDb, TMDB and trailer-search links."""
    imdb, tmdb = row.get("imdb_id") or None, row.get("tmdb_id") or None
    name = f"{row.get('display_title') or row.get('title') or ''} {row.get('year') or ''} trailer"
    return MovieDetail(
        **{k: v for k, v in row.items() if k in MovieDetail.model_fields},
        imdb_url=f"https://www.imdb.com/title/tt{int(imdb):07d}/" if imdb else None,
        tmdb_url=f"https://www.themoviedb.org/movie/{int(tmdb)}" if tmdb else None,
        trailer_url="https://www.youtube.com/results?search_query=" + quote_plus(" ".join(name.split())),
    )


class Tag(BaseModel):
    tag: str
    score: float | None = None
    movie_count: int | None = None


class RecommendationsOut(BaseModel):
    movies: list[Movie]
    tags: list[Tag]
    fallback: bool
    notes: list[str]
    elapsed_ms: float


class SessionOut(BaseModel):
    """Everything the visitor has said, in order (most important last)."""

    liked: list[Movie]
    disliked: list[Movie]
    liked_tags: list[str]
    disliked_tags: list[str]
    filters: dict[str, Any]
    favourites: list[int]
    recommendations: RecommendationsOut | None = Field(
        default=None,
        description="The changed session's recommendations, when the change asked for them (``?n=``); "
        "null when it did not, or when the recommender was busy (then ask ``GET /api/recommendations``).",
    )


class Health(BaseModel):
    status: Literal["ok"]
    model: str
    model_standin_for: str | None = Field(
        default=None,
        description="Set while a stand-in serves (popular movies, on a first start): the model "
        "training in the background that will replace it by itself.",
    )
    movies: int
    tags: int
    genres: list[str]
    image_base: str = Field(
        default="https://image.tmdb.org/t/p",
        description="Prefix of image URLs: image_base + '/w342' (a TMDB size) + a poster_path or still.",
    )
    inference_pending: int
    model_loaded_at: float | None = Field(
        default=None, description="When the model being served was loaded (seconds since the epoch)."
    )
    last_reload_error: str | None = Field(
        default=None,
        description="Why the latest reload failed (the previous model kept serving); null after a success.",
    )


class ReloadOut(BaseModel):
    """The model now being served after ``POST /api/admin/reload``."""

    status: Literal["reloaded"]
    model: str
    movies: int
    tags: int
    seconds: float
    model_loaded_at: float


class ValidationIssue(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ErrorOut(BaseModel):
    """An error: a message, or (request validation) one entry per invalid field."""

    detail: str | list[ValidationIssue]


QuestionKind = Literal["movies", "tags", "era", "genre"]


class QuestionOption(BaseModel):
    """One answer a question offers (besides "neither" and "skip")."""

    label: str
    movie_id: int | None = None
    tag: str | None = None
    year_min: int | None = None
    year_max: int | None = None
    genre: str | None = None


class QuestionOut(BaseModel):
    """A question chosen for the session: send ``kind``, ``values`` and the answer to
    ``POST /api/session/answer``."""

    kind: QuestionKind
    prompt: str
    values: list[int | str]
    options: list[QuestionOption]
    gain: float = Field(
        description="Expected information of the answer, in bits (an even two-way split: about 1.4)."
    )
    probabilities: list[float] = Field(
        description="The model's probability of each option, then of 'neither'."
    )


class NextQuestion(BaseModel):
    """The next question, or ``null`` when there is nothing left worth asking."""

    question: QuestionOut | None


class AnswerIn(_In):
    """An answer to a question: the option's position (0 or 1), ``"neither"`` or ``"skip"``.

    Two movies: the chosen one is liked ("neither": nothing). Two tags: the chosen one is
    liked, "neither" dislikes both. Era (before the year, the year and after): a year filter.
    Genre (yes, no): yes likes the genre's tag, no dislikes it (a model without such a tag:
    yes filters on the genre). "neither" on era and genre, and "skip" on any question,
    change nothing.
    """

    kind: QuestionKind
    values: Annotated[
        list[Annotated[int, Field(ge=1, le=2**62)] | TagName], Field(min_length=1, max_length=2)
    ]
    answer: Annotated[int, Field(ge=0, le=1)] | Literal["neither", "skip"]
