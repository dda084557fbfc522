"""Target model: layer convention, early exit, batching, tokenisation, model resolution."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from nla_variants.common.errors import NLAError
from nla_variants.target import (
    TargetModel,
    check_layer,
    length_buckets,
    resolve_model,
    truncated_backbone,
)


@pytest.fixture(scope="module")
def tiny(tiny_model_dir) -> TargetModel:
    return TargetModel(str(tiny_model_dir), precision="fp32", device="cpu")


TEXTS = [
    "The lighthouse keeper counted the ships every evening, and wrote their names in a ledger.",
    "def area(r):\n    return 3.14159 * r * r\n",
    "Short one.",
]


@pytest.mark.parametrize("layer", [1, 2, 3])
def test_residuals_match_hidden_states_convention(tiny, layer):
    """layer l == hidden_states[l] of a full forward with output_hidden_states, per position."""
    ids = tiny.tokenize(TEXTS)
    positions = [[0, len(s) // 2, len(s) - 1] for s in ids]
    got = tiny.residuals(ids, layer, positions, max_batch_tokens=64)
    for seq, pos, vec in zip(ids, positions, got, strict=True):
        with torch.no_grad():
            hs = tiny.model(torch.tensor([seq]), output_hidden_states=True).hidden_states
        want = hs[layer][0, pos].numpy()
        assert vec.dtype == np.float32 and vec.shape == (len(pos), tiny.d_model)
        np.testing.assert_allclose(vec, want, atol=1e-4, rtol=1e-4)


def test_early_exit_never_runs_blocks_above_layer(tiny):
    calls = []
    hooks = [
        block.register_forward_hook(lambda *_, i=i: calls.append(i))
        for i, block in enumerate(tiny.model.model.layers)
    ]
    try:
        tiny.residuals(tiny.tokenize(TEXTS[:1]), 2, [[3]])
    finally:
        for h in hooks:
            h.remove()
    assert sorted(set(calls)) == [0, 1]


def test_truncated_backbone_shares_weights_and_has_no_final_norm(tiny):
    view = truncated_backbone(tiny.model, 2)
    assert len(view.layers) == 2 and isinstance(view.norm, torch.nn.Identity)
    assert view.embed_tokens.weight is tiny.model.model.embed_tokens.weight
    assert len(tiny.model.model.layers) == 4  # the original is untouched
    assert not isinstance(tiny.model.model.norm, torch.nn.Identity)


def test_batching_and_padding_do_not_change_vectors(tiny):
    ids = tiny.tokenize(TEXTS)
    positions = [[len(s) - 1] for s in ids]
    batched = tiny.residuals(ids, 3, positions, max_batch_tokens=10_000)
    single = [tiny.residuals([s], 3, [p])[0] for s, p in zip(ids, positions, strict=True)]
    for a, b in zip(batched, single, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-4, rtol=1e-4)


def test_bf16_autocast_is_close_to_fp32(tiny_model_dir):
    ids = None
    out = {}
    for precision in ("fp32", "bf16"):
        m = TargetModel(str(tiny_model_dir), precision=precision, device="cpu")
        ids = ids or m.tokenize(TEXTS)
        out[precision] = np.concatenate(m.residuals(ids, 3, [[len(s) - 1] for s in ids]))
        assert out[precision].dtype == np.float32
    a, b = out["fp32"], out["bf16"]
    cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert cos.min() > 0.99


def test_length_buckets_respect_budget_and_cover_all():
    lengths = [5, 100, 7, 64, 64, 3, 128, 1]
    batches = list(length_buckets(lengths, max_batch_tokens=130))
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for b in batches:
        assert max(lengths[i] for i in b) * len(b) <= 130 or len(b) == 1


def test_tokenize_adds_no_special_tokens_and_splits_control_strings(tiny):
    tok = tiny.tokenizer
    ids = tiny.tokenize(["hello <|im_start|> world"])[0]
    assert tok.convert_tokens_to_ids("<|im_start|>") not in ids
    assert tok.bos_token_id not in ids


def test_check_layer_bounds():
    check_layer(20, 30, "m")
    for bad in (0, 30, 31):
        with pytest.raises(NLAError, match="outside 1..29"):
            check_layer(bad, 30, "m")


def test_resolve_model_errors(tmp_path):
    with pytest.raises(NLAError, match="does not exist"):
        resolve_model(str(tmp_path / "nope.gguf"))
    with pytest.raises(NLAError, match="does not exist"):
        resolve_model("./no/such/dir")
    with pytest.raises(NLAError, match="no config.json"):
        resolve_model(str(tmp_path))
    (tmp_path / "config.json").write_text(json.dumps({"num_hidden_layers": 2, "hidden_size": 8}))
    (tmp_path / "pytorch_model.bin").write_bytes(b"pickle")
    with pytest.raises(NLAError, match="no .safetensors"):
        resolve_model(str(tmp_path))


def test_local_dir_fingerprint_and_dims(tiny_model_dir):
    src = resolve_model(str(tiny_model_dir))
    assert (src.kind, src.num_layers, src.d_model) == ("local", 4, 64)
    assert src.fingerprint.startswith("local:")
