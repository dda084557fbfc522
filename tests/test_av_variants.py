"""The multitoken and structured AV variants on the tiny model, plus the AV hooks they use
(`extract`, `render_target`) at their call sites: RL rollout scoring, evaluation, AR warm start."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from nla_variants.common.errors import NLAError
from nla_variants.core.text import extract_explanation, wrap_explanation
from nla_variants.core.vectors import ORTHOGONAL_MSE, normalized_mse
from nla_variants.data.store import SplitRows
from nla_variants.evaluation.evaluation import evaluate
from nla_variants.target import resolve_model
from nla_variants.training.checkpoint import load_component, save_checkpoint
from nla_variants.training.rl import RLModule
from nla_variants.training.rl_config import RLConfig
from nla_variants.training.warm_start import ARWarmStart
from nla_variants.variants.av.structured import parse_fields, render_explanation
from nla_variants.variants.registry import BuildContext, build

D = 64
EXPLANATIONS = [
    "A story told in the past tense about a harbor\nThe sentence stops after the word the",
    "Python source code defining a function\nA docstring was just opened\nInside a call",
]


@pytest.fixture(scope="module")
def ctx(tiny_model_dir) -> BuildContext:
    return BuildContext(resolve_model(str(tiny_model_dir)), layer=2, d_model=D, data_norm=12.0)


def make(ctx, variant: str, **cfg):
    torch.manual_seed(0)
    return build("av", {"variant": variant, "injection": {"scale": 8.0}, **cfg}, ctx)


def vectors(n: int = 2, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, D, generator=torch.Generator().manual_seed(seed)) * 12


def logprobs(av, v: torch.Tensor, texts=EXPLANATIONS) -> torch.Tensor:
    with torch.no_grad():
        return av.response_logprobs(v, av.encode_responses(texts))[0]


# -- multitoken ---------------------------------------------------------------------------------


def test_multitoken_k1_learned_reproduces_the_baseline(ctx):
    base, multi = make(ctx, "baseline"), make(ctx, "multitoken", k=1, mode="learned")
    assert multi.placeholder == base.placeholder
    assert torch.equal(multi.prompt_ids, base.prompt_ids)
    v = vectors()
    torch.testing.assert_close(logprobs(multi, v), logprobs(base, v), atol=0, rtol=0)
    t_multi, _ = multi.generate(v, max_new_tokens=8)
    t_base, _ = base.generate(v, max_new_tokens=8)
    assert t_multi == t_base


@pytest.mark.parametrize("mode", ["repeat", "learned"])
def test_multitoken_k3_fills_three_consecutive_slots(ctx, mode):
    av = make(ctx, "multitoken", k=3, mode=mode)
    ids = av.prompt_ids.tolist()
    ph = av.placeholder
    assert ids.count(ph.token_id) == 3
    pos = ids.index(ph.token_id)
    assert ids[pos : pos + 3] == [ph.token_id] * 3
    assert (ids[pos - 1], ids[pos + 3]) == (ph.left_id, ph.right_id)
    v = vectors(2)
    assert av.vector_inputs(v).shape == (2, 3, D)
    batch = av.prompt_ids.expand(2, -1)
    seen = {}

    def record(module, args, kwargs) -> None:
        seen["embeds"] = args[0] if args else kwargs["hidden_states"]

    handle = av._decoder.layers[0].register_forward_pre_hook(record, with_kwargs=True)
    with av.injecting(batch, v):
        av._decoder(input_ids=batch)
    handle.remove()
    embeds = seen["embeds"]
    slots = embeds[:, pos : pos + 3]
    torch.testing.assert_close(slots.norm(dim=-1), torch.full((2, 3), 8.0))
    cos = torch.nn.functional.cosine_similarity(slots, v.unsqueeze(1).expand_as(slots), dim=-1)
    assert bool((cos > 0.999).all()), "identity-initialised maps / repeat: the vector's direction"
    plain = av.lm.get_input_embeddings()(batch)
    keep = [i for i in range(batch.shape[1]) if not pos <= i < pos + 3]
    torch.testing.assert_close(embeds[:, keep], plain[:, keep])
    logp = logprobs(av, v)
    assert logp.shape[0] == 2 and not torch.allclose(logp[0], logp[1])
    texts, tokens = av.generate(v, max_new_tokens=5, temperature=1.0, num_samples=2)
    assert len(texts) == 4 and all(len(t) <= 5 for t in tokens)
    av.verify_injection()
    assert av.metadata()["n_slots"] == 3 and av.metadata()["mode"] == mode


def test_multitoken_counts_placeholders_per_row(ctx):
    av = make(ctx, "multitoken", k=3, mode="repeat")
    ids = av.prompt_ids.expand(2, -1).clone()
    ids[1, 1] = av.placeholder.token_id  # a fourth placeholder in row 1
    with (
        pytest.raises(RuntimeError, match=r"expected 3 placeholder token\(s\) per sequence"),
        av.injecting(ids, vectors(2)),
    ):
        av._decoder(input_ids=ids)


def test_the_slot_count_is_a_constructor_argument(ctx):
    """n_slots reaches the baseline's constructor explicitly (no property it reads early)."""
    from nla_variants.variants.av import BaselineAV, BaselineAVConfig

    two = BaselineAV(BaselineAVConfig(injection={"scale": 8.0}), ctx, n_slots=2)
    assert two.n_slots == 2 and two.prompt_ids.tolist().count(two.placeholder.token_id) == 2
    assert make(ctx, "multitoken", k=3, mode="repeat").n_slots == 3
    assert make(ctx, "baseline").n_slots == 1


