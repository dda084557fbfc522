"""`nla export` and `nla explain` on the real embedded model (SmolLM2-135M-Instruct): an NLA in
the public release layout written from this project's components reads back to the same AV
generations, and explain reads the release's layer index K at hidden_states[K + 1]."""

from __future__ import annotations

import tempfile

import pytest
import torch
import yaml

from nla_variants.explain import ExplainSettings, TextInput, explain
from nla_variants.loading import load, locate
from nla_variants.pair import NLA, NLARef
from nla_variants.public_layout import export_public
from nla_variants.registry import BuildContext, build
from nla_variants.target import TargetModel, resolve_model

pytestmark = pytest.mark.integration
TEXT = tempfile.__doc__


def test_public_layout_round_trip_on_the_embedded_model(tmp_path):
    source = resolve_model("embedded")
    ctx = BuildContext(source, 20, source.d_model, data_norm=219.0)
    torch.manual_seed(0)
    av = build("av", {"variant": "baseline", "system": ""}, ctx).eval()
    ar = build("ar", {"variant": "release"}, ctx).eval()
    ref = NLARef("run", tmp_path, "embedded", 20, target_fingerprint=source.fingerprint)
    export_public(NLA(av, ar, ref), tmp_path / "public")
    meta = yaml.safe_load((tmp_path / "public" / "av" / "nla_meta.yaml").read_text())
    assert meta["extraction_layer_index"] == 19 and meta["extraction"]["injection_scale"] == 219.0

    loaded = load(locate(tmp_path / "public"))
    assert loaded.av.prompt_ids.tolist() == av.prompt_ids.tolist()
    vectors = torch.randn(3, source.d_model, generator=torch.Generator().manual_seed(1)) * 200
    want, _ = av.generate(vectors, max_new_tokens=12)
    got, _ = loaded.av.generate(vectors, max_new_tokens=12)
    assert got == want
    texts = ["Software documentation about temporary files", "Python code, an import line"]
    with torch.no_grad():
        torch.testing.assert_close(loaded.ar(texts), ar(texts), atol=1e-4, rtol=1e-4)

    settings = ExplainSettings(positions="5,40,-1", max_new_tokens=12, precision="fp32")
    result = explain(locate(tmp_path / "public"), [TextInput(TEXT, "--text")], settings, False)
    target = TargetModel("embedded", precision="fp32", device="cpu")
    ids = target.tokenize([TEXT])[0]
    with torch.no_grad():
        hidden = target.model(torch.tensor([ids]), output_hidden_states=True).hidden_states
    for record in result.records:
        norm = float(hidden[20][0, record["position"]].norm())
        assert record["norm"] == pytest.approx(norm, rel=1e-3)
    assert "".join(result.documents[0]["tokens"]) == TEXT
