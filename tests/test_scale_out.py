"""Scale-out: one trial over several processes (Lightning DDP, gloo on the CPU) trains what one
process trains on the same global batch, and resumes exactly on them.

The multi-process tests run `nla train` through `tests/scripts/closing_train.py` (the tiny
model never closes its explanation tag; the script closes some rollouts on every rank, as the
`closing` fixture does in-process), so RL has rewards that vary and gradients that move.
What must agree is the gradient of every optimiser step (the script records them): within 1e-3
of the one-process gradient in relative L2 norm. Float sums over batches of another shape part
them by ~1e-7 (up to ~1e-4 in RL's policy gradient, a sum of advantage-weighted terms that
cancel), while a share weighted wrongly or left unreduced is off by ~1e-1. Weights are not
compared element by element: Adam turns rounding noise in a near-zero gradient into a whole
step (~lr) in a few elements, by an amount that depends on the CPU's kernels; the RL update as a
whole must agree within 1e-2 (relative L2; ~5e-4 seen).
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from mlflow import MlflowClient
from safetensors.torch import load_file
from torch.utils.data import ConcatDataset, DataLoader, RandomSampler, WeightedRandomSampler

from nla_variants.cli import main
from nla_variants.common.distributed import share_of
from nla_variants.common.errors import NLAError
from nla_variants.config import TrainConfig
from nla_variants.core.sampling import SeededSampling
from nla_variants.data.store import SplitRows
from nla_variants.target import resolve_model
from nla_variants.training.data import (
    NLADataModule,
    ShardedBatches,
    _RowsDataset,
    collate,
)
from nla_variants.training.strategy import check_strategy
from nla_variants.variants.registry import BuildContext, build
from nla_variants.variants.testing import tiny_trial_config

SCRIPT = Path(__file__).parent / "scripts" / "closing_train.py"
PACKAGE = Path(__file__).parents[1] / "nla_variants"
GRAD_TOLERANCE = 1e-3
UPDATE_TOLERANCE = 1e-2
PARTS = ("av_checkpoint", "ar_checkpoint", "rl_checkpoint/av", "rl_checkpoint/ar")


# -- fast: the pieces ------------------------------------------------------------------------


@pytest.mark.parametrize("n, world", [(10, 1), (10, 2), (10, 3), (2, 2), (7, 4)])
def test_shares_are_contiguous_and_cover_the_rows_in_order(n, world):
    rows = list(range(n))
    parts = [rows[share_of(n, r, world)] for r in range(world)]
    assert sum(parts, []) == rows
    assert max(map(len, parts)) - min(map(len, parts)) <= 1


@pytest.mark.parametrize("world", [1, 2, 3])
def test_sharded_batches_are_the_plain_loaders_batches_split_over_ranks(world):
    """One rank sees exactly a shuffled DataLoader's batches (the same generator, drawn in the
    same order, epoch after epoch); N ranks see those batches split in rank order."""
    data = list(range(23))
    plain = DataLoader(
        data, batch_size=6, shuffle=True, drop_last=True, generator=torch.Generator().manual_seed(3)
    )
    want = [b.tolist() for _ in range(3) for b in plain]
    got_by_rank = []
    for rank in range(world):
        g = torch.Generator().manual_seed(3)
        batches = ShardedBatches(RandomSampler(data, generator=g), 6, True, rank, world)
        loader = DataLoader(data, batch_sampler=batches, generator=g)
        got_by_rank.append([b.tolist() for _ in range(3) for b in loader])
    assert [sum(parts, []) for parts in zip(*got_by_rank, strict=True)] == want


def test_a_rollouts_samples_depend_on_its_seed_not_on_its_batch(tiny_model_dir):
    """Seeded sampling: each row draws the same tokens alone or beside others (so each rank of
    a DDP step draws what one process would), and a different seed draws differently."""
    ctx = BuildContext(resolve_model(str(tiny_model_dir)), layer=2, d_model=64, data_norm=12.0)
    av = build("av", {"variant": "baseline"}, ctx).eval()
    vectors = torch.randn(3, 64, generator=torch.Generator().manual_seed(0)) * 12
    kw = {"max_new_tokens": 6, "temperature": 1.0, "num_samples": 2}
    _, together = av.generate(vectors, seeds=[5, 6, 7], **kw)
    alone = [av.generate(vectors[i : i + 1], seeds=[s], **kw)[1] for i, s in enumerate([5, 6, 7])]
    assert together == sum(alone, [])
    _, other = av.generate(vectors, seeds=[8, 9, 10], **kw)
    assert other != together


def test_a_strategy_that_cannot_run_is_refused_in_one_line():
    small = TrainConfig.model_validate({"devices": 4, "av_sft": {"batch_size": 2}})
    with pytest.raises(NLAError, match=r"av_sft.batch_size 2 is below the 4 ranks"):
        check_strategy(small)
    few = {"devices": 4, "av_sft": {"batch_size": 8, "eval_every": 5, "eval_samples": 3}}
    with pytest.raises(NLAError, match=r"av_sft.eval_samples 3 is below the 4 ranks"):
        check_strategy(TrainConfig.model_validate(few))
    for name in ("fsdp", "deepspeed"):
        with pytest.raises(NLAError, match=f"{name} is not supported yet"):
            check_strategy(TrainConfig(devices=2, strategy=name))
    check_strategy(TrainConfig(devices=2, strategy="ddp"))  # fine


def test_a_launch_that_does_not_match_the_config_is_refused(
    tmp_path, tiny_model_dir, monkeypatch, capsys
):
    """torchrun started 4 processes for a 2-device trial: one line, before anything runs."""
    (tmp_path / "trial.yaml").write_text(
        yaml.safe_dump(tiny_trial_config(tmp_path, tiny_model_dir))
    )
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "test")
    monkeypatch.setenv("WORLD_SIZE", "4")
    code = main(["train", str(tmp_path / "trial.yaml"), "--set", "train.devices=2", "-q"])
    assert code == 2
    assert "4 processes were launched, but train.devices x train.num_nodes is 2" in (
        capsys.readouterr().err
    )
    assert not (tmp_path / "runs").exists()


def test_seeded_sampling_draws_from_the_softmax_at_the_temperature():
    """argmax(logits / T + Gumbel noise) over 20,000 seeds: each token's frequency is its
    softmax(logits / T) probability (a wrong sign or a missing / T would be far off)."""
    scores = torch.tensor([[2.0, 1.0, 0.0, -1.0, 0.5]])
    for temperature in (0.5, 1.0, 2.0):
        want = torch.softmax(scores[0] / temperature, -1)
        picks = torch.tensor(
            [
                int(SeededSampling([seed], temperature, torch.device("cpu"))(None, scores).argmax())
                for seed in range(20_000)
            ]
        )
        freq = torch.bincount(picks, minlength=5).float() / len(picks)
        assert torch.allclose(freq, want, atol=0.012), (temperature, freq, want)


def test_the_weighted_loader_keeps_its_batches():
    """The AR warm start's mix of teacher and AV rows draws the batches it always drew: the
    same as the plain weighted loader it replaced, which took its base seed from torch's RNG."""
    rows, extra = split_rows(10, "t"), split_rows(6, "a")
    module = NLADataModule(None, "ar_sft", 4, seed=2, extra=extra, extra_share=0.5)
    module.rows = rows
    torch.manual_seed(0)
    loader = module.train_dataloader()  # once, as Lightning does; iterated once an epoch
    new = [b["prefixes"] for _ in range(2) for b in loader]
    g = torch.Generator().manual_seed(2)
    weights = torch.cat([torch.full((10,), 0.05), torch.full((6,), 0.5 / 6)])
    old_loader = DataLoader(
        ConcatDataset([_RowsDataset(rows), _RowsDataset(extra)]),
        batch_size=4,
        sampler=WeightedRandomSampler(weights, 16, generator=g),
        drop_last=True,
        collate_fn=collate,
    )
    torch.manual_seed(0)
    old = [b["prefixes"] for _ in range(2) for b in old_loader]
    assert new == old


