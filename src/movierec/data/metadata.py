"""Optional movie metadata (TMDB), joined to MovieLens by ``tmdbId``.

Reads from a metadata directory (``MOVIEREC_METADATA``) whatever it holds of:

* ``keywords.csv``: ``id,keywords``, the second a Python-literal list of
  ``{'id': ..., 'name': ...}`` records. Parsed with a regular expression, never ``eval``.
* ``movies_metadata.csv`` (The Movies Dataset) or ``tmdb_5000_movies.csv``:
  ``id`` plus any of ``overview, release_date, runtime, vote_average, poster_path``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from movierec.data.validation import DataError

log = logging.getLogger(__name__)

# 'name': 'text' or "name": "text" (either quoting, escapes allowed)
_NAME = r"""['"]name['"]\s*:\s*(?:'(?P<sq>(?:[^'\\]|\\.)*)'|"(?P<dq>(?:[^"\\]|\\.)*)")"""
_FIELDS = ("overview", "release_date", "runtime", "vote_average", "poster_path")
_METADATA_FILES = ("movies_metadata.csv", "tmdb_5000_movies.csv")


def parse_keywords(frame: pd.DataFrame) -> pd.DataFrame:
    """``tmdbId`` and ``keywords`` (list of names) from a ``keywords.csv`` frame.

    Rows with an unparsable id are dropped (counted in the log); duplicate ids keep the first.
    """
    ids = pd.to_numeric(frame["id"], errors="coerce")
    bad = int(ids.isna().sum())
    if bad:
        log.warning("keywords.csv: dropped %d row(s) with a non-numeric id", bad)
    frame = frame.loc[ids.notna()].assign(tmdbId=ids[ids.notna()].astype(np.int64)).drop_duplicates("tmdbId")
    found = frame["keywords"].fillna("").astype(str).str.extractall(_NAME)
    names = found["sq"].fillna(found["dq"]).str.replace(r"\\(.)", r"\1", regex=True)
    per_row = names.groupby(level=0).agg(list)
    out = pd.DataFrame({"tmdbId": frame["tmdbId"].to_numpy()}, index=frame.index)
    out["keywords"] = per_row.reindex(out.index)
    out["keywords"] = out["keywords"].apply(lambda v: v if isinstance(v, list) else [])
    return out.reset_index(drop=True)


def _read_details(path: Path) -> pd.DataFrame:
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    if "id" not in frame:
        raise DataError(f"{path}: no 'id' column (TMDB id expected)")
    ids = pd.to_numeric(frame["id"], errors="coerce")
    frame = frame.loc[ids.notna()].assign(tmdbId=ids[ids.notna()].astype(np.int64)).drop_duplicates("tmdbId")
    out = frame[["tmdbId"]].copy()
    for col in _FIELDS:
        if col in frame:
            values = frame[col].replace("", None)
            if col in ("runtime", "vote_average"):
                values = pd.to_numeric(values, errors="coerce")
            out[col] = values.to_numpy()
    return out


def load_metadata(directory: Path | None) -> pd.DataFrame | None:
    """All metadata found in ``directory``, one row per ``tmdbId``; ``None`` if there is none.

    Raises :class:`DataError` if ``directory`` is set but does not exist.
    """
    if directory is None:
        return None
    directory = Path(directory)
    if not directory.is_dir():
        raise DataError(f"metadata directory {directory} does not exist (check MOVIEREC_METADATA)")
    parts: list[pd.DataFrame] = []
    kw_path = directory / "keywords.csv"
    if kw_path.exists():
        try:
            parts.append(parse_keywords(pd.read_csv(kw_path, dtype=str, keep_default_na=False)))
        except (pd.errors.ParserError, KeyError, ValueError) as exc:
            raise DataError(f"{kw_path}: malformed keywords file: {exc}") from exc
    for name in _METADATA_FILES:
        if (directory / name).exists():
            try:
                parts.append(_read_details(directory / name))
            except (pd.errors.ParserError, ValueError) as exc:
                raise DataError(f"{directory / name}: malformed metadata file: {exc}") from exc
            break  # the first (fullest) file wins
    if not parts:
        log.warning(
            "metadata directory %s holds none of keywords.csv, %s", directory, ", ".join(_METADATA_FILES)
        )
        return None
    merged = parts[0]
    for part in parts[1:]:
        merged = merged.merge(part, on="tmdbId", how="outer")
    if "keywords" in merged:
        merged["keywords"] = merged["keywords"].apply(lambda v: v if isinstance(v, list) else [])
    return merged
