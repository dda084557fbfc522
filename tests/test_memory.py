"""Large targets: the memory estimate and its check, `finetune: auto`, gradient checkpointing
(same loss and gradients, injection intact) and frozen weights held in bf16."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import yaml

from nla_variants.common.errors import NLAError
from nla_variants.config import TrialConfig
from nla_variants.target import ModelSource, load_lm, resolve_model
from nla_variants.training.memory import GIB, check_fits, estimate_trial_memory
from nla_variants.training.warm_cache import WarmStartCache
from nla_variants.variants.av.baseline import BaselineAVConfig
from nla_variants.variants.large_models import (
    LORA_AUTO_THRESHOLD,
    ModelShape,
    enable_gradient_checkpointing,
    frozen_weight_dtype,
    head_cast_once,
    hold_frozen_weights,
    resolve_finetune,
    target_shape,
)
from nla_variants.variants.registry import BuildContext, build

# config.json values of SmolLM2-135M-Instruct (the embedded default) and of a Llama-3-8B
SMOL = {
    "model_type": "llama",
    "vocab_size": 49152,
    "hidden_size": 576,
    "num_hidden_layers": 30,
    "intermediate_size": 1536,
    "num_attention_heads": 9,
    "num_key_value_heads": 3,
    "tie_word_embeddings": True,
}
LLAMA_8B = {
    "model_type": "llama",
    "vocab_size": 128256,
    "hidden_size": 4096,
    "num_hidden_layers": 32,
    "intermediate_size": 14336,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "tie_word_embeddings": False,
}


KEY_BEFORE = "43eca7187f6ef469"  # the default AV's key before `finetune: auto` (same settings)


def trial(**train) -> TrialConfig:
    """The default trial with `train` overrides (dotted keys as nested dicts)."""
    return TrialConfig.model_validate({"train": train})


def estimate(cfg: TrialConfig, conf: dict = SMOL, device: str = "cuda"):
    shape = ModelShape.from_config(conf)
    return estimate_trial_memory(cfg, shape.num_params, shape, device)


@pytest.fixture(scope="module")
def ctx(tiny_model_dir) -> BuildContext:
    return BuildContext(resolve_model(str(tiny_model_dir)), layer=2, d_model=64, data_norm=12.0)


def test_shape_counts_parameters_from_the_config(tiny_model_dir):
    source = resolve_model(str(tiny_model_dir))
    lm, _ = load_lm(source)
    assert target_shape(source).num_params == sum(p.numel() for p in lm.parameters())
    assert ModelShape.from_config(SMOL).num_params == 134_515_008  # the embedded model's count
    assert 7.9e9 < ModelShape.from_config(LLAMA_8B).num_params < 8.1e9


def test_estimate_grows_with_batch_and_model_size():
    small, big = estimate(trial()), estimate(trial(), LLAMA_8B)
    assert big.total > 10 * small.total
    more = estimate(trial(av_sft={"batch_size": 64}, ar_sft={"batch_size": 128}))
    assert more.activations > small.activations and more.total > small.total
    with_rl = estimate(trial(rl={"steps": 1}))
    assert with_rl.stage == "RL" and with_rl.weights > small.weights  # + the reference AV
    # ddp splits the batch (activations), not the replicated weights and optimiser state
    cfg = trial(devices=8, av_sft={"batch_size": 64}, ar_sft={"batch_size": 128})
    ddp = estimate(cfg)
    assert ddp.activations < more.activations and ddp.weights == more.weights
    assert (
        estimate(
            cfg.model_copy(update={"train": cfg.train.model_copy(update={"strategy": "fsdp"})})
        ).total
        < ddp.total
    )


def test_an_ar_that_declares_its_memory_is_sized_by_it():
    """The flowchart AR's word tree runs no target block: its config says what it holds, and
    the AR warm start's weights and optimiser state follow that, not the target's blocks."""
    tree = {"variant": "flowchart", "depth": 4, "vocab_size": 512}
    small = estimate(TrialConfig.model_validate({"ar": tree}))
    shape = ModelShape.from_config(SMOL)
    own = TrialConfig.model_validate({"ar": tree}).ar.config.memory_shape(shape)
    assert own.trainable == 16 * (512 + shape.d_model) and own.blocks == 0
    assert small.stages["AR warm start"] < estimate(trial()).stages["AR warm start"]
    bigger = estimate(TrialConfig.model_validate({"ar": {**tree, "depth": 8}}))
    grown = 16 * (256 - 16) * (512 + shape.d_model)  # fp32 weights + AdamW: 16 bytes a weight
    assert bigger.stages["AR warm start"] - small.stages["AR warm start"] == grown


def test_lora_and_checkpointing_reduce_the_estimate():
    # the baseline AR is always a full fine-tune; the small AR (all blocks by default) has auto
    ar = {"variant": "small"}
    full = {"av": {"finetune": "full"}, "ar": {**ar, "finetune": "full"}}
    full = estimate(TrialConfig.model_validate(full), LLAMA_8B)
    auto = estimate(TrialConfig.model_validate({"ar": ar}), LLAMA_8B)  # auto: LoRA here
    assert auto.finetune == {"av": "lora", "ar": "lora"} and full.finetune["av"] == "full"
    assert auto.total < full.total / 2 and auto.optimiser < full.optimiser / 10
    ckpt = TrialConfig.model_validate({"ar": ar, "train": {"gradient_checkpointing": True}})
    ckpt = estimate(ckpt, LLAMA_8B)
    assert ckpt.activations < auto.activations / 3 and ckpt.total < auto.total
    assert estimate(trial()).finetune == {"av": "full", "ar": "full"}  # 135M: full


def test_too_small_a_device_is_one_line():
    est = estimate(trial(), LLAMA_8B)
    with pytest.raises(NLAError) as err:
        check_fits(est, "cuda:0", available=8 * GIB)
    msg = str(err.value)
    assert "\n" not in msg and "this trial needs about" in msg and "8.0 GiB free" in msg
    assert "gradient_checkpointing" in msg
    # CPU: every process of the node shares the RAM
    one = estimate(trial(), device="cpu")
    check_fits(one, "cpu", available=one.total + 1)
    with pytest.raises(NLAError):
        check_fits(estimate(trial(devices=4), device="cpu"), "cpu", available=one.total + 1)


def test_the_135m_default_fits_comfortably():
    for device in ("cuda", "cpu"):
        est = estimate(trial(), device=device)
        assert est.total < 6 * GIB, est.line()
        check_fits(est, device, available=24 * GIB)
    line = estimate(trial()).line()
    assert line.startswith("this trial needs about ") and "weights" in line and "\n" not in line


def test_finetune_auto_by_target_size(tmp_path, ctx):
    big = tmp_path / "big"
    big.mkdir()
    (big / "config.json").write_text(json.dumps(LLAMA_8B))
    source = ModelSource(str(big), "local", str(big), "local:x", 32, 4096)
    assert ModelShape.from_config(LLAMA_8B).num_params > LORA_AUTO_THRESHOLD
    assert resolve_finetune("auto", source) == "lora"
    assert resolve_finetune("full", source) == "full"
    assert resolve_finetune("auto", ctx.source) == "full"
    # the component keeps the resolved choice: its checkpoint config is what it was before
    av = build("av", {}, ctx)
    assert av.cfg.finetune == "full" and not hasattr(av.lm, "peft_config")
    ar = build("ar", {"variant": "small"}, ctx)
    assert ar.cfg.finetune == "full"
    # byte for byte the sidecar config of the old default (`finetune: full`, same key order)
    old = BaselineAVConfig(finetune="full").model_dump(mode="json")
    assert yaml.safe_dump(av.cfg.model_dump(mode="json"), sort_keys=False) == yaml.safe_dump(
        old, sort_keys=False
    )


def test_default_warm_start_keys_do_not_see_variant_defaults():
    """The key hashes the section as written ({"variant": "baseline"}), so `finetune: auto` as
    the default leaves it unchanged; pinned to the value before that change."""
    cfg = TrialConfig()
    assert dict(cfg.av) == {"variant": "baseline"} and cfg.model_dump()["av"] == {
        "variant": "baseline"
    }
    cache = WarmStartCache(Path("."), "ds", "32-true", "cpu", 0, version="0.1.0")
    assert cache.key("av", cfg.av, cfg.train.av_sft) == KEY_BEFORE


def _loss_and_grads(component, loss_fn):
    component.zero_grad(set_to_none=True)
    loss = loss_fn()
    loss.backward()
    grads = {n: p.grad.clone() for n, p in component.named_parameters() if p.grad is not None}
    return loss.detach(), grads


@pytest.mark.parametrize(
    "section",
    [
        {},
        {"finetune": "lora", "lora_r": 4},
        {"injection": {"site": 1, "mode": "add", "scale": "match"}, "frozen_blocks": 1},
    ],
)
def test_gradient_checkpointing_keeps_loss_gradients_and_injection(ctx, section):
    torch.manual_seed(0)
    av = build("av", section, ctx).train()
    vectors = torch.randn(3, 64) * 12
    texts = ["a cat sat on the mat", "numbers and tables", "the end of a sentence"]

    def loss():
        return av.sft_loss(vectors, texts)

    ref_loss, ref_grads = _loss_and_grads(av, loss)
    assert enable_gradient_checkpointing(av)
    layers = av._decoder.layers
    site = av.injector.cfg.block
    assert not layers[site].gradient_checkpointing  # the hooked block runs as is
    assert all(b.gradient_checkpointing for i, b in enumerate(layers) if i != site)
    ck_loss, ck_grads = _loss_and_grads(av, loss)
    assert torch.allclose(ck_loss, ref_loss, atol=1e-5)
    assert ref_grads.keys() == ck_grads.keys() and ref_grads
    for name, g in ref_grads.items():
        assert torch.allclose(ck_grads[name], g, atol=1e-5), name
    # the vector still reaches the model under checkpointing
    other, _ = _loss_and_grads(av, lambda: av.sft_loss(-vectors, texts))
    assert not torch.allclose(other, ck_loss)


def test_gradient_checkpointing_finds_the_ar_backbone(ctx):
    ar = build("ar", {}, ctx).train()
    texts, vectors = ["one", "two words"], torch.randn(2, 64)
    ref_loss, ref_grads = _loss_and_grads(ar, lambda: ar.loss(texts, vectors))
    assert enable_gradient_checkpointing(ar)
    ck_loss, ck_grads = _loss_and_grads(ar, lambda: ar.loss(texts, vectors))
    assert torch.allclose(ck_loss, ref_loss, atol=1e-5)
    assert all(torch.allclose(ck_grads[n], g, atol=1e-5) for n, g in ref_grads.items())
    assert not enable_gradient_checkpointing(build("ar", {"variant": "flowchart"}, ctx))


def test_frozen_weights_in_bf16_are_a_no_op_under_autocast(ctx):
    assert frozen_weight_dtype("cpu", "bf16-mixed") == torch.bfloat16
    assert frozen_weight_dtype("cpu", "32-true") is None
    assert frozen_weight_dtype("cuda", "bf16-mixed") == torch.bfloat16
    assert frozen_weight_dtype("cuda", "32-true") is None
    section = {"finetune": "lora", "lora_r": 4}
    torch.manual_seed(0)
    plain = build("av", section, ctx)
    torch.manual_seed(0)
    low = build("av", section, replace(ctx, frozen_dtype=torch.bfloat16))  # verify_injection ran
    base = low.lm.get_base_model()
    assert base.model.layers[0].self_attn.q_proj.base_layer.weight.dtype == torch.bfloat16
    assert base.model.embed_tokens.weight.dtype == torch.float32  # tied to the LM head: kept
    assert all(p.dtype == torch.float32 for p in low.parameters() if p.requires_grad)
    vectors, texts = torch.randn(2, 64) * 12, ["first text", "second one"]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        a, b = plain.sft_loss(vectors, texts), low.sft_loss(vectors, texts)
    assert torch.equal(a, b)
    assert hold_frozen_weights(plain, None) == 0
    # a full fine-tune has no frozen Linear: nothing changes
    assert hold_frozen_weights(build("av", {}, ctx), torch.bfloat16) == 0


def test_a_frozen_head_is_cast_once_per_generate_with_the_same_logits(ctx):
    av = build("av", {"finetune": "lora", "lora_r": 4}, replace(ctx, frozen_dtype=torch.bfloat16))
    base = av.lm.get_base_model()
    head = base.get_output_embeddings()
    assert not head.weight.requires_grad and head.weight.dtype == torch.float32
    hidden = torch.randn(3, head.in_features)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        want = head(hidden)
        with head_cast_once(base):
            low = base.get_output_embeddings()
            assert low is not head and low.weight.dtype == torch.bfloat16
            got = low(hidden)
        assert base.get_output_embeddings() is head  # given back
    assert torch.equal(got, want)
    # outside autocast, or with a head that trains (autocast caches its cast): nothing changes
    with head_cast_once(base):
        assert base.get_output_embeddings() is head
    full = build("av", {}, ctx).lm
    with torch.autocast("cpu", dtype=torch.bfloat16), head_cast_once(full):
        assert full.get_output_embeddings().weight.dtype == torch.float32
