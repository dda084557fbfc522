"""`nla export` and `nla explain` on the real embedded model (SmolLM2-135M-Instruct): an NLA in
the public release layout written from this project's components reads back to the same AV
generations, and explain reads the release's layer index K at hidden_states[K + 1]."""

from __future__ import annotations

import tempfile

import pytest
import torch
import yaml

from nla_variants.artifacts.loading import load, locate
from nla_variants.artifacts.public_layout import export_public
from nla_variants.explain.explain import ExplainSettings, TextInput, explain
from nla_variants.target import TargetModel, resolve_model
from nla_variants.variants.pair import NLA, NLARef
from nla_variants.variants.registry import BuildContext, build

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


def test_a_release_export_reads_by_the_formats_rules_as_explain_scores_it(tmp_path, monkeypatch):
    """Issue 26's bar on the embedded model: a default release AR (bias-free head, fitted in
    closed form on the text's own layer-20 activations, so its weight carries the mean
    direction) exported in the public layout; the format's own reader
    (`nla_variants.variants.testing.ReleaseFormatReader`: no head bias, special tokens with SmolLM2's
    declared BOS first, the last token) gives the cosines the loaded export and `nla explain`
    give, within 1e-4. The untrained AV's samples are closed by `closing_generate`."""
    from nla_variants.core.vectors import normalize
    from nla_variants.explain.explain import ExplainSettings
    from nla_variants.training.readout import refit_head
    from nla_variants.variants.av.baseline import BaselineAV
    from nla_variants.variants.testing import ReleaseFormatReader, closing_generate

    source = resolve_model("embedded")
    target = TargetModel("embedded", precision="fp32", device="cpu")
    ids = target.tokenize([TEXT])[0]
    with torch.no_grad():
        hidden = target.model(torch.tensor([ids]), output_hidden_states=True).hidden_states
    vectors = hidden[20][0]
    texts = [target.tokenizer.decode(ids[max(0, p - 6) : p + 1]) for p in range(len(ids))]
    ctx = BuildContext(source, 20, source.d_model, data_norm=219.0)
    torch.manual_seed(0)
    av = build("av", {"variant": "baseline", "system": ""}, ctx).eval()
    ar = build("ar", {"variant": "release"}, ctx).eval()
    refit_head(ar, texts, vectors, None, penalty=0.01, batch_size=32)
    ref = NLARef("run", tmp_path, "embedded", 20, target_fingerprint=source.fingerprint)
    out = export_public(NLA(av, ar, ref), tmp_path / "public")

    def cos(pred: torch.Tensor, gold: torch.Tensor) -> torch.Tensor:
        return (normalize(pred.double()) * normalize(gold.double())).sum(-1)

    reader = ReleaseFormatReader(out / "ar")
    assert reader.token_ids(texts[0])[0] == reader.tokenizer.bos_token_id
    rows = list(range(0, len(texts), 4))
    theirs = cos(reader.reconstruct([texts[i] for i in rows]), vectors[rows])
    with torch.no_grad():
        ours = cos(load(locate(out)).ar([texts[i] for i in rows]), vectors[rows])
    assert float(theirs.mean()) > 0.5  # the head carries the mean direction without a bias

    monkeypatch.setattr(BaselineAV, "real_generate", BaselineAV.generate, raising=False)
    monkeypatch.setattr(BaselineAV, "generate", closing_generate)
    settings = ExplainSettings(
        positions="::16", max_new_tokens=8, precision="fp32", samples=2, temperature=1.0
    )
    records = explain(locate(out), [TextInput(TEXT, "--text")], settings, False).records
    read = [
        (r["position"], text, r["cos"][j])
        for r in records
        for j, text in enumerate(r["explanations"])
        if text is not None
    ]
    assert read, "no closed explanation to score"
    for r in records:
        assert r["norm"] == pytest.approx(float(vectors[r["position"]].norm()), rel=1e-3)
    positions, explained, scores = zip(*read, strict=True)
    # explain reads the text as the public layout says (with special tokens): same positions
    # here, since SmolLM2's tokenizer prepends nothing to the text
    by_reader = cos(reader.reconstruct(list(explained)), vectors[list(positions)])
    vs_ar = float((theirs - ours).abs().max())
    vs_explain = float((by_reader - torch.tensor(scores, dtype=torch.float64)).abs().max())
    print(
        f"\nformat reader: mean cosine {float(theirs.mean()):.4f} on {len(rows)} rows; worst "
        f"cosine difference vs the loaded AR {vs_ar:.2e}, vs nla explain {vs_explain:.2e} "
        f"({len(read)} explanations; explain rounds cosines to 4 decimals)"
    )
    assert max(vs_ar, vs_explain) < 1e-4
