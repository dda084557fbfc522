"""Core math and text helpers: normalisation, normalised MSE, FVE, explanation tags, quote rate,
length statistics and activation injection. Pure tensor code, no model loading."""

from __future__ import annotations

import math

import pytest
import torch

from nla_variants.common.errors import NLAError
from nla_variants.core.injection import InjectionConfig, Injector, center, resolve_scale, write
from nla_variants.core.text import extract_explanation, length_stats, quote_rate
from nla_variants.core.vectors import (
    ORTHOGONAL_MSE,
    baseline_mse,
    fve,
    fve_of,
    mean_direction,
    normalize,
    normalized_mse,
)

# -- normalize ------------------------------------------------------------------------------------


@pytest.mark.parametrize("scale", [1.0, 0.5, 8.0])
def test_normalize_gives_requested_norm_and_keeps_direction(scale):
    x = torch.randn(5, 7, generator=torch.Generator().manual_seed(0)) * 3
    y = normalize(x, scale)
    assert y.shape == x.shape and y.dtype == x.dtype
    torch.testing.assert_close(y.norm(dim=-1), torch.full((5,), scale))
    torch.testing.assert_close(torch.cosine_similarity(x, y, dim=-1), torch.ones(5))
    # Same direction, positive multiple: y = c * x with c > 0 per row.
    ratio = y / x
    torch.testing.assert_close(ratio, ratio[:, :1].expand_as(ratio))
    assert bool((ratio > 0).all())


def test_normalize_hand_computed():
    y = normalize(torch.tensor([[3.0, 4.0]]), scale=10.0)
    torch.testing.assert_close(y, torch.tensor([[6.0, 8.0]]))


def test_normalize_bf16_returns_bf16():
    x = (torch.randn(4, 64, generator=torch.Generator().manual_seed(1)) * 50).to(torch.bfloat16)
    y = normalize(x, 2.0)
    assert y.dtype == torch.bfloat16
    torch.testing.assert_close(y.float().norm(dim=-1), torch.full((4,), 2.0), rtol=1e-2, atol=0)
    cos = torch.cosine_similarity(x.float(), y.float(), dim=-1)
    assert bool((cos > 0.999).all())


@pytest.mark.parametrize("x", [torch.zeros(2, 3), torch.full((2, 3), 1e-30)])
def test_normalize_zero_ish_vectors_have_no_nan(x):
    y = normalize(x, 5.0)
    assert torch.isfinite(y).all()
    assert bool((y.norm(dim=-1) <= 5.0 + 1e-6).all())


def test_normalize_zero_vector_bf16_no_nan():
    y = normalize(torch.zeros(3, 8, dtype=torch.bfloat16))
    assert y.dtype == torch.bfloat16 and torch.isfinite(y.float()).all()


# -- normalized_mse -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pred", "target", "expected"),
    [
        ([1.0, 0.0], [0.0, 1.0], 2.0),  # orthogonal
        ([1.0, 0.0], [-1.0, 0.0], 4.0),  # opposite
        ([1.0, 2.0, 3.0], [1.0, 2.0, 3.0], 0.0),  # identical
        ([1.0, 0.0], [1.0, 1.0], 2.0 - math.sqrt(2.0)),  # 45 degrees: 2(1 - 1/sqrt 2)
        ([1.0, 0.0, 0.0], [0.0, 0.0, -2.0], 2.0),  # orthogonal in 3D, target not unit
        ([1.0, 1.0, 0.0], [1.0, 0.0, 0.0], 2.0 - math.sqrt(2.0)),
        ([0.0, 3.0], [0.0, -0.1], 4.0),
    ],
)
def test_normalized_mse_hand_computed(pred, target, expected):
    mse = normalized_mse(torch.tensor([pred]), torch.tensor([target]))
    assert mse.shape == (1,)
    assert mse.item() == pytest.approx(expected, abs=1e-6)


def test_orthogonal_constant_matches():
    assert normalized_mse(torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])).item() == (
        pytest.approx(ORTHOGONAL_MSE)
    )