def test_rl_and_evaluation_score_rollouts_only_through_the_shared_scorer():
    """No stage keeps a private copy of scoring: generation, extraction and the failure
    reward live in rollouts.py; RL and evaluation call `score_rollouts`."""
    scoring = {"quote_rate", "extract_explanation", "centered_cosine", "ORTHOGONAL_MSE"}
    for path in (PACKAGE / "training" / "rl.py", PACKAGE / "evaluation" / "evaluation.py"):
        tree = ast.parse(path.read_text())
        calls = {
            node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            for node in ast.walk(tree)
            if isinstance(node, ast.Call)
        }
        imported = {
            alias.name
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom)
            for alias in node.names
        }
        assert "score_rollouts" in calls, path.name
        assert not calls & {"generate", "extract"}, f"{path.name} generates or extracts itself"
        assert not imported & scoring, f"{path.name} scores itself: {imported & scoring}"


# -- integration: real processes through Lightning's launcher ---------------------------------

RL = {
    "seed": 1234,  # row seeds are hashed: any trial seed fits a generator
    "train.av_sft.batch_size": 5,  # shares of 3 and 2 over two ranks: the weighting matters
    "train.ar_sft.batch_size": 5,
    "train.rl.steps": 2,
    "train.rl.batch_size": 3,
    "train.rl.group_size": 2,
    "train.rl.max_response_tokens": 8,
    "train.rl.eval_every": 1,
    "train.rl.eval_samples": 4,
    "train.rl.temperature": 1.0,
    "train.rl.av_lr": 1e-3,
    "train.rl.ar_lr": 1e-3,
    "train.av_sft.eval_every": 3,  # the held-out NLL gap: sharded, then gathered
    "train.av_sft.eval_samples": 6,
    "train.reuse_warm_start": False,  # each run trains (and saves) its own warm starts
    "mlflow.log_checkpoints": False,
}


