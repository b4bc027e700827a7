"""MovieLens title conventions: ``"Matrix, The (1999)"`` -> ``"The Matrix"``, 1999.

All functions are vectorised over a pandas Series of raw titles.
"""

from __future__ import annotations

import re
import unicodedata

import numpy as np
import pandas as pd

# Articles that MovieLens moves to the end ("Matrix, The"), in the languages it uses.
_ARTICLES = "The|A|An|Les|La|Le|L'|Il|Lo|I|Gli|Das|Der|Die|Den|Det|De|Het|Een|El|Los|Las|Un|Una|Une|Uno|O|Os|As|Ein|Eine"
_YEAR = re.compile(r"\s*\((\d{4})(?:\s*[-–]\s*(?:\d{4})?)?\)\s*$")
_TRAILING_ARTICLE = re.compile(rf"^(?P<body>.+), (?P<art>{_ARTICLES})$")
_ALT = re.compile(r"^(?P<main>.*?)(?P<alt>(?:\s*\([^()]*\))*)$")


def _move_article(text: str) -> str:
    m = _TRAILING_ARTICLE.match(text.strip())
    if not m:
        return text.strip()
    art = m.group("art")
    sep = "" if art.endswith("'") else " "
    return f"{art}{sep}{m.group('body')}"


def _display_one(title: str) -> str:
    """One title without year, with the article moved back to the front.

    Alternative titles in parentheses keep their place and are fixed too:
    ``"Amelie (Fabuleux destin d'Amélie Poulain, Le)"`` ->
    ``"Amelie (Le Fabuleux destin d'Amélie Poulain)"``.
    """
    m = _ALT.match(title)
    main, alt = (m.group("main"), m.group("alt")) if m else (title, "")
    if not main.strip():  # the whole title is parenthesised, e.g. "(500) Days of Summer"
        return title.strip()
    parts = re.findall(r"\(([^()]*)\)", alt)
    fixed_alt = "".join(f" ({_move_article(p)})" for p in parts)
    return _move_article(main) + fixed_alt


def split_titles(raw: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """Display titles and years of raw MovieLens titles.

    Parameters
    ----------
    raw:
        Raw titles such as ``"Matrix, The (1999)"``, shape ``(n,)``.

    Returns
    -------
    display:
        Titles without the year, articles in front (``"The Matrix"``).
    year:
        Release year, int32 array of shape ``(n,)``; 0 where the title has none.
    """
    raw = raw.fillna("").astype(str).str.strip()
    years = raw.str.extract(_YEAR, expand=False)
    year = pd.to_numeric(years, errors="coerce").fillna(0).astype(np.int32).to_numpy()
    bare = raw.str.replace(_YEAR, "", regex=True)
    display = bare.map(_display_one)
    display = display.where(display.str.len() > 0, raw)
    return display, year


def fold_text(text: str) -> str:
    """Lower-case, accent-free form of ``text`` for matching ("Amélie" -> "amelie")."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def normalise_tags(tags: pd.Series) -> pd.Series:
    """Tags as stored in the vocabulary: lower case, single spaces, trimmed."""
    return tags.astype(str).str.strip().str.lower().str.replace(r"\s+", " ", regex=True)
