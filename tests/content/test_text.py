"""movie_text: the exact form of the text each movie is embedded from."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from movierec.content.text import movie_text
from movierec.data.dataset import Dataset


def _data(with_overview: bool = True) -> Dataset:
    movies = pd.DataFrame(
        {
            "movieId": [1, 2, 3],
            "title": ["Toy Story (1995)", "Untitled Thing", "Heat (1995)"],
            "genres": ["Adventure|Animation", "(no genres listed)", "Action|Crime"],
        }
    )
    ratings = pd.DataFrame({"userId": [1, 1], "movieId": [1, 3], "rating": [4.0, 5.0], "timestamp": [1, 2]})
    tags = pd.DataFrame(
        {
            "userId": [1, 2, 3, 1, 1, 2],
            "movieId": [1, 1, 1, 1, 3, 3],
            "tag": ["pixar", "pixar", "toys", "funny", "heist", "Action"],
            "timestamp": [1, 2, 3, 4, 5, 6],
        }
    )
    metadata = None
    if with_overview:
        metadata = pd.DataFrame(
            {
                "movieId": [1, 3],
                "overview": ["A cowboy doll   is jealous.", None],
                "keywords": [["jealousy"], []],
            }
        )
    return Dataset.build("t", ratings, movies, tags=tags, metadata=metadata)


def test_exact_form_title_year_genres_tags_overview() -> None:
    texts = movie_text(_data())
    # pixar (2 applications) first; ties (funny, jealousy, toys at weight 1) by name
    assert texts[0] == (
        "Toy Story (1995). Genres: Adventure, Animation. Tags: pixar, funny, jealousy, toys. "
        "Overview: A cowboy doll is jealous."
    )
    # no year, no genres, no tags, no overview: just the title
    assert texts[1] == "Untitled Thing."
    # the user tag "Action" repeats Heat's own genre: not listed; no overview part for None
    assert texts[2] == "Heat (1995). Genres: Action, Crime. Tags: heist."


def test_genre_tag_listed_for_a_movie_outside_that_genre() -> None:
    data = _data()
    data2 = Dataset.build(
        "t2",
        pd.DataFrame({"userId": [1], "movieId": [1], "rating": [4.0]}),
        pd.DataFrame({"movieId": [1, 2], "title": ["A (2000)", "B (2001)"], "genres": ["Comedy", "Drama"]}),
        tags=pd.DataFrame({"userId": [1], "movieId": [2], "tag": ["comedy"]}),
    )
    assert movie_text(data2) == ["A (2000). Genres: Comedy.", "B (2001). Genres: Drama. Tags: comedy."]
    assert "adventure" not in movie_text(data, 0)[0].split("Tags:")[1]


def test_tags_capped_and_overview_clipped() -> None:
    data = _data()
    assert movie_text(data, [0], max_tags=1)[0].startswith(
        "Toy Story (1995). Genres: Adventure, Animation. Tags: pixar. Overview:"
    )
    assert movie_text(data, [0], max_tags=0)[0] == (
        "Toy Story (1995). Genres: Adventure, Animation. Overview: A cowboy doll is jealous."
    )
    assert movie_text(data, 0, max_overview_chars=12)[0].endswith("Overview: A cowboy ...")


def test_index_selection_and_errors() -> None:
    data = _data(with_overview=False)
    assert movie_text(data, np.array([2, 0])) == [movie_text(data)[2], movie_text(data)[0]]
    assert movie_text(data, []) == []
    with pytest.raises(IndexError, match="out of range"):
        movie_text(data, [3])
    with pytest.raises(TypeError):
        movie_text(data, np.array([0.5]))


def test_the_description_alone_leaves_the_title_out_unless_nothing_else_is_said() -> None:
    texts = movie_text(_data(), title=False)
    assert (
        texts[0]
        == "Genres: Adventure, Animation. Tags: pixar, funny, jealousy, toys. Overview: A cowboy doll is jealous."
    )
    assert texts[1] == "Untitled Thing."  # nothing but the title: it stays
    assert texts[2] == "Genres: Action, Crime. Tags: heist."
