"""Approximate top-N for large catalogues: a FAISS maximum-inner-product index
plus exact re-scoring of its candidates.

A model whose movie scores are an inner product, ``score = q @ items.T`` (the
sequence model folds its bias in as an extra column), can rank a catalogue of
millions without scoring every movie: an approximate nearest-neighbour (ANN)
index proposes a few hundred candidates per query, numpy scores those exactly,
and exclusions / filters are applied to them, widening the pool if the filters
leave too few.

FAISS is an optional dependency (the ``ann`` extra: ``pip install 'movierec[ann]'``,
i.e. ``faiss-cpu``); it is imported only when an index is built or loaded.

============  ================================================================
``mips``      :class:`MipsIndex` and :class:`MipsConfig`: the index kinds
              (IVF, HNSW, flat), building, searching, saving
``rescore``   :func:`candidates_then_rescore`: candidates from the index, exact
              scores, exclusions, filters, widening, the exact fallback
============  ================================================================
"""

from movierec.retrieval.mips import IndexKind as IndexKind
from movierec.retrieval.mips import MipsConfig, MipsIndex
from movierec.retrieval.mips import _faiss as _faiss
from movierec.retrieval.rescore import Adjust as Adjust
from movierec.retrieval.rescore import candidates_then_rescore

__all__ = ["MipsConfig", "MipsIndex", "candidates_then_rescore"]
