"""Model configs as trees set by name (``movierec.models.configs``): leaf names and dotted
paths, typed values, clear refusals, old flat ``config.json`` files, the CLI's ``--set`` and
``--help-config`` generated from the dataclasses."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from movierec.data.synthetic import markov_sequences
from movierec.models.artifacts import load_model, save_model
from movierec.models.configs import config_from_dict, describe, knows, parse_assignments, with_settings
from movierec.models.ncf import NCFConfig
from movierec.models.registry import create
from movierec.models.sequence import SequenceConfig


@dataclass
class Inner:
    #: how many
    epochs: int = 3
    #: named twice in the tree
    rate: float = 0.5


@dataclass
class Outer:
    #: the width
    width: tuple[int, ...] = (4, 2)
    flag: bool = False
    train: Inner = field(default_factory=Inner)
    other: Inner = field(default_factory=lambda: Inner(epochs=7))


def test_leaf_names_paths_and_types() -> None:
    with pytest.raises(ValueError, match=r"ambiguous, say which: train\.epochs, other\.epochs"):
        with_settings(Outer(), {"epochs": 5})
    c = with_settings(Outer(), {"train.epochs": "5", "other.rate": 1, "width": "8,4", "flag": "yes"})
    assert c == Outer(width=(8, 4), flag=True, train=Inner(5, 0.5), other=Inner(7, 1.0))
    assert Outer() == Outer()  # the original is not changed
    assert with_settings(Outer(), {"other": {"epochs": 9}}).other == Inner(9, 0.5)
    for bad, message in [
        ({"train.epochs": "five"}, "train.epochs takes an integer"),
        ({"train.epochs": 2.5}, "takes an integer"),
        ({"flag": "maybe"}, "flag takes true or false"),
        ({"train.rate": True}, "takes a number"),
        ({"widht": 3}, "has no setting 'widht'"),
        ({"other": 3}, "takes a mapping"),
    ]:
        with pytest.raises(ValueError, match=message):
            with_settings(Outer(), bad)


def test_the_models_route_flat_names_into_their_nested_settings() -> None:
    seq = create("sequence-attn", epochs=2, dislike_push=1.5, transition_window=3, embed_dim=16)
    cfg = seq.config
    assert isinstance(cfg, SequenceConfig)
    assert (cfg.train.epochs, cfg.push.dislike_push, cfg.prior.transition_window, cfg.embed_dim) == (
        2,
        1.5,
        3,
        16,
    )
    assert cfg.encoder == "attention"
    assert knows(SequenceConfig, "lr") and knows(SequenceConfig, "push.liked_tag_pull")
    assert not knows(SequenceConfig, "valid_k") and not knows(NCFConfig, "dislike_push")
    with pytest.raises(ValueError, match="has no setting 'epoch'"):
        create("neumf", epoch=3)


def test_an_old_flat_config_json_still_loads(tmp_path: Path) -> None:
    """A model saved before the nesting (flat training and push fields, the retired valid_k)."""
    data = markov_sequences(20, 15, 8, np.random.default_rng(0))
    model = create("sequence", epochs=1, threads=1, embed_dim=8, hidden_dim=8).fit(data)
    path = save_model(model, tmp_path / "m")
    nested = json.loads((path / "config.json").read_text())
    flat = {k: v for k, v in nested.items() if not isinstance(v, dict)}
    for part in ("train", "push", "prior"):
        flat.update(nested[part])
    flat["valid_k"] = 10
    assert config_from_dict(SequenceConfig, flat) == model.config
    (path / "config.json").write_text(json.dumps(flat))
    with pytest.raises(Exception, match="checksum"):  # the artifact guards its files
        load_model(path)
    assert config_from_dict(SequenceConfig, nested) == model.config


def test_describe_lists_paths_defaults_and_docs() -> None:
    text = describe(SequenceConfig)
    assert "train.epochs (int, default 20)" in text
    assert "push.dislike_push (float, default 4.5)" in text and "structural dislike push" in text
    assert 'encoder (str, default "lstm")' in text
    assert parse_assignments(["epochs=8", " train.lr = 1e-3"]) == {"epochs": "8", "train.lr": "1e-3"}
    with pytest.raises(ValueError, match="NAME=VALUE"):
        parse_assignments(["epochs"])


def test_cli_train_set_and_help_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from movierec.cli import app

    folder = tmp_path / "tiny"
    folder.mkdir()
    data = markov_sequences(20, 15, 8, np.random.default_rng(0))
    (folder / "movies.csv").write_text(
        "movieId,title,genres\n" + "".join(f"{m},Movie {m} (2000),Drama\n" for m in data.movies.ids)
    )
    (folder / "ratings.csv").write_text(
        "userId,movieId,rating,timestamp\n"
        + "".join(
            f"{data.users.ids[u]},{data.movies.ids[m]},{r},{1000 + i}\n"
            for i, (u, m, r) in enumerate(zip(data.user, data.movie, data.rating, strict=True))
        )
    )
    monkeypatch.setenv("MOVIEREC_HOME", str(tmp_path / "home"))
    runner = CliRunner()
    r = runner.invoke(app, ["train", "--model", "neumf", "--help-config"])
    assert r.exit_code == 0 and "train.batch_size (int, default 4096)" in r.output, r.output
    r = runner.invoke(app, ["train", "--model", "sequence-attn", "--help-config"])
    assert 'encoder (str, default "attention")' in r.output, r.output  # the model's own default
    out = tmp_path / "m"
    args = ["train", "--model", "sequence", "--dataset", str(folder), "--out", str(out)]
    r = runner.invoke(app, [*args, "--set", "epochs=1", "--set", "embed_dim=8", "--set", "threads=1"])
    assert r.exit_code == 0, r.output
    saved = json.loads((out / "config.json").read_text())
    assert saved["train"]["epochs"] == 1 and saved["embed_dim"] == 8
    for bad, message in [
        (["--set", "epochs=many"], "epochs takes an integer"),
        (["--set", "hidden=8"], "no setting 'hidden'"),
        (["--set", "epochs"], "NAME=VALUE"),
        (["--valid-metric", "auc@10"], "unknown validation metric"),
    ]:
        r = runner.invoke(app, [*args, *bad])
        assert r.exit_code == 2 and message in r.output, r.output


def test_numpy_scalars_and_none() -> None:
    """A grid search hands numpy scalars over; ``none`` sets an optional field to None."""

    @dataclass
    class Opt:
        name: str | None = "x"
        k: int = 1
        rate: float = 0.5

    c = with_settings(Opt(), {"k": np.int64(3), "rate": np.float32(0.25), "name": "none"})
    assert c == Opt(None, 3, 0.25) and type(c.k) is int and type(c.rate) is float
    with pytest.raises(ValueError, match="takes an integer"):
        with_settings(Opt(), {"k": np.bool_(True)})
    with pytest.raises(ValueError, match=r"train: Inner has no setting 'nope'"):
        with_settings(Outer(), {"train": {"nope": 1}})