def nla_train(tmp: Path, model_dir: Path, *overrides: str, gradients: Path | None = None) -> Path:
    """`nla train` (through the closing script) in its own directory; returns the run dir.
    `gradients`: where rank 0 writes every optimiser step's gradients."""
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "trial.yaml").write_text(yaml.safe_dump(tiny_trial_config(tmp, model_dir, **RL)))
    before = set((tmp / "runs").iterdir()) if (tmp / "runs").is_dir() else set()
    sets = [a for o in overrides for a in ("--set", o)]
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "train", "trial.yaml", "-q", *sets],
        cwd=tmp,
        capture_output=True,
        text=True,
        timeout=3000,  # a hang guard below pytest's (conftest): kills the launch
        # one thread per process on both sides: float sums in another order can flip a
        # near-tie sampled token, and then the runs legitimately part by ~lr
        env={
            **os.environ,
            "PYTHONPATH": str(PACKAGE.parent),
            "OMP_NUM_THREADS": "1",
            **({"NLA_TEST_GRADIENTS": str(gradients)} if gradients else {}),
        },
    )
    errors = [line for line in done.stderr.splitlines() if "Error" in line or "error:" in line]
    assert done.returncode == 0, f"exit {done.returncode}: {errors[-5:]} {done.stderr[-1500:]}"
    (run,) = set((tmp / "runs").iterdir()) - before  # the leader's only: followers write nowhere
    return run


def weights(run: Path, parts: tuple[str, ...] = PARTS) -> dict[str, dict[str, torch.Tensor]]:
    return {part: load_file(run / part / "weights.safetensors") for part in parts}


def flat(tensors: dict[str, torch.Tensor]) -> torch.Tensor:
    return torch.cat([tensors[k].flatten() for k in sorted(tensors)])


def relative_error(want: torch.Tensor, got: torch.Tensor) -> float:
    return float((got - want).norm() / want.norm())


def gradient_errors(one: Path, two: Path) -> list[float]:
    """Per optimiser step (warm starts, then RL's two optimisers in turn): the relative L2
    error of the second launch's gradient against the first's."""
    steps = sorted(p.name for p in one.iterdir())
    assert steps and steps == sorted(p.name for p in two.iterdir()), "different optimiser steps"
    errors = []
    for name in steps:
        a, b = load_file(one / name), load_file(two / name)
        assert a.keys() == b.keys(), f"{name}: different parameters have gradients"
        errors.append(relative_error(flat(a), flat(b)))
    return errors


