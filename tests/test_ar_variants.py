"""The small, context and flowchart AR variants and the text-only evaluation, on the tiny model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nla_variants.common.errors import NLAError
from nla_variants.core.text import wrap_explanation
from nla_variants.core.vectors import normalized_mse
from nla_variants.data.store import SplitRows
from nla_variants.target import load_lm, resolve_model, truncated_backbone
from nla_variants.training.checkpoint import load_component, save_checkpoint
from nla_variants.variants.registry import BuildContext, build, variant_config

EXPLANATIONS = [
    "A story told in the past tense about a harbor\nThe sentence stops after the word the",
    "Python source code defining a function\nInside an open parenthesis of a call",
    "A table of prices with three columns\nThe next cell holds a number",
]
SOURCES = [
    "The boat came into the harbor as the sun set over the",
    "def area(radius):\n    return math.pi * pow(",
    "| item | price | qty |\n| apple | 0.50 | ",
]


@pytest.fixture(scope="module")
def ctx(tiny_model_dir) -> BuildContext:
    return BuildContext(resolve_model(str(tiny_model_dir)), layer=3, d_model=64, data_norm=12.0)


def vectors(n: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 64, generator=torch.Generator().manual_seed(seed)) * 12


def _grads_reach_exactly_the_trainable(ar, expl=EXPLANATIONS, srcs=SOURCES) -> list[str]:
    ar.zero_grad(set_to_none=True)
    ar.loss(expl, vectors(len(expl)), srcs).backward()
    trainable = [n for n, p in ar.named_parameters() if p.requires_grad]
    assert trainable
    for name, p in ar.named_parameters():
        if p.requires_grad:
            assert p.grad is not None, f"{name} got no gradient"
        else:
            assert p.grad is None, f"frozen {name} got a gradient"
    return trainable


def _perturb(module) -> None:
    with torch.no_grad():
        for p in module.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * 1e-2)


def _round_trip(ar, ctx, path, srcs=SOURCES) -> None:
    _perturb(ar)
    save_checkpoint(path, ar, "ar", ctx, step=3)
    loaded, meta = load_component(path, ctx)
    assert meta.variant == ar.variant_name
    ar.eval()
    loaded.eval()
    with torch.no_grad():
        torch.testing.assert_close(
            loaded(EXPLANATIONS, srcs), ar(EXPLANATIONS, srcs), atol=0, rtol=0
        )


# -- small ------------------------------------------------------------------------------------------


def test_small_defaults_match_the_baseline(ctx):
    torch.manual_seed(0)
    base = build("ar", {"variant": "baseline"}, ctx)
    small = build("ar", {"variant": "small"}, ctx)
    with torch.no_grad():
        torch.testing.assert_close(small(EXPLANATIONS), base(EXPLANATIONS), atol=1e-5, rtol=1e-5)


def test_small_keeps_n_layers_blocks_and_reads_that_residual(ctx):
    ar = build("ar", {"variant": "small", "n_layers": 1}, ctx)
    assert len(ar.backbone.layers) == 1 and ar.metadata()["blocks"] == 1
    lm, _ = load_lm(ctx.source)
    seqs = ar.sequences(EXPLANATIONS[:1])
    with torch.no_grad():
        want = truncated_backbone(lm, 1)(input_ids=torch.tensor(seqs)).last_hidden_state[0, -1]
        torch.testing.assert_close(ar(EXPLANATIONS[:1])[0], want, atol=1e-5, rtol=1e-5)
    with pytest.raises(NLAError, match="n_layers"):
        build("ar", {"variant": "small", "n_layers": 4}, ctx)


@pytest.mark.parametrize("head", ["lowrank", "bottleneck"])
def test_small_heads_have_the_rank_and_shape(ctx, head):
    ar = build("ar", {"variant": "small", "head": head, "head_rank": 4, "finetune": "head"}, ctx)
    out = ar(EXPLANATIONS)
    assert out.shape == (3, 64)
    assert sum(p.numel() for p in ar.head.parameters()) == 2 * 4 * 64 + 64
    trainable = _grads_reach_exactly_the_trainable(ar)
    assert all(n.startswith("head.") for n in trainable)
    if head == "lowrank":  # the identity at step 0
        seqs = ar.sequences(EXPLANATIONS)
        with torch.no_grad():
            h = ar.backbone(input_ids=torch.tensor(seqs[:1])).last_hidden_state[0, -1]
        torch.testing.assert_close(out[0].detach(), h, atol=1e-5, rtol=1e-5)
    else:  # predictions live in a rank-4 subspace
        preds = ar([f"{e} {i}" for i in range(3) for e in EXPLANATIONS]).detach()
        preds = preds - ar.head.up.bias.detach()
        assert torch.linalg.matrix_rank(preds, rtol=1e-4) <= 4
    with pytest.raises(NLAError, match="head_rank"):
        build("ar", {"variant": "small", "head": head, "head_rank": 64}, ctx)


def test_small_lora_trains_only_adapters_and_head_and_round_trips(ctx, tmp_path):
    ar = build("ar", {"variant": "small", "finetune": "lora", "lora_r": 2, "n_layers": 2}, ctx)
    trainable = _grads_reach_exactly_the_trainable(ar)
    assert any("lora_" in n for n in trainable)
    assert all("lora_" in n or n.startswith("head.") for n in trainable)
    backbone_before = {n: p.clone() for n, p in ar.backbone.named_parameters() if "lora_" not in n}
    opt = torch.optim.AdamW([p for p in ar.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(2):
        opt.zero_grad()
        ar.loss(EXPLANATIONS, vectors(3)).backward()
        opt.step()
    for n, p in ar.backbone.named_parameters():
        if "lora_" not in n:
            assert torch.equal(p, backbone_before[n]), f"frozen {n} changed"
    _round_trip(ar, ctx, tmp_path / "lora", srcs=None)


def test_small_dropout_acts_only_when_training_with_gradients(ctx):
    ar = build("ar", {"variant": "small", "dropout": 0.3}, ctx).train()
    a, b = ar(EXPLANATIONS), ar(EXPLANATIONS)
    assert not torch.allclose(a, b)
    with torch.no_grad():  # reward scoring in RL: AR in train mode, no gradients
        torch.testing.assert_close(ar(EXPLANATIONS), ar(EXPLANATIONS), atol=0, rtol=0)
        scored = ar(EXPLANATIONS)
    ar.eval()
    with torch.no_grad():
        torch.testing.assert_close(ar(EXPLANATIONS), scored, atol=0, rtol=0)


def test_small_full_round_trip(ctx, tmp_path):
    ar = build("ar", {"variant": "small", "n_layers": 2, "head": "lowrank", "head_rank": 8}, ctx)
    _grads_reach_exactly_the_trainable(ar)
    _round_trip(ar, ctx, tmp_path / "small", srcs=None)


# -- context ----------------------------------------------------------------------------------------


def test_context_ar_reads_the_source(ctx):
    ar = build("ar", {"variant": "context", "max_source_tokens": 32}, ctx).eval()
    with torch.no_grad():
        a = ar(EXPLANATIONS, SOURCES)
        b = ar(EXPLANATIONS, SOURCES[1:] + SOURCES[:1])
        assert a.shape == (3, 64)
        assert not torch.allclose(a, b)
        text_only = ar([""] * 3, SOURCES)
        assert not torch.allclose(text_only[0], text_only[1])
    seq = ar.sequences(EXPLANATIONS[:1], ["word " * 500])[0]
    src_ids = ar.tokenizer("word " * 500, add_special_tokens=False)["input_ids"]
    assert len(seq) <= 32 + ar.metadata()["template_tokens"] + 128
    assert seq[len(ar.pieces[0]) : len(ar.pieces[0]) + 32] == src_ids[-32:]  # the end is kept
    with pytest.raises(ValueError, match="source prefix"):
        ar(EXPLANATIONS)


def test_context_ar_is_the_source_reader(ctx):
    """It alone among the built-in ARs declares ReadsSource; `source_ids` is what `sequences`
    puts in the template's source slot."""
    from nla_variants.variants.ar import BaselineAR, FlowchartAR, SmallAR
    from nla_variants.variants.ar.context import ContextAR
    from nla_variants.variants.interfaces import ReadsSource

    assert issubclass(ContextAR, ReadsSource)
    assert not any(issubclass(c, ReadsSource) for c in (BaselineAR, SmallAR, FlowchartAR))
    ar = build("ar", {"variant": "context", "max_source_tokens": 8}, ctx)
    (ids,) = ar.source_ids(["word " * 50])
    assert len(ids) == 8
    seq = ar.sequences(EXPLANATIONS[:1], ["word " * 50])[0]
    assert seq[len(ar.pieces[0]) : len(ar.pieces[0]) + 8] == ids


