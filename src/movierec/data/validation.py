"""The error for input data that cannot be used, and the checked conversion of a raw table's
columns to numbers (naming the column and the first bad row), shared by the loaders and
:meth:`movierec.data.dataset.Dataset.build`."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd


class DataError(ValueError):
    """Input data that cannot be used as it is; the message says what and where."""


def numeric(frame: pd.DataFrame, column: str, dtype: Any, what: str) -> np.ndarray:
    """Column as ``dtype``; a clear :class:`DataError` naming the first bad row otherwise."""
    if column not in frame.columns:
        raise DataError(f"{what}: missing column {column!r} (have {list(frame.columns)})")
    values = pd.to_numeric(frame[column], errors="coerce")
    bad = values.isna().to_numpy()
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"{what}: column {column!r} has {int(bad.sum())} non-numeric or empty value(s); "
            f"first at data row {row + 1}: {_plain(frame[column].iloc[row])!r}"
        )
    if np.dtype(dtype).kind in "iu" and values.dtype.kind == "f":
        frac = values.to_numpy() % 1 != 0  # ids and timestamps must be whole, not silently truncated
        if frac.any():
            row = int(np.flatnonzero(frac)[0])
            raise DataError(
                f"{what}: column {column!r} has {int(frac.sum())} non-integer value(s); "
                f"first at data row {row + 1}: {_plain(frame[column].iloc[row])!r}"
            )
    return values.to_numpy().astype(dtype, copy=False)


def _plain(value: Any) -> Any:
    """A numpy scalar as the plain Python value (``1.5``, not ``np.float64(1.5)``) for messages."""
    return value.item() if isinstance(value, np.generic) else value