def test_multitoken_learned_map_gets_gradients_and_slots_diverge(ctx):
    av = make(ctx, "multitoken", k=3, mode="learned")
    assert av.slot_maps.shape == (3, D, D) and av.slot_maps.requires_grad
    av.sft_loss(vectors(2), EXPLANATIONS).backward()
    grad = av.slot_maps.grad
    assert grad is not None and bool(grad.abs().sum() > 0)
    assert not torch.allclose(grad[0], grad[1]), "slots at different positions learn differently"
    repeat = make(ctx, "multitoken", k=3, mode="repeat")
    assert not hasattr(repeat, "slot_maps")


def test_multitoken_rejects_k0(ctx):
    with pytest.raises(NLAError, match="k"):
        make(ctx, "multitoken", k=0)


@pytest.mark.parametrize("finetune", ["full", "lora"])
def test_multitoken_checkpoint_restores_the_learned_map(ctx, tmp_path, finetune):
    av = make(ctx, "multitoken", k=2, mode="learned", finetune=finetune, lora_r=4)
    trainable = {n for n, p in av.named_parameters() if p.requires_grad}
    assert "slot_maps" in trainable
    with torch.no_grad():
        av.slot_maps.add_(torch.randn_like(av.slot_maps) * 0.1)
        for p in av.parameters():
            if p.requires_grad and p is not av.slot_maps:
                p.add_(torch.randn_like(p) * 1e-2)
    save_checkpoint(tmp_path / "av", av, "av", ctx, step=3)
    loaded, meta = load_component(tmp_path / "av", ctx)
    assert meta.variant == "multitoken" and meta.metadata["k"] == 2
    torch.testing.assert_close(loaded.slot_maps, av.slot_maps, atol=0, rtol=0)
    v = vectors(2)
    torch.testing.assert_close(logprobs(loaded, v), logprobs(av, v), atol=0, rtol=0)
    fresh = make(ctx, "multitoken", k=2, mode="learned", finetune=finetune, lora_r=4)
    assert not torch.allclose(logprobs(fresh, v), logprobs(av, v)), "the round trip mattered"


# -- structured: schema ---------------------------------------------------------------------------


def test_render_puts_teacher_features_into_the_schema():
    fields = ["topic", "next"]
    two = "A story about a harbor\nThe sentence stops after the"
    assert render_explanation(two, fields, 64) == (
        "topic: A story about a harbor\nnext: The sentence stops after the"
    )
    three = "Python code\n  A docstring   opened\nInside a call"
    assert render_explanation(three, fields, 64) == (
        "topic: Python code; A docstring opened\nnext: Inside a call"
    )
    assert render_explanation(three, ["genre", "topic", "next"], 64) == (
        "genre: Python code\ntopic: A docstring opened\nnext: Inside a call"
    )
    assert render_explanation(two, ["genre", "topic", "next"], 64) == (
        "genre: A story about a harbor\ntopic: none\nnext: The sentence stops after the"
    )
    assert render_explanation(two, ["summary"], 64) == (
        "summary: A story about a harbor; The sentence stops after the"
    )
    assert render_explanation(three, fields, 3) == "topic: Python code; A\nnext: Inside a call"


