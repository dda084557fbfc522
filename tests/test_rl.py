"""RL stage on the tiny model: one GRPO step, failed-tag handling, non-finite guard, resume."""

from __future__ import annotations

import copy
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from mlflow.tracking import MlflowClient

from nla_variants.config import TrialConfig, load_config
from nla_variants.core.ridge import Ridge
from nla_variants.core.vectors import (
    ORTHOGONAL_MSE,
    centered_cosine,
    mean_direction,
    normalize,
    normalized_mse,
)
from nla_variants.data.store import SplitRows
from nla_variants.target import resolve_model
from nla_variants.training.experiment import run_trial
from nla_variants.training.readout import head_features
from nla_variants.training.rl import NonFiniteError, RLModule, steps_loader
from nla_variants.training.rl_config import RLConfig
from nla_variants.variants.av.baseline import BaselineAV
from nla_variants.variants.registry import BuildContext, build
from nla_variants.variants.testing import closing_generate

REAL_GENERATE = BaselineAV.generate


@pytest.fixture
def closing(monkeypatch):
    monkeypatch.setattr(BaselineAV, "real_generate", REAL_GENERATE, raising=False)
    monkeypatch.setattr(BaselineAV, "generate", closing_generate)


@pytest.fixture(scope="module")
def ctx(tiny_model_dir) -> BuildContext:
    return BuildContext(resolve_model(str(tiny_model_dir)), layer=2, d_model=64, data_norm=12.0)


def rows(n: int = 8) -> SplitRows:
    v = np.random.default_rng(0).normal(size=(n, 64)).astype(np.float32) * 12
    return SplitRows(
        v, [None] * n, [f"prefix {i} w1 w2 w3" for i in range(n)], [f"e{i}" for i in range(n)]
    )


def make_module(ctx, cfg: RLConfig) -> RLModule:
    torch.manual_seed(0)
    av = build("av", {"injection": {"scale": 8.0}, "max_response_tokens": 16}, ctx).train()
    ar = build("ar", {}, ctx).train()
    data = rows()
    ridge_rows = None
    if cfg.ar_ridge is not None:  # the refit starts from 6 "teacher" rows
        texts = [f"w{i} w{i + 1}" for i in range(6)]
        ridge_rows = (head_features(ar, texts, None, 8), torch.from_numpy(data.vectors[:6]))
    mean = mean_direction(torch.from_numpy(data.vectors))
    return RLModule(av, ar, copy.deepcopy(av), data, mean, cfg, seed=0, ridge_rows=ridge_rows)


