"""Training checkpoints: where :func:`~movierec.models.trainer.train` writes them (a
``checkpoint_dir``, or the scope of :func:`checkpointing`), how they are written (atomically,
tensors and plain values only) and read back (``weights_only``), the random generators' states
they carry, and the lock that keeps two runs off one directory."""

from __future__ import annotations

import contextvars
import json
import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = [
    "CHECKPOINT_FILE",
    "CHECKPOINT_FORMAT",
    "CheckpointError",
    "DirectoryLock",
    "checkpointing",
    "load_checkpoint",
    "rng_states",
    "save_atomic",
    "scoped_checkpoint_dir",
    "set_rng_states",
]

#: file name of the checkpoint inside a checkpoint directory
CHECKPOINT_FILE = "checkpoint.pt"
#: bumped when the checkpoint layout changes
CHECKPOINT_FORMAT = 1


class CheckpointError(ValueError):
    """A checkpoint cannot be read, or belongs to another run than the one resuming from it."""


class _CheckpointScope:
    """Where the ``train`` calls inside one :func:`checkpointing` block write."""

    def __init__(self, directory: Path, resume: bool) -> None:
        self.directory = directory
        self.resume = resume
        self.calls = 0

    def next_dir(self, name: str) -> Path:
        self.calls += 1
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
        return self.directory / f"{self.calls:02d}-{safe}"


_SCOPE: contextvars.ContextVar[_CheckpointScope | None] = contextvars.ContextVar(
    "movierec_ckpt", default=None
)


@contextmanager
def checkpointing(directory: str | Path, *, resume: bool = False) -> Iterator[Path]:
    """Checkpoint every :func:`train` call made inside the block (whose config has no ``checkpoint_dir``).

    The ``k``-th call writes to ``directory / f"{k:02d}-{name}"`` (a model
    that trains several networks, such as a pre-trained NeuMF, gets one
    sub-directory per network). Re-running the same fit with ``resume=True``
    makes the calls pick up where they stopped: a finished call restores its
    final weights without training, an interrupted one continues after its
    last completed epoch.
    """
    path = Path(directory)
    token = _SCOPE.set(_CheckpointScope(path, resume))
    try:
        yield path
    finally:
        _SCOPE.reset(token)


def rng_states(generators: Sequence[torch.Generator | np.random.Generator]) -> list[torch.Tensor | str]:
    out: list[torch.Tensor | str] = []
    for g in generators:
        if isinstance(g, torch.Generator):
            out.append(g.get_state())
        elif isinstance(g, np.random.Generator):
            out.append(json.dumps(g.bit_generator.state))
        else:
            raise TypeError(
                f"generators must be torch.Generator or numpy.random.Generator, got {type(g).__name__}"
            )
    return out


def set_rng_states(
    generators: Sequence[torch.Generator | np.random.Generator], states: list[torch.Tensor | str]
) -> None:
    if len(states) != len(generators):
        raise CheckpointError(
            f"the checkpoint holds {len(states)} generator states, train() was given {len(generators)}"
        )
    for g, s in zip(generators, states, strict=True):
        if isinstance(g, torch.Generator) and isinstance(s, torch.Tensor):
            g.set_state(s)
        elif isinstance(g, np.random.Generator) and isinstance(s, str):
            g.bit_generator.state = json.loads(s)
        else:
            raise CheckpointError(
                "the checkpoint's generator states do not match the kinds of generators given"
            )


def save_atomic(obj: dict[str, Any], path: Path) -> None:
    """``torch.save`` to a temporary file in the same directory, then rename over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            torch.save(obj, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint written by :func:`train` (tensors and plain values only, ``weights_only``)."""
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT_FILE
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # any unreadable or unsafe file (weights_only refuses other objects)
        raise CheckpointError(f"cannot read checkpoint {path}: {exc}") from exc
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not a movierec training checkpoint (format {CHECKPOINT_FORMAT})")
    return state


def scoped_checkpoint_dir(name: str) -> tuple[Path | None, bool]:
    """Inside :func:`checkpointing`: the next call's directory and whether it resumes; else (None, False)."""
    scope = _SCOPE.get()
    if scope is None:
        return None, False
    return scope.next_dir(name), scope.resume


class DirectoryLock:
    """An exclusive ``flock`` on ``directory/.lock`` that names its holder (released when the
    process ends, however it ends)."""

    def __init__(self, directory: Path) -> None:
        import fcntl
        import socket

        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / ".lock"
        self._fh = open(self.path, "a+")  # noqa: SIM115 - held until release()
        try:
            fcntl.flock(self._fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._fh.seek(0)
            holder = self._fh.read().strip() or "another process"
            self._fh.close()
            raise CheckpointError(
                f"checkpoint directory {directory} is in use by {holder}; stop that run (orphaned "
                "training workers too) or use another directory"
            ) from None
        self._fh.seek(0)
        self._fh.truncate()
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        self._fh.write(f"pid {os.getpid()} on {socket.gethostname()} since {stamp}\n")
        self._fh.flush()

    def release(self) -> None:
        self._fh.close()
