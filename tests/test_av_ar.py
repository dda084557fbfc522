"""Baseline AV and AR on the tiny model: injection checks, identity head, training, checkpoints."""

from __future__ import annotations

import lightning as L
import pytest
import torch

from nla_variants.common.errors import NLAError
from nla_variants.core.text import CLOSE_TAG, OPEN_TAG
from nla_variants.target import resolve_model, truncated_backbone
from nla_variants.training.checkpoint import load_component, save_checkpoint
from nla_variants.training.warm_start import ARWarmStart, AVWarmStart
from nla_variants.variants.registry import BuildContext, build

EXPLANATIONS = [
    "A story told in the past tense about a harbor\nThe sentence stops after the word the",
    "Python source code defining a function\nInside an open parenthesis of a call",
    "A table of prices with three columns\nThe next cell holds a number",
    "A chat between two friends about trains\nThe speaker tag was just written",
]


@pytest.fixture(scope="module")
def ctx(tiny_model_dir) -> BuildContext:
    return BuildContext(resolve_model(str(tiny_model_dir)), layer=2, d_model=64, data_norm=12.0)


@pytest.fixture
def av(ctx):
    torch.manual_seed(0)
    return build("av", {"variant": "baseline", "injection": {"scale": 8.0}}, ctx)


@pytest.fixture
def ar(ctx):
    return build("ar", {"variant": "baseline"}, ctx)


def vectors(n: int = 4, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 64, generator=torch.Generator().manual_seed(seed)) * 12


def test_placeholder_is_one_rare_token_with_recorded_neighbours(av):
    ph = av.placeholder
    ids = av.prompt_ids.tolist()
    assert ids.count(ph.token_id) == 1
    pos = ids.index(ph.token_id)
    assert (ids[pos - 1], ids[pos + 1]) == (ph.left_id, ph.right_id)
    assert not ph.text.isascii()
    assert av.tokenizer.decode([ph.token_id]) == ph.text
    assert av.metadata()["placeholder"]["token_id"] == ph.token_id


def _residual_entering(av, block: int, ids: torch.Tensor, v: torch.Tensor | None):
    """The residual block `block` receives (after the injector's hook on it, if any)."""
    seen = {}

    def record(module, args, kwargs) -> None:
        seen.setdefault("h", args[0] if args else kwargs["hidden_states"])

    handle = av._decoder.layers[block].register_forward_pre_hook(record, with_kwargs=True)
    try:
        if v is None:
            av._decoder(input_ids=ids)
        else:
            with av.injecting(ids, v):
                av._decoder(input_ids=ids)
    finally:
        handle.remove()
    return seen["h"]


def test_injection_replaces_the_placeholder_embedding_at_the_scale(av):
    v = vectors(2)
    ids = av.prompt_ids.expand(2, -1)
    embeds = _residual_entering(av, 0, ids, v)
    plain = av.lm.get_input_embeddings()(ids)
    pos = av.slot
    torch.testing.assert_close(embeds[:, pos].norm(dim=-1), torch.full((2,), 8.0))
    cos = torch.nn.functional.cosine_similarity(embeds[:, pos], v)
    assert bool((cos > 0.999).all())
    keep = [i for i in range(ids.shape[1]) if i != pos]
    torch.testing.assert_close(embeds[:, keep], plain[:, keep])


@pytest.mark.parametrize("center", ["none", "mean", "standardize"])
def test_residual_site_adds_the_centred_vector_at_the_residual_norm(ctx, center):
    stats = {"data_mean": torch.full((64,), 3.0), "data_std": torch.full((64,), 2.0)}
    ctx = BuildContext(ctx.source, ctx.layer, ctx.d_model, ctx.data_norm, **stats)
    inj = {"site": 2, "mode": "add", "scale": "match", "center": center}
    av = build("av", {"variant": "baseline", "injection": inj}, ctx)
    v = vectors(2)
    ids = av.prompt_ids.expand(2, -1)
    plain = _residual_entering(av, 2, ids, None)
    mixed = _residual_entering(av, 2, ids, v)
    pos = av.slot
    delta = mixed[:, pos] - plain[:, pos]
    torch.testing.assert_close(delta.norm(dim=-1), plain[:, pos].norm(dim=-1))
    direction = v if center == "none" else v - 3.0
    cos = torch.nn.functional.cosine_similarity(delta, direction)
    assert bool((cos > 0.999).all())
    keep = [i for i in range(ids.shape[1]) if i != pos]
    torch.testing.assert_close(mixed[:, keep], plain[:, keep])
    assert av.metadata()["injection"] == {**inj, "norm": None}
    av.verify_injection()


def test_injection_changes_the_logits(av):
    v = vectors(2)
    responses = av.encode_responses(EXPLANATIONS[:1] * 2)
    logp, _ = av.response_logprobs(v, responses)
    assert not torch.allclose(logp[0], logp[1])
    av.verify_injection()


def test_a_disabled_injection_is_detected(av, monkeypatch):
    import nla_variants.core.injection as injection

    monkeypatch.setattr(injection, "write", lambda hidden, *a, **k: hidden)
    with pytest.raises(RuntimeError, match="injection has no effect"):
        av.verify_injection()