def fit(module: RLModule, steps: int, max_steps: int | None = None) -> None:
    import lightning as L

    trainer = L.Trainer(
        max_steps=steps if max_steps is None else max_steps,
        accelerator="cpu",
        logger=False,
        max_epochs=-1 if max_steps is None else 1,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(module, steps_loader(module.step_no, module.step_no + steps))


def snapshot(m: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in m.named_parameters()}


def changed(before: dict, m: torch.nn.Module) -> bool:
    return any(not torch.equal(before[k], v) for k, v in m.named_parameters())


def test_one_rl_step_updates_av_and_ar_and_not_the_reference(ctx, closing):
    cfg = RLConfig(
        steps=1,
        batch_size=2,
        group_size=4,
        av_lr=1e-3,
        ar_lr=1e-3,
        max_response_tokens=8,
        eval_every=0,
    )
    module = make_module(ctx, cfg)
    av0, ar0, ref0 = snapshot(module.av), snapshot(module.ar), snapshot(module.reference)
    fit(module, 1)
    assert changed(av0, module.av) and changed(ar0, module.ar)
    assert not changed(ref0, module.reference)
    h = module.history[-1]
    assert 0 < h["tag_failure_rate"] < 1  # closing_generate closes the even-first-token samples
    for key in (
        "reward/mean",
        "reward/std",
        "batch_fve",
        "kl",
        "grad_norm/av",
        "grad_norm/ar",
        "time/generate_s",
        "time/score_s",
        "time/train_s",
        "response_tokens",
    ):
        assert np.isfinite(h[key]), key


def test_failed_tags_get_the_orthogonal_reward_and_no_ar_training(ctx, monkeypatch):
    cfg = RLConfig(steps=1, batch_size=2, group_size=4, max_response_tokens=8, eval_every=0)
    module = make_module(ctx, cfg)
    ro, rewards = module.rollout(torch.from_numpy(module.rows.vectors[:2]))
    assert not bool(ro.ok.any())  # a random tiny model never closes its tag
    assert torch.equal(rewards, torch.full((8,), -ORTHOGONAL_MSE))
    assert all(ro.cut)
    seen = []
    monkeypatch.setattr(module.ar, "loss", lambda *a, **k: seen.append(a))
    ar0 = snapshot(module.ar)
    fit(module, 1)
    assert not seen and not changed(ar0, module.ar)


def test_the_contrast_term_adds_the_mse_to_other_rows_and_spares_failed_samples(ctx, closing):
    """rl.contrast: reward = -MSE(own vector) + contrast x mean MSE(other rl rows' vectors); a
    failed sample keeps the orthogonal reward (nothing to compare)."""
    plain = make_module(ctx, RLConfig(steps=1, batch_size=2, group_size=4, eval_every=0))
    cfg = RLConfig(steps=1, batch_size=2, group_size=4, eval_every=0, contrast=0.5)
    module = make_module(ctx, cfg)
    v = torch.from_numpy(module.rows.vectors[:2])
    ro, rewards = module.rollout(v, seeds=[1, 2])
    base, _ = plain.rollout(v, seeds=[1, 2])
    ok = ro.ok
    assert bool(ok.any()) and not bool(ok.all())
    assert torch.equal(ro.mse, base.mse)
    assert torch.equal(rewards[~ok], torch.full((int((~ok).sum()),), -ORTHOGONAL_MSE))
    bonus = rewards[ok] + ro.mse[ok]
    assert bool((bonus > 0).all()) and bool((bonus <= 0.5 * 4).all())
    with torch.no_grad():
        pred = module.ar([e for e in ro.explanations if e is not None]).float()
    torch.testing.assert_close(bonus, 0.5 * module._mse_to_other_rows(pred), atol=1e-5, rtol=1e-4)


def test_the_centered_cosine_reward_pays_for_the_row_not_for_the_mean_direction(ctx, closing):
    """rl.reward: centered_cosine scores each closed sample by the cosine of its prediction and
    its target after subtracting the mean direction (the target itself 1, the mean direction ~0
    although its MSE reward beats a random row's); a failed sample gets -1."""
    cfg = RLConfig(steps=1, batch_size=2, group_size=4, eval_every=0, reward="centered_cosine")
    module = make_module(ctx, cfg)
    v = torch.from_numpy(module.rows.vectors[:2])
    ro, rewards = module.rollout(v, seeds=[1, 2])
    ok = ro.ok
    assert bool(ok.any()) and not bool(ok.all())
    assert torch.equal(rewards[~ok], torch.full((int((~ok).sum()),), -1.0))
    with torch.no_grad():
        pred = module.ar([e for e in ro.explanations if e is not None]).float()
    mean = module.train_mean
    want = centered_cosine(pred, ro.targets[ok], mean)
    torch.testing.assert_close(rewards[ok], want)
    targets = torch.from_numpy(module.rows.vectors).float()
    assert torch.allclose(centered_cosine(targets, targets, mean), torch.ones(len(targets)))
    hedge = mean.expand_as(targets)
    assert float(centered_cosine(hedge, targets, mean).abs().mean()) < 0.2
    other = targets.roll(1, 0)
    assert float(normalized_mse(hedge, targets).mean()) < float(
        normalized_mse(other, targets).mean()
    )


def test_the_ridge_refit_moves_only_the_ar_head_to_the_readout_of_all_rows_so_far(ctx, closing):
    """rl.ar_ridge: the AR's body stays fixed; every ar_refit_every steps its head becomes the
    ridge readout of the starting rows plus the features of every closed rollout so far."""
    cfg = RLConfig(
        steps=2, batch_size=2, group_size=4, max_response_tokens=8, eval_every=0,
        train_ar=False, ar_ridge=0.01, ar_refit_every=2,
    )  # fmt: skip
    module = make_module(ctx, cfg)
    body = {k: v for k, v in snapshot(module.ar).items() if not k.startswith("head.")}
    head0 = module.ar.head.weight.detach().clone()
    fit(module, 1)
    assert torch.equal(module.ar.head.weight, head0)  # not yet: every 2 steps
    fit(module, 1)
    assert not torch.equal(module.ar.head.weight, head0)
    assert all(torch.equal(v, dict(module.ar.named_parameters())[k]) for k, v in body.items())
    feats, vectors = module.ridge_rows()
    closed = sum(round((1 - h["tag_failure_rate"]) * 8) for h in module.history)
    assert 0 < closed < 16 and len(feats) == len(vectors) == 6 + closed  # + the closed samples
    weight, bias = Ridge(feats).solve(normalize(vectors), 0.01)
    torch.testing.assert_close(module.ar.head.weight.detach(), weight.T.float())
    torch.testing.assert_close(module.ar.head.bias.detach(), bias.float())
    assert module.history[-1]["ridge_rows"] == 6 + closed and "loss/ar" not in module.history[-1]


def test_the_ridge_refit_needs_a_fixed_ar():
    assert RLConfig(train_ar=False, ar_ridge=0.1).ar_ridge == 0.1
    with pytest.raises(ValueError, match="train_ar: false"):
        RLConfig(ar_ridge=0.1)


def test_only_closed_explanations_train_the_ar(ctx, closing, monkeypatch):
    cfg = RLConfig(steps=1, batch_size=2, group_size=4, max_response_tokens=8, eval_every=0)
    module = make_module(ctx, cfg)
    real_loss = module.ar.loss
    seen = []

    def spy(explanations, vectors, sources=None):
        seen.append(list(explanations))
        return real_loss(explanations, vectors, sources)

    monkeypatch.setattr(module.ar, "loss", spy)
    fit(module, 1)
    closed = round((1 - module.history[-1]["tag_failure_rate"]) * 8)
    assert len(seen) == 1 and len(seen[0]) == closed and all(e.startswith("w") for e in seen[0])


def test_non_finite_rewards_skip_steps_then_fail_the_trial(ctx, closing, monkeypatch):
    cfg = RLConfig(
        steps=5, batch_size=2, group_size=2, max_response_tokens=8, eval_every=0, max_nonfinite=2
    )
    module = make_module(ctx, cfg)
    monkeypatch.setattr(
        type(module.ar), "forward", lambda self, e, s=None: torch.full((len(e), 64), float("nan"))
    )
    av0 = snapshot(module.av)
    with pytest.raises(NonFiniteError, match="2 consecutive RL steps"):
        fit(module, 5)
    assert module.skipped == 2 and not changed(av0, module.av)


def test_warm_up_counts_each_optimisers_own_updates(ctx, monkeypatch):
    """No explanation closes on the first step, so the AR cannot train there. Its schedule
    used to advance anyway (torch warned `lr_scheduler.step()` before `optimizer.step()`): the
    AR's first update ran at the second warm-up value. Now each schedule counts its own
    optimiser's updates, and nothing warns."""
    calls = []

    def closes_from_the_second_call(self, vectors, *args, **kwargs):
        calls.append(1)
        texts, tokens = REAL_GENERATE(self, vectors, *args, **kwargs)
        if len(calls) == 1:
            return texts, tokens
        closed = [f"<explanation>\nw{len(t)} w{i}\n</explanation>" for i, t in enumerate(tokens)]
        return closed, [self.tokenizer(t, add_special_tokens=False)["input_ids"] for t in closed]

    monkeypatch.setattr(BaselineAV, "generate", closes_from_the_second_call)
    lr = 1e-3
    cfg = RLConfig(
        steps=3,
        batch_size=2,
        group_size=2,
        av_lr=lr,
        ar_lr=lr,
        warmup_steps=4,
        max_response_tokens=8,
        eval_every=0,
    )
    module = make_module(ctx, cfg)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=r".*lr_scheduler\.step\(\)` before")
        fit(module, 3, max_steps=-1)  # global_step counts both optimisers' steps: one epoch
    assert len(module.history) == 3
    first, *rest = module.history
    assert "lr/ar" not in first and first["tag_failure_rate"] == 1.0  # the AR did not train
    assert [h["lr/ar"] for h in rest] == pytest.approx([lr / 4, 2 * lr / 4])
    assert [h["lr/av"] for h in module.history] == pytest.approx([lr / 4, 2 * lr / 4, 3 * lr / 4])