def test_normalized_mse_is_two_one_minus_cos_and_scale_invariant():
    g = torch.Generator().manual_seed(2)
    a, b = torch.randn(16, 9, generator=g), torch.randn(16, 9, generator=g)
    mse = normalized_mse(a, b)
    torch.testing.assert_close(mse, 2 * (1 - torch.cosine_similarity(a, b, dim=-1)))
    assert bool(((mse >= 0) & (mse <= 4 + 1e-6)).all())
    torch.testing.assert_close(normalized_mse(a * 17.0, b), mse)
    torch.testing.assert_close(normalized_mse(a, b * 0.003), mse)
    torch.testing.assert_close(normalized_mse(a * 0.5, b * 40.0), mse)
    # bf16 inputs are computed in fp32 and give an fp32 result
    assert normalized_mse(a.bfloat16(), b.bfloat16()).dtype == torch.float32


# -- FVE ------------------------------------------------------------------------------------------

D = 16


def _draw(n: int, seed: int) -> torch.Tensor:
    """Vectors with a shared mean direction plus isotropic noise (the same distribution for every
    seed)."""
    g = torch.Generator().manual_seed(seed)
    mu = torch.zeros(D)
    mu[0], mu[1] = 2.0, 1.0
    return mu + torch.randn(n, D, generator=g)


@pytest.fixture(scope="module")
def fve_data():
    train, targets = _draw(20000, seed=10), _draw(4000, seed=11)
    return train, targets, mean_direction(train)


def test_mean_direction_is_mean_of_unit_vectors(fve_data):
    train, _, mean = fve_data
    assert mean.shape == (D,)
    torch.testing.assert_close(mean, (train / train.norm(dim=-1, keepdim=True)).mean(0))
    assert 0 < mean.norm().item() < 1


def test_fve_of_predicting_the_training_mean_is_zero(fve_data):
    train, targets, mean = fve_data
    pred = mean.expand_as(targets)
    assert fve_of(pred, targets, mean) == pytest.approx(0.0, abs=1e-6)
    # Against the targets' own mean direction as the baseline: the training mean, drawn from the
    # same distribution, is (nearly) as good.
    own = fve(normalized_mse(pred, targets), baseline_mse(targets, mean_direction(targets)))
    assert abs(own) < 0.02


def test_fve_perfect_prediction_is_one(fve_data):
    _, targets, mean = fve_data
    assert fve_of(targets, targets, mean) == pytest.approx(1.0, abs=1e-6)
    assert fve_of(targets * 3.5, targets, mean) == pytest.approx(1.0, abs=1e-6)


def test_fve_noisy_prediction_between_zero_and_one(fve_data):
    _, targets, mean = fve_data
    g = torch.Generator().manual_seed(12)
    small = fve_of(targets + 0.3 * torch.randn(targets.shape, generator=g), targets, mean)
    large = fve_of(targets + 1.0 * torch.randn(targets.shape, generator=g), targets, mean)
    assert 0.0 < large < small < 1.0


def test_fve_worse_than_mean_is_negative(fve_data):
    _, targets, mean = fve_data
    assert fve_of(-mean.expand_as(targets), targets, mean) < 0
    assert fve_of(-targets, targets, mean) < 0
    g = torch.Generator().manual_seed(13)
    assert fve_of(torch.randn(targets.shape, generator=g), targets, mean) < 0


def test_fve_of_agrees_with_fve_of_mses(fve_data):
    _, targets, mean = fve_data
    g = torch.Generator().manual_seed(14)
    pred = targets + 0.7 * torch.randn(targets.shape, generator=g)
    expected = fve(normalized_mse(pred, targets), baseline_mse(targets, mean))
    assert fve_of(pred, targets, mean) == pytest.approx(expected, abs=1e-7)
    torch.testing.assert_close(
        baseline_mse(targets, mean), normalized_mse(mean.expand_as(targets), targets)
    )


def test_fve_hand_computed():
    assert fve(torch.tensor([1.0, 1.0]), torch.tensor([2.0, 2.0])) == pytest.approx(0.5)
    assert fve(torch.tensor([0.0, 2.0]), torch.tensor([1.0, 3.0])) == pytest.approx(0.5)
    assert fve(torch.tensor([3.0]), torch.tensor([1.0])) == pytest.approx(-2.0)
    assert isinstance(fve(torch.tensor([1.0]), torch.tensor([1.0])), float)