@pytest.mark.parametrize("fields", [["topic", "next"], ["summary"], ["genre", "topic", "next"]])
@pytest.mark.parametrize("text", EXPLANATIONS)
def test_render_then_parse_round_trips(fields, text):
    rendered = render_explanation(text, fields, 64)
    parsed = parse_fields(rendered, fields, 64)
    assert parsed is not None and list(parsed) == fields
    assert "\n".join(f"{k}: {v}" for k, v in parsed.items()) == rendered


@pytest.mark.parametrize(
    "body",
    [
        "next: b\ntopic: a",  # order
        "topic: a",  # missing field
        "topic: a\nnext: b\nmore: c",  # extra line
        "topic:\nnext: b",  # empty value
        "subject: a\nnext: b",  # renamed heading
        "topic a\nnext: b",  # no colon
        "Topic: a\nnext: b",  # headings are exact
        "topic: " + "word " * 65 + "\nnext: b",  # over-long value
    ],
)
def test_parse_rejects_schema_violations(body):
    assert parse_fields(body, ["topic", "next"], 64) is None


def test_parse_accepts_colons_and_blank_lines_inside_a_valid_body():
    assert parse_fields("\n topic: time: 10:30 \n\nnext:  b  c\n", ["topic", "next"], 64) == {
        "topic": "time: 10:30",
        "next": "b c",
    }


@pytest.mark.parametrize("fields", [[], ["Topic"], ["a b"], ["x", "x"], "", "x,Y"])
def test_structured_config_rejects_bad_fields(ctx, fields):
    with pytest.raises(NLAError, match="fields"):
        build("av", {"variant": "structured", "fields": fields}, ctx)


# -- structured: the AV hooks ---------------------------------------------------------------------


def test_baseline_hooks_keep_the_old_behaviour(ctx):
    av = make(ctx, "baseline")
    for text in ["<explanation>\nx\n</explanation>", "<explanation>open", "none"]:
        assert av.extract(text) == extract_explanation(text)
    assert av.render_target(EXPLANATIONS[0]) == EXPLANATIONS[0]


def test_structured_av_trains_on_and_extracts_the_schema(ctx):
    av = make(ctx, "structured")
    rendered = av.render_target(EXPLANATIONS[1])
    assert rendered == (
        "topic: Python source code defining a function; A docstring was just opened\n"
        "next: Inside a call"
    )
    assert av.render_target(rendered) == rendered, "idempotent"
    text = av.tokenizer.decode(av.encode_responses(EXPLANATIONS[1:])[0], skip_special_tokens=True)
    assert text == wrap_explanation(rendered)
    # the SFT loss is the loss on the rendered targets, not on the raw teacher text
    v = vectors(2)
    raw = [
        av.tokenizer(wrap_explanation(t), add_special_tokens=False)["input_ids"] + [av.eos_id]
        for t in EXPLANATIONS
    ]
    with torch.no_grad():
        loss = av.sft_loss(v, EXPLANATIONS).item()
        rendered_loss = av.sft_loss(v, [av.render_target(e) for e in EXPLANATIONS]).item()
        raw_logp, raw_mask = av.response_logprobs(v, raw)
    assert loss == rendered_loss
    assert loss != pytest.approx(-(raw_logp.sum() / raw_mask.sum()).item())

    messy = wrap_explanation(" topic:  a  b \nnext: c")
    assert av.extract("junk " + messy + " tail") == ("topic: a b\nnext: c")
    assert av.extract("<explanation>\ntopic: a\nnext: c") is None  # unclosed
    assert av.extract(wrap_explanation("A story\nThe end")) is None  # free text: violation
    assert av.metadata()["schema"] == {"fields": ["topic", "next"], "max_field_words": 64}


def test_structured_checkpoint_round_trip(ctx, tmp_path):
    av = make(ctx, "structured", fields="genre, next", max_field_words=20)  # sweepable string
    with torch.no_grad():
        for p in av.parameters():
            p.add_(torch.randn_like(p) * 1e-2)
    save_checkpoint(tmp_path / "av", av, "av", ctx)
    loaded, meta = load_component(tmp_path / "av", ctx)
    assert meta.metadata["schema"]["fields"] == ["genre", "next"]
    assert loaded.cfg.fields == ["genre", "next"] and loaded.cfg.max_field_words == 20
    v = vectors(2)
    torch.testing.assert_close(logprobs(loaded, v), logprobs(av, v), atol=0, rtol=0)


# -- call sites: rollout scoring, evaluation, AR warm start -------------------------------------