def rl_update(run: dict, part: str) -> torch.Tensor:
    """What RL changed in `part` (av or ar), as one vector."""
    warm = run[f"{part}_checkpoint"]
    return flat({k: run[f"rl_checkpoint/{part}"][k] - warm[k] for k in warm})


def rl_history(run: Path, key: str) -> list[float]:
    client = MlflowClient(f"sqlite:///{run.parents[1]}/mlflow.db")
    return [m.value for m in sorted(client.get_metric_history(run.name, key), key=lambda m: m.step)]


@pytest.fixture(scope="module")
def two_process_run(tmp_path_factory, tiny_model_dir) -> Path:
    """The issue's command: `nla train CONFIG --set train.devices=2 --set train.strategy=ddp`."""
    tmp = tmp_path_factory.mktemp("ddp2")
    two = ("train.devices=2", "train.strategy=ddp")
    return nla_train(tmp, tiny_model_dir, *two, gradients=tmp / "gradients")


@pytest.mark.integration
def test_two_processes_train_what_one_process_trains(tmp_path, tiny_model_dir, two_process_run):
    one = nla_train(tmp_path / "one", tiny_model_dir, gradients=tmp_path / "gradients")
    errors = gradient_errors(tmp_path / "gradients", two_process_run.parents[1] / "gradients")
    assert len(errors) == 3 + 3 + 2 * 2, "3 AV and 3 AR warm-start steps, then 2 RL steps of two"
    assert max(errors) < GRAD_TOLERANCE, [f"{e:.1e}" for e in errors]
    a, b = weights(one), weights(two_process_run)
    for part in ("av", "ar"):
        want = rl_update(a, part)
        assert float(want.abs().max()) > 1e-4, f"RL must move the {part} for this to mean anything"
        assert relative_error(want, rl_update(b, part)) < UPDATE_TOLERANCE, part
    for key in ("rl/loss/policy", "rl/kl", "rl/reward/mean", "rl/tag_failure_rate"):
        assert rl_history(two_process_run, key) == pytest.approx(rl_history(one, key), abs=1e-5)
    client = MlflowClient(f"sqlite:///{two_process_run.parents[1]}/mlflow.db")
    runs = client.search_runs([client.get_experiment_by_name("tests").experiment_id])
    assert len(runs) == 1, "only rank 0 records the trial"
    assert "eval/roundtrip_fve" in client.get_run(two_process_run.name).data.metrics


@pytest.mark.integration
def test_two_processes_resume_rl_exactly(tmp_path, tiny_model_dir, two_process_run):
    """Stopped after one RL step and resumed on two processes = two steps straight through."""
    two = ("train.devices=2", "train.strategy=ddp")
    half = nla_train(tmp_path / "half", tiny_model_dir, *two, "train.rl.steps=1")
    assert yaml.safe_load((half / "rl_checkpoint" / "rl_state.yaml").read_text())["world_size"] == 2
    assert (half / "rl_checkpoint" / "rng.rank1.safetensors").is_file()  # each rank's RNG
    resumed = nla_train(
        tmp_path / "resumed", tiny_model_dir, *two, f"train.rl.resume_from={half / 'rl_checkpoint'}"
    )
    # RL was the resumed run's first fit (rank 1 started there): its RNG reached rank 0's dir
    assert (resumed / "rl_checkpoint" / "rng.rank1.safetensors").is_file()
    rl = ("rl_checkpoint/av", "rl_checkpoint/ar")  # a resume starts from the RL checkpoint
    a, b = weights(resumed, rl), weights(two_process_run, rl)
    for part in rl:
        worst = max(float((a[part][k] - b[part][k]).abs().max()) for k in a[part])
        assert worst < 1e-6, part
    assert rl_history(resumed, "rl/reward/mean") == pytest.approx(
        rl_history(two_process_run, "rl/reward/mean")[1:], abs=1e-6
    )