@pytest.fixture
def rl_trial(trial_config):
    """`rl_trial(tmp, model_dir, steps, **dotted)`: the metrics of a tiny trial with `steps` RL
    steps (a resume restores each schedule's position, so there are warm-up steps)."""

    def run(tmp: Path, model_dir: Path, steps: int, **extra) -> dict:

        overrides = [
            f"train.rl.steps={steps}",
            "train.rl.batch_size=2",
            "train.rl.group_size=2",
            "train.rl.max_response_tokens=8",
            "train.rl.eval_every=0",
            "train.rl.av_lr=1e-3",
            "train.rl.ar_lr=1e-3",
            "train.rl.warmup_steps=3",  # a resume must restore each schedule's position
            "train.av_sft.steps=1",
            "train.ar_sft.steps=1",
            "eval.max_samples=2",
            "mlflow.log_checkpoints=false",
        ]
        overrides += [f"{k}={v}" for k, v in extra.items()]
        tmp.mkdir(exist_ok=True)
        cfg = load_config(trial_config(tmp, model_dir), TrialConfig, overrides)
        return run_trial(cfg, progress=False)

    return run


def test_resumed_rl_matches_an_uninterrupted_run(tmp_path, tiny_model_dir, closing, rl_trial):
    first = rl_trial(tmp_path / "a", tiny_model_dir, 2)
    ckpt = tmp_path / "a" / "runs" / first["run_id"] / "rl_checkpoint"
    resumed = rl_trial(tmp_path / "a", tiny_model_dir, 4, **{"train.rl.resume_from": ckpt})
    straight = rl_trial(tmp_path / "c", tiny_model_dir, 4)
    assert resumed["rl/steps"] == straight["rl/steps"] == 4

    def history(tmp: Path, run_id: str, key: str) -> list[float]:
        client = MlflowClient(f"sqlite:///{tmp}/mlflow.db")
        return [
            m.value for m in sorted(client.get_metric_history(run_id, key), key=lambda m: m.step)
        ]

    for key in ("rl/reward/mean", "rl/loss/ar", "rl/kl", "rl/response_tokens"):
        tail = history(tmp_path / "c", straight["run_id"], key)[2:]
        assert history(tmp_path / "a", resumed["run_id"], key) == pytest.approx(tail, abs=1e-5)
    assert resumed["eval/roundtrip_fve"] == pytest.approx(straight["eval/roundtrip_fve"], abs=1e-5)