def test_context_template_needs_both_slots():
    with pytest.raises(NLAError, match="source"):
        variant_config("ar", {"variant": "context", "template": "{explanation} state:"})
    variant_config("ar", {"variant": "context", "template": "{explanation}\n---\n{source}:"})


def test_context_ar_gradients_and_round_trip(ctx, tmp_path):
    ar = build("ar", {"variant": "context", "finetune": "lora", "lora_r": 2}, ctx)
    _grads_reach_exactly_the_trainable(ar)
    _round_trip(ar, ctx, tmp_path / "context")


# -- flowchart --------------------------------------------------------------------------------------

KEYWORDS = ["river", "market", "engine", "garden"]
FILLER = ["about", "some", "text", "with", "the", "words", "written", "here"]


def _word_problem(n: int, seed: int) -> tuple[list[str], torch.Tensor, torch.Tensor]:
    """Each explanation names one keyword among filler; the keyword fixes the target vector."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(len(KEYWORDS), 64, generator=torch.Generator().manual_seed(99)) * 10
    labels = torch.randint(len(KEYWORDS), (n,), generator=g)
    texts = []
    for lab in labels.tolist():
        words = [FILLER[int(i)] for i in torch.randint(len(FILLER), (5,), generator=g)]
        pos = int(torch.randint(6, (1,), generator=g))
        texts.append(" ".join(words[:pos] + [KEYWORDS[lab].capitalize()] + words[pos:]))
    return texts, centres[labels] + torch.randn(n, 64, generator=g), centres


def test_flowchart_has_its_own_loss_the_normalised_mse(ctx):
    from nla_variants.variants.ar.flowchart import FlowchartAR

    assert "loss" in vars(FlowchartAR)  # not borrowed from BaselineAR
    ar = build("ar", {"variant": "flowchart", "depth": 2}, ctx)
    want = normalized_mse(ar(EXPLANATIONS), vectors(3)).mean()
    torch.testing.assert_close(ar.loss(EXPLANATIONS, vectors(3)), want)


def test_flowchart_learns_which_word_decides_the_vector(ctx):
    ar = build("ar", {"variant": "flowchart", "depth": 2}, ctx)
    assert all(w in ar.index for w in KEYWORDS + FILLER)
    texts, targets, _ = _word_problem(64, seed=1)
    opt = torch.optim.Adam(ar.parameters(), lr=1e-3)  # x lr_multiplier 300
    with torch.no_grad():
        before = ar.loss(texts, targets).item()
    for _ in range(150):
        opt.zero_grad()
        ar.loss(texts, targets).backward()
        opt.step()
    held_out, held_targets, _ = _word_problem(32, seed=2)
    with torch.no_grad():
        after = ar.loss(held_out, held_targets).item()
    assert after < 0.25 * before, (before, after)
    chart = ar.flowchart()
    assert chart.count("(leaf ") == 4 and chart.count("[node ") == 3
    tested = {w for w in KEYWORDS if f"'{w}'" in chart}
    assert len(tested) >= 2, chart  # the tests name the deciding words


def test_flowchart_shapes_gradients_and_round_trip(ctx, tmp_path):
    ar = build("ar", {"variant": "flowchart", "depth": 3, "extra_words": ["zyxwv"]}, ctx)
    assert "zyxwv" in ar.index and len(ar.words) == 8192 + 1
    weights = ar.leaf_weights(ar.features(EXPLANATIONS + ["zyxwv"]))
    assert weights.shape == (4, 8)
    torch.testing.assert_close(weights.sum(1), torch.ones(4))
    assert ar(EXPLANATIONS, SOURCES).shape == (3, 64)
    trainable = _grads_reach_exactly_the_trainable(ar)
    assert sorted(trainable) == ["gate_b", "gate_w", "leaves"]
    _round_trip(ar, ctx, tmp_path / "flowchart")
    mean = torch.randn(64)
    assert "cos(mean)" in ar.flowchart(mean)
    constant = build("ar", {"variant": "flowchart", "depth": 0}, ctx)
    out = constant(EXPLANATIONS)
    torch.testing.assert_close(out[0], out[2])
    assert "(leaf 0)" in constant.flowchart()


# -- evaluation: text-only reconstruction ----------------------------------------------------------


class _StubAV(torch.nn.Module):
    """Writes the same explanation for every vector (only evaluate's AV interface)."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))

    def generate(self, vectors, max_new_tokens=96, temperature=1.0, num_samples=1, seeds=None):
        n = len(vectors) * num_samples
        return [wrap_explanation("A story about a harbor")] * n, [[1]] * n

    def extract(self, text):
        from nla_variants.core.text import extract_explanation

        return extract_explanation(text)

    def render_target(self, text):
        return text

    def encode_responses(self, explanations):
        return [[1, 2]] * len(explanations)

    def response_logprobs(self, vectors, responses):
        shape = (len(responses), 2)
        return torch.full(shape, -1.0), torch.ones(shape)


def test_evaluate_reports_empty_fve_from_the_prefixes(ctx):
    from nla_variants.evaluation.evaluation import empty_fve, evaluate

    rows = SplitRows(vectors(3).numpy(), list(EXPLANATIONS), list(SOURCES), ["a", "b", "c"])
    mean = torch.randn(64)
    context = build("ar", {"variant": "context"}, ctx).eval()
    metrics, *_ = evaluate(_StubAV(), context, rows, mean, max_new_tokens=8, batch_size=2)
    assert "ar_empty_fve" in metrics
    assert metrics["av_nll_gap"] == 0.0  # an AV blind to its vector: no NLL gap
    want = empty_fve(context, SOURCES, torch.from_numpy(rows.vectors), mean, 3)
    assert metrics["ar_empty_fve"] == pytest.approx(want, abs=1e-6)
    other = empty_fve(context, SOURCES[::-1], torch.from_numpy(rows.vectors), mean, 3)
    assert other != pytest.approx(want, abs=1e-6)  # the prefixes matter
    # a non-context AR's text-only prediction is one constant vector
    base = build("ar", {"variant": "baseline"}, ctx).eval()
    with torch.no_grad():
        pred = base([""] * 3, SOURCES)
    torch.testing.assert_close(pred[0], pred[2])
    got = empty_fve(base, SOURCES, torch.from_numpy(rows.vectors), mean, 2)
    t = torch.from_numpy(rows.vectors)
    want_base = 1 - normalized_mse(pred, t).mean() / normalized_mse(mean.expand_as(t), t).mean()
    assert got == pytest.approx(float(want_base), abs=1e-5)


def test_beats_prompt_is_the_round_trip_minus_the_text_only_reading_on_the_same_rows(ctx):
    from nla_variants.evaluation.evaluation import evaluate

    rows = SplitRows(vectors(3).numpy(), list(EXPLANATIONS), list(SOURCES), ["a", "b", "c"])
    mean = torch.randn(64)
    ar = build("ar", {"variant": "context"}, ctx).eval()
    m, _, per_row = evaluate(_StubAV(), ar, rows, mean, max_new_tokens=8, batch_size=2)
    # every FVE is the mean of its rows' shares, and the NLL gap their pooled difference
    record = per_row.table().to_pydict()
    assert record["example_id"] == ["a", "b", "c"]
    for reading, metric in (("roundtrip", "roundtrip_fve"), ("prompt", "prompt_fve")):
        assert np.mean(record[f"{reading}_fve"]) == pytest.approx(m[metric], abs=1e-5)
    assert np.mean(record["teacher_fve"]) == pytest.approx(m["ar_teacher_fve"], abs=1e-5)
    shuffled = 1 - np.mean(record["roundtrip_shuffled_mse"]) / np.mean(record["base_mse"])
    assert shuffled == pytest.approx(m["roundtrip_shuffled_fve"], abs=1e-5)
    nll = (sum(record["nll_shuffled"]) - sum(record["nll_real"])) / sum(record["nll_tokens"])
    assert nll == pytest.approx(m["av_nll_gap"], abs=1e-5)
    assert record["tag_failure"] == [False] * 3
    # by default the text-only reading is the teacher's explanation of the prefix alone
    assert m["prompt_fve"] == pytest.approx(m["ar_teacher_fve"], abs=1e-6)
    assert m["beats_prompt"] == pytest.approx(m["roundtrip_fve"] - m["prompt_fve"], abs=1e-6)
    assert m["beats_prompt_low"] <= m["beats_prompt"] <= m["beats_prompt_high"]
    assert m["beats_prompt_low"] < m["beats_prompt_high"]  # 3 rows: a wide interval
    # a prompt reading that writes what the AV writes ties it exactly, on every resample
    same = {e: "A story about a harbor" for e in ("a", "b", "c")}
    tie, *_ = evaluate(_StubAV(), ar, rows, mean, max_new_tokens=8, batch_size=2, prompt=same)
    assert tie["prompt_fve"] == pytest.approx(tie["roundtrip_fve"], abs=1e-6)
    assert tie["beats_prompt"] == tie["beats_prompt_low"] == tie["beats_prompt_high"] == 0.0
    # only rows with a prompt reading are paired
    one = {"b": EXPLANATIONS[1]}
    part, *_ = evaluate(_StubAV(), ar, rows, mean, max_new_tokens=8, batch_size=2, prompt=one)
    assert part["beats_prompt_low"] != part["beats_prompt_low"]  # one row: no interval (nan)
    # a dataset whose teacher added what it read from the model keeps its text-only prompts
    kept = SplitRows(rows.vectors, rows.explanations, rows.prefixes, rows.example_ids)
    kept.prompts = ["A story about a harbor"] * 3
    own, *_ = evaluate(_StubAV(), ar, kept, mean, max_new_tokens=8, batch_size=2)
    assert own["prompt_fve"] == pytest.approx(tie["prompt_fve"], abs=1e-6)
    assert own["ar_teacher_fve"] == pytest.approx(m["ar_teacher_fve"], abs=1e-6)


def test_rl_rollout_scores_with_each_samples_prefix(ctx, monkeypatch):
    from nla_variants.training.rl import RLModule
    from nla_variants.training.rl_config import RLConfig

    ar = build("ar", {"variant": "context"}, ctx)
    seen: list = []
    real_forward = ar.forward

    def spy(explanations, sources=None):
        seen.append(list(sources))
        return real_forward(explanations, sources)

    monkeypatch.setattr(ar, "forward", spy)
    av = _StubAV()
    rows = SplitRows(vectors(3).numpy(), list(EXPLANATIONS), list(SOURCES), ["a", "b", "c"])
    rl = RLModule(av, ar, _StubAV(), rows, torch.zeros(64), RLConfig(group_size=2), seed=0)
    ro, _ = rl.rollout(vectors(2), SOURCES[:2])
    assert seen == [[SOURCES[0], SOURCES[0], SOURCES[1], SOURCES[1]]]
    assert bool(ro.ok.all()) and ro.mse.shape == (4,)
