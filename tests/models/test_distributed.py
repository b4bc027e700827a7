"""Training under several processes (DDP over gloo), checkpoints and resuming.

The two-process runs use ``torch.multiprocessing`` with a file rendezvous
(no TCP store) and gloo bound to the loopback interface, so nothing listens
beyond 127.0.0.1; one spawn does all the distributed work (~10 s).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from safetensors.numpy import load_file
from torch import nn
from torch.nn import functional as F

from contract import make_low_rank
from movierec import distributed as D
from movierec.data.dataset import Dataset
from movierec.data.splits import random_holdout
from movierec.data.synthetic import synthetic_movies
from movierec.models.rating_mlp import RatingRegressor
from movierec.models.trainer import (
    CHECKPOINT_FILE,
    CheckpointError,
    TrainConfig,
    checkpointing,
    load_checkpoint,
    shard_batches,
    train,
)

#: RatingRegressor settings: enough steps for the ~1,500 training ratings even when split in two
REG = {"epochs": 16, "batch_size": 64, "lr": 1e-2, "dropout": 0.1, "threads": 1, "patience": 0}
#: the two-process model optimises as one process does (same global batch, same steps: the
#: trainer's scaling rule); its held-out RMSE differs only by the batches' order and float sums
QUALITY_TOLERANCE = 1.10
#: epochs of the hand-made factorisation net, and the epoch at which a run is "killed"
EPOCHS, KILL_AT = 6, 3


# ------------------------------------------------------------------ a small net driven through train()


class _MF(nn.Module):
    """Biased matrix factorisation with dropout on the user vector drawn from an explicit generator."""

    def __init__(self, n_users: int, n_movies: int, g: torch.Generator) -> None:
        super().__init__()
        self.u = nn.Parameter(torch.randn(n_users, 4, generator=g) * 0.1)
        self.v = nn.Parameter(torch.randn(n_movies, 4, generator=g) * 0.1)
        self.bu = nn.Parameter(torch.zeros(n_users))
        self.bm = nn.Parameter(torch.zeros(n_movies))
        self.mu = nn.Parameter(torch.zeros(()))
        self.g = g

    def forward(self, users: torch.Tensor, movies: torch.Tensor) -> torch.Tensor:
        pu = self.u[users]
        if self.training:
            pu = pu * (torch.rand(pu.shape, generator=self.g) >= 0.1) / 0.9
        return self.mu + self.bu[users] + self.bm[movies] + (pu * self.v[movies]).sum(1)


class _Interrupted(Exception):
    pass


def _split() -> tuple[Dataset, Dataset]:
    data, _ = make_low_rank()
    return random_holdout(data, 0.1, np.random.default_rng(1))


def _train_mf(
    ckpt: Path | None, *, resume: bool = False, kill_at: int | None = None, seed: int = 0
) -> tuple[nn.Module, list[dict[str, float]]]:
    """Train ``_MF`` through :func:`train`; batches drawn with a numpy generator, dropout with a torch one."""
    tr, va = _split()
    rng = np.random.default_rng(seed)
    g = torch.Generator().manual_seed(seed)
    net = _MF(tr.n_users, tr.n_movies, g)
    u, m = torch.as_tensor(tr.user.astype(np.int64)), torch.as_tensor(tr.movie.astype(np.int64))
    r = torch.as_tensor(tr.rating.astype(np.float32))
    vu, vm = torch.as_tensor(va.user.astype(np.int64)), torch.as_tensor(va.movie.astype(np.int64))
    vr = torch.as_tensor(va.rating.astype(np.float32))

    def batches(epoch: int) -> Iterator[tuple[torch.Tensor, ...]]:
        if epoch == kill_at:
            raise _Interrupted
        for idx in np.array_split(rng.permutation(tr.n_ratings), 23):  # 23 batches: uneven across 2 ranks
            yield u[idx], m[idx], r[idx]

    def loss_fn(model: nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        bu, bm, br = batch
        return F.mse_loss(model(bu, bm), br)

    def validate(model: nn.Module) -> float:
        return float(torch.sqrt(F.mse_loss(model(vu, vm), vr)))

    config = TrainConfig(
        epochs=EPOCHS,
        lr=0.05,
        patience=0,
        lr_decay=0.9,
        threads=1,
        checkpoint_dir=str(ckpt or ""),
        resume=resume,
    )
    history = train(
        net, batches, loss_fn, config, validate=validate, higher_is_better=False, generators=(rng, g)
    )
    return net, history


def _weights(net: nn.Module) -> dict[str, np.ndarray]:
    return {k: v.detach().numpy().copy() for k, v in net.state_dict().items()}


def _rmse(model: RatingRegressor, test: Dataset) -> float:
    pred = model.predict(test.user.astype(np.int64), test.movie.astype(np.int64))
    return float(np.sqrt(np.mean((pred - test.rating) ** 2)))


# ---------------------------------------------------------------------- the two-process worker


def _worker(rank: int, world: int, init_file: str, out: str) -> None:
    torch.set_num_threads(1)
    D.init_file_group(rank, world, init_file, timeout_s=60)
    try:
        assert D.is_distributed() and D.world() == world and D.rank() == rank
        tr, te = _split()
        reg = RatingRegressor(**REG).fit(tr, np.random.default_rng(0))
        full, full_hist = _train_mf(Path(out) / "ckpt-full")
        with pytest.raises(_Interrupted):
            _train_mf(Path(out) / "ckpt-killed", kill_at=KILL_AT)
        resumed, resumed_hist = _train_mf(Path(out) / "ckpt-killed", resume=True)
        arrays: dict[str, Any] = {
            "reg_rmse": np.array(_rmse(reg, te)),
            "reg_epochs": np.array(reg.fit_info.epochs),
            "reg_steps": np.array([h["steps"] for h in reg.fit_info.history]),
            "full_loss": np.array([h["loss"] for h in full_hist]),
            "resumed_loss": np.array([h["loss"] for h in resumed_hist]),
        }
        arrays.update({f"full.{k}": v for k, v in _weights(full).items()})
        arrays.update({f"resumed.{k}": v for k, v in _weights(resumed).items()})
        arrays.update({f"reg.{k}": v for k, v in reg.state().items()})
        np.savez(Path(out) / f"rank{rank}.npz", **arrays)
    finally:
        dist.destroy_process_group()


def _spawn(fn: Callable[..., None], world: int, args: tuple[Any, ...], timeout_s: float = 120.0) -> None:
    ctx = mp.start_processes(fn, args=(world, *args), nprocs=world, join=False, start_method="spawn")
    deadline = time.monotonic() + timeout_s
    while not ctx.join(timeout=1.0):
        if time.monotonic() > deadline:
            for p in ctx.processes:
                p.terminate()
            pytest.fail(f"distributed workers still running after {timeout_s} s")


@pytest.fixture(scope="module")
def two_process(tmp_path_factory: pytest.TempPathFactory) -> dict[int, dict[str, np.ndarray]]:
    out = tmp_path_factory.mktemp("ddp")
    old = os.environ.get("GLOO_SOCKET_IFNAME")
    os.environ["GLOO_SOCKET_IFNAME"] = "lo"  # gloo listens on the loopback interface only
    try:
        _spawn(_worker, 2, (str(out / "rendezvous"), str(out)))
    finally:
        if old is None:
            os.environ.pop("GLOO_SOCKET_IFNAME", None)
        else:
            os.environ["GLOO_SOCKET_IFNAME"] = old
    return {r: dict(np.load(out / f"rank{r}.npz")) for r in range(2)}


# --------------------------------------------------------------------------------------- tests


@pytest.mark.slow
def test_two_process_model_matches_single_process_quality(
    two_process: dict[int, dict[str, np.ndarray]],
) -> None:
    tr, te = _split()
    single = RatingRegressor(**REG).fit(tr, np.random.default_rng(0))
    rmse_1 = _rmse(single, te)
    rmse_2 = float(two_process[0]["reg_rmse"])
    baseline = float(np.sqrt(np.mean((tr.rating.mean() - te.rating) ** 2)))
    assert rmse_1 < 0.6 * baseline
    assert rmse_2 < 0.6 * baseline, f"two processes: RMSE {rmse_2:.3f} vs global mean {baseline:.3f}"
    print(f"held-out RMSE: 1 process {rmse_1:.4f}, 2 processes {rmse_2:.4f}, global mean {baseline:.4f}")
    assert rmse_2 <= QUALITY_TOLERANCE * rmse_1, f"RMSE 2 processes {rmse_2:.3f} vs 1 process {rmse_1:.3f}"
    assert int(two_process[0]["reg_epochs"]) == REG["epochs"]


@pytest.mark.slow
def test_two_processes_take_the_steps_of_one(two_process: dict[int, dict[str, np.ndarray]]) -> None:
    """Issue: under torchrun the global batch doubled, so an epoch had half the steps, and GMF and
    NeuMF trained 5-15% worse. Now each rank draws batch_size / 2: as many steps of as many examples."""
    tr, _ = _split()
    single = RatingRegressor(**REG).fit(tr, np.random.default_rng(0))
    one = [h["steps"] for h in single.fit_info.history]
    assert one[0] == -(-tr.n_ratings // REG["batch_size"])
    for r in (0, 1):
        two = two_process[r]["reg_steps"].tolist()
        assert len(two) == len(one) and all(abs(a - b) <= 1 for a, b in zip(two, one, strict=True)), (
            two,
            one,
        )


@pytest.mark.slow
def test_every_rank_ends_with_the_same_weights(two_process: dict[int, dict[str, np.ndarray]]) -> None:
    a, b = two_process[0], two_process[1]
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


@pytest.mark.slow
def test_two_process_resume_equals_uninterrupted_run(two_process: dict[int, dict[str, np.ndarray]]) -> None:
    res = two_process[0]
    np.testing.assert_array_equal(res["resumed_loss"], res["full_loss"])
    for k in [k for k in res if k.startswith("full.")]:
        np.testing.assert_array_equal(res["resumed." + k[5:]], res[k], err_msg=k)


@pytest.mark.slow
def test_two_process_run_differs_from_single_process(two_process: dict[int, dict[str, np.ndarray]]) -> None:
    """Guards against the workers silently training alone: sharded steps give other weights."""
    single, _ = _train_mf(None)
    assert not np.array_equal(_weights(single)["u"], two_process[0]["full.u"])


def test_single_process_resume_equals_uninterrupted_run(tmp_path: Path) -> None:
    full, full_hist = _train_mf(tmp_path / "full")
    with pytest.raises(_Interrupted):
        _train_mf(tmp_path / "killed", kill_at=KILL_AT)
    state = load_checkpoint(tmp_path / "killed")
    assert state["epoch"] == KILL_AT and not state["finished"]
    resumed, resumed_hist = _train_mf(tmp_path / "killed", resume=True)
    assert [h["loss"] for h in resumed_hist] == [h["loss"] for h in full_hist]
    for k, v in _weights(full).items():
        np.testing.assert_array_equal(_weights(resumed)[k], v, err_msg=k)
    # a finished checkpoint is restored without training
    again, again_hist = _train_mf(tmp_path / "killed", resume=True, seed=99)
    assert again_hist == resumed_hist
    np.testing.assert_array_equal(_weights(again)["u"], _weights(full)["u"])


def test_without_resume_a_checkpoint_is_overwritten(tmp_path: Path) -> None:
    _train_mf(tmp_path, seed=1)
    net, _ = _train_mf(tmp_path, seed=2)
    plain, _ = _train_mf(None, seed=2)
    np.testing.assert_array_equal(_weights(net)["u"], _weights(plain)["u"])
    np.testing.assert_array_equal(load_checkpoint(tmp_path)["net"]["u"].numpy(), _weights(plain)["u"])


def test_checkpoint_holds_only_tensors_and_plain_values(tmp_path: Path) -> None:
    _train_mf(tmp_path)
    state = torch.load(tmp_path / CHECKPOINT_FILE, weights_only=True)  # raises on any other object
    assert state["finished"] and state["epoch"] == EPOCHS and len(state["history"]) == EPOCHS
    assert not list(tmp_path.glob(".*tmp*"))  # the atomic write left no temporary file


def test_resume_refuses_a_checkpoint_of_other_settings(tmp_path: Path) -> None:
    _train_mf(tmp_path, kill_at=None)
    net = nn.Linear(2, 1)
    config = TrainConfig(epochs=1, lr=0.5, checkpoint_dir=str(tmp_path), resume=True)
    with pytest.raises(CheckpointError, match=r"lr=0.05 there, 0.5 here"):
        train(net, lambda e: [], lambda n, b: torch.zeros(()), config)


class _NotATensor:
    pass


def test_a_checkpoint_with_arbitrary_objects_is_refused(tmp_path: Path) -> None:
    torch.save({"format": 1, "payload": _NotATensor()}, tmp_path / CHECKPOINT_FILE)
    with pytest.raises(CheckpointError, match="cannot read"):
        load_checkpoint(tmp_path)
    (tmp_path / CHECKPOINT_FILE).write_bytes(b"truncated")
    with pytest.raises(CheckpointError, match="cannot read"):
        load_checkpoint(tmp_path)


def test_checkpointing_scope_gives_each_train_call_its_directory(tmp_path: Path) -> None:
    net = nn.Linear(2, 1)
    x, y = torch.ones(4, 2), torch.zeros(4)

    def loss_fn(n: nn.Module, b: Any) -> torch.Tensor:
        return F.mse_loss(n(x).squeeze(1), y)

    with checkpointing(tmp_path):
        train(net, lambda e: [0], loss_fn, TrainConfig(epochs=1), name="gmf")
        train(net, lambda e: [0], loss_fn, TrainConfig(epochs=2), name="neu mf")
    train(net, lambda e: [0], loss_fn, TrainConfig(epochs=1), name="outside")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["01-gmf", "02-neu_mf"]
    assert load_checkpoint(tmp_path / "02-neu_mf")["epoch"] == 2


@pytest.mark.parametrize("n", [0, 1, 2, 3, 7, 8])
def test_shard_batches_gives_every_rank_the_same_count(n: int) -> None:
    world = 3
    shards = [list(shard_batches(range(n), r, world)) for r in range(world)]
    steps = -(-n // world)
    assert all(len(s) == steps for s in shards)
    assert sorted(set().union(*map(set, shards))) == list(range(n))  # every batch is used
    if n == 7:
        assert shards == [[0, 3, 6], [1, 4, 0], [2, 5, 1]]


def test_shard_batches_rejects_a_bad_rank() -> None:
    with pytest.raises(ValueError, match="outside"):
        list(shard_batches([1], 2, 2))


def test_init_from_env_single_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert D.init_from_env() is False
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert D.init_from_env() is False
    assert D.world() == 1 and D.rank() == 0 and D.is_main() and not D.is_distributed()
    with D.process_group() as started:
        assert started is False


def test_init_from_env_names_what_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    monkeypatch.delenv("MASTER_PORT", raising=False)
    with pytest.raises(ValueError, match="MASTER_ADDR, MASTER_PORT not set"):
        D.init_from_env()
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(ValueError, match="not an integer"):
        D.init_from_env()


# ----------------------------------------------------------------------------------- command line


def _write_movielens(folder: Path) -> None:
    """A tiny ``ratings.csv`` / ``movies.csv`` folder from the planted low-rank ratings."""
    data, _ = make_low_rank()
    folder.mkdir()
    pd.DataFrame(
        {
            "userId": data.users.ids[data.user],
            "movieId": data.movies.ids[data.movie],
            "rating": data.rating,
            "timestamp": data.timestamp,
        }
    ).to_csv(folder / "ratings.csv", index=False)
    synthetic_movies(data.n_movies, np.random.default_rng(0)).to_csv(folder / "movies.csv", index=False)


def test_cli_train_checkpoints_and_resumes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from movierec.cli import app

    monkeypatch.setenv("MOVIEREC_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    _write_movielens(tmp_path / "ml")
    runner = CliRunner()
    args = ["train", "-m", "mlp-reg", "-d", str(tmp_path / "ml"), "--checkpoint-dir", str(tmp_path / "ck")]
    first = runner.invoke(app, [*args, "-o", str(tmp_path / "a"), "--json"])
    assert first.exit_code == 0, first.output
    state = load_checkpoint(tmp_path / "ck" / "01-mlp-reg")
    assert state["finished"] and "processes" not in first.output
    again = runner.invoke(app, [*args, "-o", str(tmp_path / "b"), "--resume"])
    assert again.exit_code == 0, again.output
    a = load_file(str(tmp_path / "a" / "weights.safetensors"))
    b = load_file(str(tmp_path / "b" / "weights.safetensors"))
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_cli_resume_needs_a_checkpoint_dir() -> None:
    from typer.testing import CliRunner

    from movierec.cli import app

    result = CliRunner().invoke(app, ["train", "-m", "mlp-reg", "--resume"])
    assert result.exit_code != 0
    assert "--resume needs --checkpoint-dir" in result.output


def test_a_checkpoint_directory_in_use_is_refused_naming_its_holder(tmp_path: Path) -> None:
    """Issue: a ``--resume`` started while orphaned workers still ran failed with a gloo error."""
    from movierec.models.checkpoints import DirectoryLock as _DirectoryLock

    held = _DirectoryLock(tmp_path)  # as a still-running worker would hold it
    try:
        with pytest.raises(CheckpointError, match=rf"in use by pid {os.getpid()} on .* since"):
            _train_mf(tmp_path, resume=True)
    finally:
        held.release()
    _train_mf(tmp_path)  # free again: trains, and leaves it free
    _train_mf(tmp_path, resume=True)
    assert (tmp_path / ".lock").exists()


def test_threads_are_shared_among_the_processes_of_a_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    from movierec.models.trainer import default_threads

    cores = len(os.sched_getaffinity(0))
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    assert default_threads() == cores
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    assert default_threads() == max(1, cores // 2)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", str(cores * 4))
    assert default_threads() == 1