class RecordingAR(nn.Module):
    """An AR that predicts a fixed direction per explanation and records what it read."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(1))
        self.seen: list[str] = []

    def forward(self, explanations, sources=None) -> torch.Tensor:
        self.seen.extend(explanations)
        rows = [
            torch.randn(D, generator=torch.Generator().manual_seed(len(e))) for e in explanations
        ]
        return torch.stack(rows) + self.w


def scripted(av, texts: list[str]):
    """Make `av.generate` return `texts` (cycled over the requested rows)."""

    def generate(vectors, max_new_tokens=None, temperature=0.0, num_samples=1, seeds=None):
        n = len(vectors) * num_samples
        out = [texts[i % len(texts)] for i in range(n)]
        return out, [[1, 2, 3]] * n

    av.generate = generate


GOOD = wrap_explanation("topic: a harbor story\nnext: the word the")
BAD = wrap_explanation("A harbor story\nThe word the")  # closed tag, not the schema
OPEN = "<explanation>\ntopic: a harbor story"  # never closed


def test_rollout_gives_schema_violations_the_failure_reward(ctx):
    av = make(ctx, "structured")
    scripted(av, [GOOD, BAD, OPEN, GOOD])
    ar = RecordingAR()
    rows = SplitRows(np.zeros((2, D), np.float32), [None, None], ["", ""], ["a", "b"])
    module = RLModule(av, ar, av, rows, torch.zeros(D), RLConfig(group_size=4), seed=0)
    v = vectors(2)
    ro, rewards = module.rollout(v)
    assert ro.ok.tolist() == [True, False, False, True] * 2
    assert ro.explanations[1] is None and ro.explanations[2] is None
    assert ro.explanations[0] == "topic: a harbor story\nnext: the word the"
    assert ar.seen == [ro.explanations[0]] * 4, "the AR reads only valid, canonical outputs"
    failed = ~ro.ok
    assert bool((rewards[failed] == -ORTHOGONAL_MSE).all())
    with torch.no_grad():
        want = -normalized_mse(ar(ar.seen[:1]).expand(2, -1), v)
    torch.testing.assert_close(rewards[ro.ok], want.repeat_interleave(2))


def test_evaluation_counts_schema_violations_and_renders_teacher_text(ctx):
    av = make(ctx, "structured")
    scripted(av, [GOOD, BAD, OPEN, GOOD])
    ar = RecordingAR()
    rows = SplitRows(
        vectors(8).numpy(),
        [EXPLANATIONS[0]] * 8,
        ["a harbor story and the word the"] * 8,
        [str(i) for i in range(8)],
    )
    metrics, table, _ = evaluate(av, ar, rows, torch.zeros(D), batch_size=4, max_samples=8)
    assert metrics["tag_failure_rate"] == pytest.approx(0.5)
    assert metrics["schema_violation_rate"] == pytest.approx(0.25)
    assert ar.seen[:8] == [av.render_target(EXPLANATIONS[0])] * 8, "teacher text rendered"
    assert [r["tag_ok"] for r in table[:4]] == [True, False, False, True]

    base = make(ctx, "baseline")
    scripted(base, [BAD, OPEN])
    metrics, *_ = evaluate(base, RecordingAR(), rows, torch.zeros(D), batch_size=4, max_samples=8)
    assert metrics["schema_violation_rate"] == 0.0 and metrics["tag_failure_rate"] == 0.5


def test_ar_warm_start_reads_rendered_teacher_text(ctx):
    av = make(ctx, "structured")

    class Recorder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = nn.Parameter(torch.zeros(1))
            self.seen: list[str] = []

        def loss(self, explanations, vectors, prefixes=None):
            self.seen.extend(explanations)
            return self.w.sum()

        def sequences(self, explanations, prefixes=None):
            return [[0] * len(e) for e in explanations]

    batch = {"vectors": vectors(2), "explanations": EXPLANATIONS, "prefixes": ["", ""]}
    rec = Recorder()
    module = ARWarmStart(rec, 1e-3, 0.0, 0, 10, render=av.render_target)
    module.compute_loss(batch)
    rendered = [av.render_target(e) for e in EXPLANATIONS]
    assert rec.seen == rendered
    assert module.batch_tokens(batch) == sum(map(len, rendered))
    plain = ARWarmStart(Recorder(), 1e-3, 0.0, 0, 10)
    plain.compute_loss(batch)
    assert plain.component.seen == EXPLANATIONS