def test_missing_or_doubled_placeholder_and_changed_neighbours_fail(av):
    ids = av.prompt_ids.expand(2, -1).clone()
    pos = av.slot
    doubled = ids.clone()
    doubled[1, 1] = av.placeholder.token_id
    with (
        pytest.raises(RuntimeError, match=r"expected 1 placeholder token\(s\) per sequence"),
        av.injecting(doubled, vectors(2)),
    ):
        av._decoder(input_ids=doubled)
    moved = ids.clone()
    moved[0, pos - 1] = moved[0, pos - 1] + 1
    with pytest.raises(RuntimeError, match="neighbours changed"):
        av.injecting(moved, vectors(2))


def test_sft_loss_covers_response_tokens_only(av):
    responses = av.encode_responses(EXPLANATIONS[:2])
    logp, mask = av.response_logprobs(vectors(2), responses)
    assert mask.sum().item() == sum(map(len, responses))
    assert responses[0][-1] == av.eos_id
    text = av.tokenizer.decode(responses[0])
    assert text.startswith(OPEN_TAG) and CLOSE_TAG in text


def test_generate_returns_one_text_per_sample(av):
    texts, tokens = av.generate(vectors(2), max_new_tokens=6, temperature=1.0, num_samples=3)
    assert len(texts) == len(tokens) == 6
    assert all(len(t) <= 6 for t in tokens)


def test_ar_identity_head_keeps_the_backbone_direction_at_step_0(ar, tiny_model_dir, ctx):
    from nla_variants.target import load_lm

    lm, _ = load_lm(ctx.source)
    backbone = truncated_backbone(lm, 2)
    seqs = ar.sequences(EXPLANATIONS[:1])
    with torch.no_grad():
        want = backbone(input_ids=torch.tensor(seqs)).last_hidden_state[0, -1]
        got = ar(EXPLANATIONS[:1])[0]
    assert len(ar.backbone.layers) == 2
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def _fit(module: L.LightningModule, batch: dict, steps: int) -> None:
    loader = torch.utils.data.DataLoader([batch] * steps, batch_size=None)
    trainer = L.Trainer(
        max_steps=steps,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(module, loader)


def test_a_few_training_steps_reduce_both_losses(av, ar):
    batch = {"vectors": vectors(4), "explanations": EXPLANATIONS, "prefixes": [""] * 4}
    with torch.no_grad():
        av_before = av.sft_loss(batch["vectors"], EXPLANATIONS).item()
        ar_before = ar.loss(EXPLANATIONS, batch["vectors"]).item()
    _fit(AVWarmStart(av, lr=3e-3, weight_decay=0.0, warmup_steps=0, total_steps=20), batch, 20)
    _fit(ARWarmStart(ar, lr=3e-3, weight_decay=0.0, warmup_steps=0, total_steps=8), batch, 8)
    with torch.no_grad():
        assert av.sft_loss(batch["vectors"], EXPLANATIONS).item() < 0.85 * av_before
        assert ar.loss(EXPLANATIONS, batch["vectors"]).item() < 0.7 * ar_before


@pytest.mark.parametrize("kind", ["av", "ar"])
def test_checkpoint_round_trip_gives_identical_outputs(kind, av, ar, ctx, tmp_path):
    component = av if kind == "av" else ar
    with torch.no_grad():  # move the weights away from the base model's
        for p in component.parameters():
            p.add_(torch.randn_like(p) * 1e-2)
    save_checkpoint(tmp_path / kind, component, kind, ctx, step=7)
    loaded, meta = load_component(tmp_path / kind, ctx)
    assert meta.step == 7 and meta.variant == "baseline"
    v = vectors(2)
    with torch.no_grad():
        if kind == "av":
            r = component.encode_responses(EXPLANATIONS[:2])
            torch.testing.assert_close(
                loaded.response_logprobs(v, r)[0],
                component.response_logprobs(v, r)[0],
                atol=0,
                rtol=0,
            )
            assert loaded.placeholder == component.placeholder
        else:
            torch.testing.assert_close(
                loaded(EXPLANATIONS), component(EXPLANATIONS), atol=0, rtol=0
            )
    assert not list(tmp_path.glob(".*")), "no temp dirs left behind"


def test_lora_av_trains_only_adapters_and_round_trips(ctx, tmp_path):
    av = build("av", {"variant": "baseline", "finetune": "lora", "lora_r": 4}, ctx)
    trainable = [n for n, p in av.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    with torch.no_grad():
        for p in av.parameters():
            if p.requires_grad:
                p.add_(0.05)
    save_checkpoint(tmp_path / "lora", av, "av", ctx)
    loaded, _ = load_component(tmp_path / "lora", ctx)
    r = av.encode_responses(EXPLANATIONS[:1])
    with torch.no_grad():
        torch.testing.assert_close(
            loaded.response_logprobs(vectors(1), r)[0],
            av.response_logprobs(vectors(1), r)[0],
            atol=0,
            rtol=0,
        )


def test_frozen_blocks_train_only_the_blocks_above(ctx):
    inj = {"site": 2, "mode": "add", "scale": "match"}
    av = build("av", {"variant": "baseline", "injection": inj, "frozen_blocks": 2}, ctx)
    layers = av._decoder.layers
    assert not av.lm.get_input_embeddings().weight.requires_grad
    assert not any(p.requires_grad for block in layers[:2] for p in block.parameters())
    assert all(p.requires_grad for block in layers[2:] for p in block.parameters())
    av.sft_loss(vectors(2), EXPLANATIONS[:2]).backward()
    assert all(p.grad is not None for block in layers[2:] for p in block.parameters())
    with pytest.raises(NLAError, match="frozen_blocks 4 leaves none of the 4 blocks"):
        build("av", {"variant": "baseline", "frozen_blocks": 4}, ctx)
