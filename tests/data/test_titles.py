"""MovieLens title conventions: display titles, years, accent folding, tag normalisation."""

from __future__ import annotations

import pandas as pd
import pytest

from movierec.data.titles import fold_text, normalise_tags, split_titles

CASES = [
    ("Matrix, The (1999)", "The Matrix", 1999),
    ("Toy Story (1995)", "Toy Story", 1995),
    (
        "Amelie (Fabuleux destin d'Amélie Poulain, Le) (2001)",
        "Amelie (Le Fabuleux destin d'Amélie Poulain)",
        2001,
    ),
    ("(500) Days of Summer (2009)", "(500) Days of Summer", 2009),
    ("Ours, L' (1988)", "L'Ours", 1988),
    ("Misérables, Les (1995)", "Les Misérables", 1995),
    ("American President, The (1995)", "The American President", 1995),
    ("Babylon 5 (1994-1998)", "Babylon 5", 1994),
    ("Ready Player One", "Ready Player One", 0),
    ("Hellboy: The Seeds of Creation (2004)", "Hellboy: The Seeds of Creation", 2004),
    ("  Heat (1995)  ", "Heat", 1995),
    ("Good, the Bad and the Ugly, The (Buono, il brutto, il cattivo, Il) (1966)",
     "The Good, the Bad and the Ugly (Il Buono, il brutto, il cattivo)", 1966),
]  # fmt: skip


@pytest.mark.parametrize(("raw", "display", "year"), CASES)
def test_split_titles_one_by_one(raw: str, display: str, year: int) -> None:
    shown, years = split_titles(pd.Series([raw]))
    assert shown.iloc[0] == display
    assert int(years[0]) == year


def test_split_titles_is_vectorised_and_keeps_order() -> None:
    raw = pd.Series([c[0] for c in CASES])
    shown, years = split_titles(raw)
    assert shown.tolist() == [c[1] for c in CASES]
    assert years.tolist() == [c[2] for c in CASES]
    assert years.dtype.name == "int32"
    assert years.shape == (len(CASES),)


def test_split_titles_handles_missing_titles() -> None:
    shown, years = split_titles(pd.Series([None, "Heat (1995)"], dtype=object))
    assert years.tolist() == [0, 1995]
    assert shown.iloc[1] == "Heat"


def test_a_year_in_the_middle_is_not_a_release_year() -> None:
    shown, years = split_titles(pd.Series(["2001: A Space Odyssey (1968)", "1984"]))
    assert years.tolist() == [1968, 0]
    assert shown.tolist() == ["2001: A Space Odyssey", "1984"]


@pytest.mark.parametrize(
    ("text", "folded"),
    [("Amélie", "amelie"), ("MISÉRABLES", "miserables"), ("Straße", "strasse"), ("Ça", "ca"), ("", "")],
)
def test_fold_text(text: str, folded: str) -> None:
    assert fold_text(text) == folded


def test_normalise_tags_merges_case_and_whitespace() -> None:
    out = normalise_tags(pd.Series(["Dark  Comedy", " dark comedy ", "DARK\tCOMEDY", "Sci-Fi"]))
    assert out.tolist() == ["dark comedy", "dark comedy", "dark comedy", "sci-fi"]
