"""Vocabularies: external ids <-> contiguous indices.

Models only ever see indices ``0 .. len(vocab) - 1``; the vocabulary is the
one place that knows the MovieLens ids (ints) or tag names (strings).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd


class UnknownIdError(KeyError):
    """An external id that the vocabulary does not hold."""

    def __init__(self, kind: str, ids: Sequence[Any]) -> None:
        shown = ", ".join(repr(i) for i in list(ids)[:5])
        more = f" (and {len(ids) - 5} more)" if len(ids) > 5 else ""
        super().__init__(f"unknown {kind} id(s): {shown}{more}")
        self.kind = kind
        self.ids = list(ids)

    def __str__(self) -> str:  # KeyError quotes its message otherwise
        return str(self.args[0])


class Vocabulary:
    """An immutable, ordered set of external ids.

    Parameters
    ----------
    ids:
        Unique external ids, shape ``(n,)``; integers (user and movie ids) or
        strings (tags). Their order defines the indices.
    kind:
        What the ids name (``"user"``, ``"movie"``, ``"tag"``), used in errors.
    """

    __slots__ = ("_ids", "_index", "kind")

    def __init__(self, ids: Iterable[Any] | np.ndarray, kind: str) -> None:
        arr = np.asarray(list(ids) if not isinstance(ids, np.ndarray | pd.Index) else ids)
        if arr.dtype.kind in "iu":
            arr = arr.astype(np.int64)
        elif arr.size == 0:
            arr = arr.astype(object)
        else:
            arr = arr.astype(object)
        index = pd.Index(arr)
        if not index.is_unique:
            dup = index[index.duplicated()].unique()[:5].tolist()
            raise ValueError(f"{kind} vocabulary has duplicate ids: {dup}")
        arr.setflags(write=False)
        self._ids = arr
        self._index = index
        self.kind = kind

    @classmethod
    def from_values(cls, values: np.ndarray | pd.Series, kind: str) -> Vocabulary:
        """Sorted unique values of ``values`` as a vocabulary."""
        uniq = pd.unique(pd.Series(values))
        if pd.Series(uniq).dtype.kind in "iu":
            uniq = np.sort(uniq.astype(np.int64))
        else:
            uniq = np.array(sorted(uniq.tolist()), dtype=object)
        return cls(uniq, kind)

    def __len__(self) -> int:
        return int(self._ids.shape[0])

    def __contains__(self, item: object) -> bool:
        return item in self._index

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Vocabulary)
            and self.kind == other.kind
            and len(self) == len(other)
            and bool(np.all(self._ids == other._ids))
        )

    def __hash__(self) -> int:
        return hash((self.kind, len(self)))

    def __repr__(self) -> str:
        return f"Vocabulary(kind={self.kind!r}, size={len(self)})"

    @property
    def ids(self) -> np.ndarray:
        """External ids in index order, shape ``(n,)`` (read-only)."""
        return self._ids

    @property
    def is_numeric(self) -> bool:
        return self._ids.dtype.kind in "iu"

    def index(self, ids: Any, *, missing: str = "raise") -> np.ndarray:
        """Indices of external ``ids``, shape like ``ids``, dtype int64.

        ``missing="raise"`` raises :class:`UnknownIdError` naming the unknown
        ids; ``missing="mask"`` returns ``-1`` for them.
        """
        raw = np.atleast_1d(np.asarray(ids, dtype=None if self.is_numeric else object))
        if self.is_numeric and raw.dtype.kind not in "iu":
            # only finite whole numbers can be ids: 1.5, "abc", NaN are unknown, never truncated
            num = pd.to_numeric(pd.Series(raw.ravel(), dtype=object), errors="coerce").to_numpy(np.float64)
            whole = np.isfinite(num) & (num == np.round(num))
            flat = np.full(raw.size, -1, np.int64)
            flat[whole] = self._index.get_indexer(num[whole].astype(np.int64))
            idx: np.ndarray = flat.reshape(raw.shape)
        else:
            idx = self._index.get_indexer(raw.ravel()).reshape(raw.shape)
        if missing == "raise" and (idx < 0).any():
            raise UnknownIdError(self.kind, raw[idx < 0].tolist())
        return idx.astype(np.int64)

    def index_one(self, id_: Any) -> int:
        """Index of one external id; :class:`UnknownIdError` if unknown."""
        return int(self.index([id_])[0])

    def id(self, indices: np.ndarray | Sequence[int]) -> np.ndarray:
        """External ids of ``indices`` (shape like ``indices``)."""
        idx = np.asarray(indices, dtype=np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= len(self)):
            raise IndexError(f"{self.kind} index out of range 0..{len(self) - 1}")
        return self._ids[idx]

    def to_list(self) -> list[Any]:
        """Ids as plain Python values (for JSON)."""
        return [int(x) for x in self._ids] if self.is_numeric else [str(x) for x in self._ids]

    @classmethod
    def from_list(cls, values: list[Any], kind: str) -> Vocabulary:
        if values and all(isinstance(v, int) for v in values):
            return cls(np.asarray(values, dtype=np.int64), kind)
        return cls(np.asarray(values, dtype=object), kind)