@pytest.mark.integration
def test_a_sweep_whose_trials_span_two_processes(tmp_path, tiny_model_dir):
    """`nla sweep` with `train.devices: 2`: rank 1 follows rank 0 from trial to trial (handed
    over at launch, then by broadcast) and exits when the study is done; one MLflow run per
    trial, each with its own sampled configuration."""
    base = tiny_trial_config(tmp_path, tiny_model_dir, **{**RL, "train.devices": 2})
    (tmp_path / "trial.yaml").write_text(yaml.safe_dump(base))
    sweep = {
        "name": "ddp-sweep",
        "base": "trial.yaml",
        "space": {"train.rl.kl_coef": {"low": 0.01, "high": 0.1, "log": True}},
        "n_trials": 2,
        "sampler": {"kind": "random", "seed": 0},
        "pruner": {"kind": "none"},
        "directory": str(tmp_path / "sweep"),
        "mlflow": {"tracking_uri": f"sqlite:///{tmp_path}/mlflow.db", "experiment": "tests"},
    }
    (tmp_path / "sweep.yaml").write_text(yaml.safe_dump(sweep))
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "sweep", "sweep.yaml", "-q"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=3000,  # a hang guard below pytest's (conftest): kills the launch
        env={**os.environ, "PYTHONPATH": str(PACKAGE.parent)},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    runs = sorted((tmp_path / "runs").iterdir())
    assert len(runs) == 2
    kl = {yaml.safe_load((r / "config.yaml").read_text())["train"]["rl"]["kl_coef"] for r in runs}
    assert len(kl) == 2
    for run in runs:
        assert len(rl_history(run, "rl/kl")) == 2  # both RL steps ran, over both ranks


def split_rows(n: int, tag: str = "p") -> SplitRows:
    texts = [f"{tag}{i}" for i in range(n)]
    return SplitRows(np.zeros((n, 4), np.float32), texts, texts, texts)


def test_a_resumed_warm_start_continues_the_data_order(tmp_path):
    """Sampler state: a warm start resumed at step k trains on the batches an uninterrupted run
    trains on from step k, across epoch boundaries, on any number of ranks."""
    rows = split_rows(10)

    def batches(skip: int, rank: int = 0, world: int = 1, n: int = 6) -> list[list[str]]:
        module = NLADataModule(None, "av_sft", 4, seed=1, skip_batches=skip)
        module.rows = rows
        module._ranks = lambda: (rank, world)
        loader, out = module.train_dataloader(), []
        while len(out) < n:  # one pass per epoch, as Lightning iterates it
            out += [b["prefixes"] for b in loader]
        return out[:n]

    straight = batches(0, n=9)
    assert batches(3) == straight[3:9]  # 2 batches an epoch: the resume starts mid-epoch 2
    halves = [batches(3, r, 2) for r in range(2)]
    assert [a + b for a, b in zip(*halves, strict=True)] == straight[3:9]


@pytest.mark.integration
def test_ranks_started_at_rl_take_the_leaders_cache_hits(tmp_path, tiny_model_dir):
    """Both warm starts come from the cache, so RL is the first fit and Lightning starts rank 1
    there: it re-runs the stages before RL and must take rank 0's cache hits and checkpoint
    directory (handed over in the environment), not decide for itself."""
    two = ("train.devices=2", "train.reuse_warm_start=true")
    first = nla_train(tmp_path, tiny_model_dir, *two)
    second = nla_train(tmp_path, tiny_model_dir, *two)  # same dataset, same cache
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    metrics = client.get_run(second.name).data.metrics
    assert metrics["av_sft/cache_hit"] == metrics["ar_sft/cache_hit"] == 1.0
    assert (second / "rl_checkpoint" / "rng.rank1.safetensors").is_file()
    rl = ("rl_checkpoint/av", "rl_checkpoint/ar")
    a, b = weights(first, rl), weights(second, rl)
    assert max(float((a[p][k] - b[p][k]).abs().max()) for p in rl for k in a[p]) < 1e-6
