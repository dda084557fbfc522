"""Shared fixtures: a tiny randomly initialised model of the target's architecture (with the
embedded model's real tokenizer), and writers of the configs the tests run on it.

Test modules share helpers only through fixtures here or `nla_variants.variants.testing`, never by
importing each other or this file (tests/test_imports.py checks it)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import yaml

from nla_variants.variants.testing import make_tiny_model, tiny_trial_config, write_tiny_corpus

if TYPE_CHECKING:
    import optuna

# pytest's per-test timeout is a hang guard, never a speed test: pyproject.toml's 900 s for unit
# tests (seconds each), this for integration tests (the slowest takes minutes on a quiet 2-core
# machine, a few times that beside a training job).
INTEGRATION_TIMEOUT_S = 3600


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("integration") and not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(INTEGRATION_TIMEOUT_S))


@pytest.fixture(scope="session")
def embedded_dir() -> Path:
    """The embedded model, converted once into $NLA_CACHE_DIR (~20 s the first time)."""
    from nla_variants.target import resolve_model

    return Path(resolve_model("embedded").load_path)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, embedded_dir) -> Path:
    """A 4-block Llama with SmolLM2's config shape scaled down, random weights, real tokenizer
    (built by the public `nla_variants.variants.testing.make_tiny_model`)."""
    return make_tiny_model(tmp_path_factory.mktemp("tiny-llama"), tokenizer=embedded_dir)


def _write_yaml(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture(scope="session")
def trial_config() -> Callable[..., Path]:
    """`trial_config(tmp, model_dir, **dotted_overrides)`: `tiny_trial_config` written to
    tmp/trial.yaml; returns the path."""

    def write(tmp: Path, model_dir: Path, **overrides) -> Path:
        return _write_yaml(tmp / "trial.yaml", tiny_trial_config(tmp, model_dir, **overrides))

    return write


@pytest.fixture(scope="session")
def trained_run(trial_config) -> Callable[..., Path]:
    """`trained_run(tmp, model_dir, **dotted_overrides)`: the run directory of a finished tiny
    trial (`trial_config` with `overrides`)."""
    from nla_variants.config import TrialConfig, load_config
    from nla_variants.training.experiment import run_trial

    def train(tmp: Path, model_dir: Path, **overrides) -> Path:
        cfg = load_config(trial_config(tmp, model_dir, **overrides), TrialConfig)
        return Path(cfg.output_dir) / run_trial(cfg, progress=False)["run_id"]

    return train


TINY_RL = {
    "train.rl.steps": 2,
    "train.rl.batch_size": 2,
    "train.rl.group_size": 2,
    "train.rl.eval_every": 1,
    "train.rl.eval_samples": 4,
    "train.rl.max_response_tokens": 8,
    "mlflow.log_checkpoints": False,
}


@pytest.fixture(scope="session")
def sweep_yaml(trial_config) -> Callable[..., Path]:
    """`sweep_yaml(tmp, model_dir, **top)`: a two-trial random sweep over the RL KL coefficient
    of a tiny trial with two RL steps, written to tmp/sweep.yaml (`top` replaces its keys)."""

    def write(tmp: Path, model_dir: Path, **top) -> Path:
        base = trial_config(tmp, model_dir, **TINY_RL)
        cfg = {
            "name": "tiny-sweep",
            "base": str(base),
            "space": {"train.rl.kl_coef": {"low": 0.01, "high": 0.1, "log": True}},
            "n_trials": 2,
            "sampler": {"kind": "random", "seed": 0},
            "pruner": {"kind": "none"},
            "directory": str(tmp / "sweep"),
            "mlflow": {"tracking_uri": f"sqlite:///{tmp}/mlflow.db", "experiment": "sweep-tests"},
        }
        cfg.update(top)
        return _write_yaml(tmp / "sweep.yaml", cfg)

    return write


@pytest.fixture(scope="session")
def study_of() -> Callable[..., optuna.Study]:
    """`study_of(tmp, name="tiny-sweep")`: the Optuna study a `sweep_yaml` sweep wrote."""

    def load(tmp: Path, name: str = "tiny-sweep") -> optuna.Study:
        import optuna

        storage = f"sqlite:///{tmp / 'sweep' / 'optuna.db'}"
        return optuna.load_study(study_name=name, storage=storage)

    return load


@pytest.fixture(scope="session")
def write_config() -> Callable[..., Path]:
    """`write_config(tmp, model_dir, n_docs=24, **sections)`: a `nla prepare` config on the tiny
    model written to tmp/prepare.yaml; each `sections` mapping is merged into that section."""

    def write(tmp: Path, model_dir: Path, n_docs: int = 24, **extra) -> Path:
        corpus = write_tiny_corpus(tmp / "c.jsonl", n_docs, max_words=90)
        cfg = {
            "name": "tiny",
            "seed": 0,
            "target": {
                "model": str(model_dir),
                "layer": 2,
                "precision": "fp32",
                "device": "cpu",
                "max_batch_tokens": 256,
            },
            "corpus": {
                "source": "files",
                "paths": [str(corpus)],
                "genre_column": "genre",
                "min_chars": 50,
            },
            "sampling": {"positions_per_doc": 3, "min_prefix": 4, "max_tokens": 48},
            "store": {"root": str(tmp / "datasets"), "shard_docs": 5},
        }
        for key, value in extra.items():
            cfg[key] = {**cfg.get(key, {}), **value}
        return _write_yaml(tmp / "prepare.yaml", cfg)

    return write