# -- extract_explanation --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<explanation>\n  the cat  \n</explanation>", "the cat"),
        ("prefix <explanation>body</explanation> suffix", "body"),
        ("<explanation>a\nb</explanation>", "a\nb"),
        ("<explanation>never closed", None),
        ("no open tag</explanation>", None),
        ("no tags at all", None),
        ("", None),
        ("<explanation></explanation>", None),
        ("<explanation>  \n\t </explanation>", None),
        ("<explanation>first</explanation><explanation>second</explanation>", "first"),
        ("<explanation>first</explanation> junk </explanation>", "first"),
        ("</explanation><explanation>after</explanation>", "after"),
    ],
)
def test_extract_explanation(text, expected):
    assert extract_explanation(text) == expected


def test_extract_explanation_custom_tags():
    assert extract_explanation("[[ hi ]] [[ no ]]", "[[", "]]") == "hi"
    assert extract_explanation("<e>x</e>", "<a>", "</a>") is None
    assert extract_explanation("<a>x", "<a>", "</a>") is None
    # The default tags are not recognised when custom ones are given.
    assert extract_explanation("<explanation>x</explanation>", "<a>", "</a>") is None


# -- quote_rate -----------------------------------------------------------------------------------

EXPLANATION = "the cat sat on the mat"
SOURCE = "a cat sat on a rug"


def test_quote_rate_hand_computed_bigrams():
    # bigrams: the-cat, cat-sat*, sat-on*, on-the, the-mat -> 2 / 5 in the source
    assert quote_rate(EXPLANATION, SOURCE, n=2) == pytest.approx(2 / 5)


def test_quote_rate_hand_computed_trigrams():
    # trigrams: the-cat-sat, cat-sat-on*, sat-on-the, on-the-mat -> 1 / 4 (and n=3 is default)
    assert quote_rate(EXPLANATION, SOURCE, n=3) == pytest.approx(1 / 4)
    assert quote_rate(EXPLANATION, SOURCE) == pytest.approx(1 / 4)


def test_quote_rate_short_explanation_is_zero():
    assert quote_rate("cat sat", "cat sat on", n=3) == 0.0
    assert quote_rate("", "anything here at all", n=2) == 0.0
    assert quote_rate("cat", "cat", n=2) == 0.0


def test_quote_rate_full_quote_is_one():
    source = "Yesterday the cat sat on the mat all day long."
    assert quote_rate(EXPLANATION, source, n=3) == 1.0
    assert quote_rate(EXPLANATION, EXPLANATION, n=2) == 1.0
    assert quote_rate("cat", "cat", n=1) == 1.0


def test_quote_rate_case_and_punctuation_insensitive():
    assert quote_rate("The CAT, sat... ON the mat!", "the cat sat on the mat", n=3) == 1.0
    assert quote_rate("the cat sat on the mat", "THE CAT; SAT -- ON (the) Mat?", n=2) == 1.0


def test_quote_rate_no_overlap_is_zero():
    assert quote_rate("dogs bark loudly at night", SOURCE, n=2) == 0.0


# -- length_stats ---------------------------------------------------------------------------------


def test_length_stats_small_list():
    stats = length_stats(["one two three", "a", "x, y!", "four words go here"])
    # word counts 3, 1, 2, 4
    assert stats == {"mean": 2.5, "median": 2.5, "max": 4.0}
    assert all(isinstance(v, float) for v in stats.values())
    assert length_stats(["a b", "c", "d e f"]) == {"mean": 2.0, "median": 2.0, "max": 3.0}


def test_length_stats_empty():
    assert length_stats([]) == {"mean": 0.0, "median": 0.0, "max": 0.0}


# -- injection ------------------------------------------------------------------------------------

PH = 7  # placeholder token id