def test_a_resumed_ridge_refit_matches_an_uninterrupted_run(
    tmp_path, tiny_model_dir, closing, rl_trial
):
    """The refit's rows travel in the RL checkpoint: a resumed run refits on the same rows."""
    ridge = {"train.rl.train_ar": "false", "train.rl.ar_ridge": 0.01, "train.rl.ar_refit_every": 1}
    first = rl_trial(tmp_path / "a", tiny_model_dir, 2, **ridge)
    ckpt = tmp_path / "a" / "runs" / first["run_id"] / "rl_checkpoint"
    resumed = rl_trial(tmp_path / "a", tiny_model_dir, 4, **ridge, **{"train.rl.resume_from": ckpt})
    straight = rl_trial(tmp_path / "c", tiny_model_dir, 4, **ridge)
    client = {t: MlflowClient(f"sqlite:///{tmp_path / t}/mlflow.db") for t in ("a", "c")}
    for key in ("rl/ridge_rows", "rl/ridge_train_fve", "rl/reward/mean"):
        hist = {
            t: [m.value for m in sorted(client[t].get_metric_history(r["run_id"], key), key=lambda m: m.step)]
            for t, r in (("a", resumed), ("c", straight))
        }  # fmt: skip
        assert hist["a"] == pytest.approx(hist["c"][2:], abs=1e-5), key
    assert resumed["eval/roundtrip_fve"] == pytest.approx(straight["eval/roundtrip_fve"], abs=1e-5)
