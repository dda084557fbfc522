"""The closed-form AR readout (train.ar_sft.ridge), on the tiny model."""

from __future__ import annotations

import pytest
import torch

from nla_variants.common.errors import NLAError
from nla_variants.core.vectors import normalized_mse
from nla_variants.target import resolve_model
from nla_variants.training.readout import head_features, refit_head
from nla_variants.training.warm_start_config import ARSFTConfig
from nla_variants.variants.registry import BuildContext, build

WORDS = ["harbor", "python", "table", "river", "price", "garden", "engine", "winter"]


@pytest.fixture(scope="module")
def ctx(tiny_model_dir) -> BuildContext:
    return BuildContext(resolve_model(str(tiny_model_dir)), layer=3, d_model=64, data_norm=12.0)


def _rows(n: int) -> tuple[list[str], torch.Tensor]:
    """Explanations naming one of 8 words, each word with its own direction plus noise: a
    readout that reads the word explains most of the variance."""
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(len(WORDS), 64, generator=g) * 10
    which = torch.randint(len(WORDS), (n,), generator=g)
    texts = [f"The text is about the {WORDS[i]}." for i in which.tolist()]
    return texts, centres[which] + torch.randn(n, 64, generator=g)


def test_the_refit_head_is_the_least_squares_readout_and_beats_the_identity(ctx):
    ar = build("ar", {"variant": "baseline"}, ctx).eval()
    texts, vecs = _rows(96)
    with torch.no_grad():
        before = normalized_mse(ar(texts), vecs).mean()
    figures = refit_head(ar, texts, vecs, None, penalty=1e-3, batch_size=32)
    with torch.no_grad():
        after = normalized_mse(ar(texts), vecs).mean()
    assert figures["ridge_rows"] == 96
    assert after < 0.5 * before
    assert figures["ridge_train_fve"] > 0.5
    # the head reads exactly what head_features returns, and the fit is stationary there:
    # the residual of the fit is orthogonal to the centred features (normal equations)
    feats = head_features(ar, texts, None, 32).double()
    w, b = ar.head.weight.double(), ar.head.bias.double()
    resid = feats @ w.T + b - torch.nn.functional.normalize(vecs.double(), dim=-1)
    grad = (feats - feats.mean(0)).T @ resid
    scale = 1e-3 * ((feats - feats.mean(0)) ** 2).sum() / 64
    torch.testing.assert_close(grad, -scale * w.T, atol=1e-3, rtol=1e-2)


def test_a_stronger_penalty_shrinks_the_head(ctx):
    texts, vecs = _rows(64)
    norms = []
    for penalty in (1e-3, 10.0):
        ar = build("ar", {"variant": "baseline"}, ctx)
        refit_head(ar, texts, vecs, None, penalty=penalty, batch_size=64)
        norms.append(float(ar.head.weight.detach().norm()))
    assert norms[1] < norms[0]


def test_an_ar_without_a_linear_head_is_refused(ctx):
    ar = build("ar", {"variant": "small", "head": "lowrank", "head_rank": 4}, ctx)
    texts, vecs = _rows(8)
    with pytest.raises(NLAError, match="linear head"):
        refit_head(ar, texts, vecs, None, penalty=0.1)


def test_steps_zero_needs_a_ridge_readout():
    assert ARSFTConfig(steps=0, ridge=0.1).steps == 0
    with pytest.raises(ValueError, match="trains nothing"):
        ARSFTConfig(steps=0)


def test_the_head_runs_in_fp32_under_bf16_autocast(ctx):
    """A fitted head cancels the features' mean against its bias; bf16 would not survive that
    on a real model (the quickstart's teacher FVE fell from 0.40 to -1.66 before this)."""
    ar = build("ar", {"variant": "baseline"}, ctx).eval()
    texts, vecs = _rows(32)
    cast = lambda: torch.autocast("cpu", dtype=torch.bfloat16)  # noqa: E731
    refit_head(ar, texts, vecs, None, penalty=1e-3, batch_size=32, autocast=cast)
    feats = head_features(ar, texts, None, 32, autocast=cast)
    with torch.no_grad(), cast():
        out = ar(texts)
    assert out.dtype == torch.float32
    expected = feats @ ar.head.weight.detach().T + ar.head.bias.detach()
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