def _ids_and_hidden(ids: list[list[int]], d: int = 4, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    input_ids = torch.tensor(ids)
    hidden = torch.randn(*input_ids.shape, d, generator=g)
    return input_ids == PH, hidden


def _slots(vectors: torch.Tensor) -> torch.Tensor:
    return vectors if vectors.dim() == 3 else vectors.unsqueeze(1)


def test_write_replaces_exactly_placeholder_positions():
    mask, hidden = _ids_and_hidden([[1, 2, PH, 3, 4], [PH, 5, 6, 1, 2]])
    vectors = torch.tensor([[3.0, 0.0, 4.0, 0.0], [0.0, -1.0, 0.0, 0.0]])
    out = write(hidden, mask, _slots(vectors), "replace", 2.5)
    assert out.shape == hidden.shape and out.dtype == hidden.dtype
    torch.testing.assert_close(out[~mask], hidden[~mask])
    torch.testing.assert_close(out[0, 2], torch.tensor([1.5, 0.0, 2.0, 0.0]))
    torch.testing.assert_close(out[1, 0], torch.tensor([0.0, -2.5, 0.0, 0.0]))
    injected = out[mask]
    torch.testing.assert_close(torch.cosine_similarity(injected, vectors, dim=-1), torch.ones(2))
    # The input is not modified in place.
    assert not torch.equal(hidden[mask], injected)


def test_write_add_and_match_scale():
    mask, hidden = _ids_and_hidden([[1, PH, 2], [PH, 3, 4]], d=16)
    vectors = torch.randn(2, 16, generator=torch.Generator().manual_seed(5)) * 100
    before = hidden[mask]
    added = write(hidden, mask, _slots(vectors), "add", None)[mask]
    # add at `match`: the vector's direction at the norm of what was there, added to it
    delta = added - before
    torch.testing.assert_close(delta.norm(dim=-1), before.norm(dim=-1))
    torch.testing.assert_close(torch.cosine_similarity(delta, vectors, dim=-1), torch.ones(2))
    replaced = write(hidden, mask, _slots(vectors), "replace", None)[mask]
    torch.testing.assert_close(replaced.norm(dim=-1), before.norm(dim=-1))


def test_write_multiple_placeholders_in_order():
    mask, hidden = _ids_and_hidden([[1, PH, PH, 2, PH], [PH, PH, PH, 3, 4]], d=3)
    vectors = torch.tensor(
        [
            [[1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 3.0]],
            [[0.0, 0.0, -1.0], [0.0, -1.0, 0.0], [-1.0, 0.0, 0.0]],
        ]
    )
    out = write(hidden, mask, vectors, "replace", 1.0)
    positions = [[1, 2, 4], [0, 1, 2]]
    for b in range(2):
        for slot, t in enumerate(positions[b]):
            torch.testing.assert_close(out[b, t], normalize(vectors[b, slot]))
    torch.testing.assert_close(out[~mask], hidden[~mask])


def test_write_bf16_hidden_states():
    mask, hidden = _ids_and_hidden([[1, PH, 2]], d=8)
    hidden = hidden.bfloat16()
    out = write(hidden, mask, _slots(torch.randn(1, 8) * 30), "replace", 4.0)
    assert out.dtype == torch.bfloat16
    assert out[0, 1].float().norm().item() == pytest.approx(4.0, rel=1e-2)
    assert torch.equal(out[0, 0], hidden[0, 0]) and torch.equal(out[0, 2], hidden[0, 2])


@pytest.mark.parametrize(
    ("ids", "k"),
    [
        ([[1, PH, 2], [1, 2, 3]], 1),  # missing in a row
        ([[1, PH, 2], [PH, 2, PH]], 1),  # duplicated in a row
        ([[1, 2, 3], [4, 5, 6]], 1),  # missing everywhere
        ([[PH, PH, 1], [PH, 1, 2]], 2),  # k=2 but one row has one
        ([[PH, PH, PH], [PH, PH, 1]], 2),  # k=2 but one row has three
    ],
)
def test_write_wrong_placeholder_count_raises(ids, k):
    mask, hidden = _ids_and_hidden(ids)
    with pytest.raises(RuntimeError, match="placeholder"):
        write(hidden, mask, torch.randn(2, k, 4), "replace", 1.0)


def test_write_gradients_flow_to_vectors_and_hidden_states():
    mask, hidden = _ids_and_hidden([[1, PH, 2, 3], [PH, 4, 5, 6]], d=6)
    hidden.requires_grad_(True)
    vectors = torch.randn(2, 6, generator=torch.Generator().manual_seed(3)).requires_grad_(True)
    weights = torch.randn(2, 4, 6, generator=torch.Generator().manual_seed(4))
    (write(hidden, mask, _slots(vectors), "replace", 3.0) * weights).sum().backward()
    # Other positions pass through unchanged; the replaced ones get no gradient.
    torch.testing.assert_close(hidden.grad, weights * ~mask.unsqueeze(-1))
    # Injection depends only on the direction, so the gradient is orthogonal to the vector,
    # and it matches the analytic gradient of w . scale * v / |v|.
    v = vectors.detach()
    n = v.norm(dim=-1, keepdim=True)
    u = v / n
    w = torch.stack([weights[0, 1], weights[1, 0]])
    expected = 3.0 / n * (w - (w * u).sum(-1, keepdim=True) * u)
    torch.testing.assert_close(vectors.grad, expected)


def test_center_mean_and_standardize():
    v = torch.tensor([[3.0, 10.0], [5.0, 30.0]])
    mean, std = torch.tensor([4.0, 20.0]), torch.tensor([1.0, 10.0])
    assert torch.equal(center(v, "none", None, None), v)
    torch.testing.assert_close(
        center(v, "mean", mean, std), torch.tensor([[-1.0, -10.0], [1.0, 10.0]])
    )
    torch.testing.assert_close(
        center(v, "standardize", mean, std), torch.tensor([[-1.0, -1.0], [1.0, 1.0]])
    )
    with pytest.raises(NLAError, match="center 'mean' needs the training mean"):
        center(v, "mean", None, None)


class _Record(torch.nn.Module):
    """A stand-in block that records the residual it receives."""

    def forward(self, hidden_states, **kwargs):
        self.seen = hidden_states
        return hidden_states


@pytest.mark.parametrize("site", ["embedding", 1, 2])
def test_injector_writes_at_its_block_only_while_armed(site):
    layers = torch.nn.ModuleList([_Record() for _ in range(3)])
    cfg = InjectionConfig(site=site, mode="replace", scale=2.0)
    injector = Injector(cfg, 2.0, layers)
    mask, hidden = _ids_and_hidden([[1, PH, 2], [PH, 3, 4]], d=4)
    values = torch.eye(4)[:2].unsqueeze(1)
    with injector.active(mask, values):
        h = hidden
        for layer in layers:
            h = layer(h)
        # a decoding step (one new token, the prompt in the cache) is left alone
        layers[cfg.block](hidden[:, :1])
    assert torch.equal(layers[cfg.block].seen, hidden[:, :1])
    torch.testing.assert_close(h[mask], 2.0 * torch.eye(4)[:2])
    torch.testing.assert_close(h[~mask], hidden[~mask])
    before = [layers[i].seen for i in range(cfg.block)]
    assert all(torch.equal(b, hidden) for b in before)
    assert torch.equal(layers[0](hidden), hidden)  # disarmed after the block of code


def test_injector_errors():
    layers = torch.nn.ModuleList([_Record() for _ in range(3)])
    with pytest.raises(NLAError, match="outside the AV's 3 blocks"):
        Injector(InjectionConfig(site=3), 1.0, layers)
    injector = Injector(InjectionConfig(), 1.0, layers)
    mask, _ = _ids_and_hidden([[1, PH, 2]])
    with (
        pytest.raises(RuntimeError, match="injection never happened"),
        injector.active(mask, torch.randn(1, 1, 4)),
    ):
        pass


# -- resolve_scale ---------------------------------------------------------------------------------


def test_resolve_scale_numbers():
    assert resolve_scale(3, d_model=64, data_norm=None, embed_norm=None) == 3.0
    scale = resolve_scale(2.5, d_model=64, data_norm=10.0, embed_norm=1.0)
    assert scale == 2.5 and isinstance(scale, float)


def test_resolve_scale_named():
    assert resolve_scale("sqrt_d", 576, None, None) == pytest.approx(24.0)
    assert resolve_scale("data", 576, 41.5, None) == 41.5
    assert resolve_scale("embed", 576, None, 0.7) == 0.7
    assert resolve_scale("embed", 576, 41.5, 0.7) == 0.7
    assert resolve_scale("match", 576, 41.5, 0.7) is None


@pytest.mark.parametrize(
    ("spec", "data_norm", "embed_norm"),
    [
        ("nope", 1.0, 1.0),
        ("SQRT_D", 1.0, 1.0),
        ("data", None, 1.0),
        ("embed", 1.0, None),
        (0.0, 1.0, 1.0),
        (float("nan"), 1.0, 1.0),
    ],
)
def test_resolve_scale_errors(spec, data_norm, embed_norm):
    with pytest.raises(NLAError, match="injection scale") as info:
        resolve_scale(spec, 64, data_norm, embed_norm)
    assert info.value.fix is not None
