"""A public-layout export reads by the release format's own rules as nla_variants reads it.

`nla_variants.variants.testing.ReleaseFormatReader` reads an exported `ar/` directory with plain
transformers and the format's rules alone (the value head without bias, the template tokenised
with special tokens and a declared BOS first, the last token's hidden state at K + 1 blocks
without the final norm). On a tiny model of every family, its reconstructions and cosines equal
the in-memory AR's, the loaded export's and `nla explain`'s within 1e-4. The release AR's head
is bias-free and its closed-form readout has no intercept (the mean direction lives in the
weight), its warm-start cache key moved, and what the layout cannot hold is refused in one line.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

import nla_variants.explain.explain as explain_module
from nla_variants.artifacts.loading import load, locate
from nla_variants.artifacts.public_layout import export_public
from nla_variants.common.errors import NLAError
from nla_variants.config import TrialConfig, load_config
from nla_variants.core.vectors import normalize
from nla_variants.explain.explain import ExplainSettings, TextInput, explain
from nla_variants.target import resolve_model
from nla_variants.training.checkpoint import WEIGHTS, load_component, save_checkpoint
from nla_variants.training.readout import head_features, refit_head
from nla_variants.training.warm_cache import WarmStartCache
from nla_variants.variants.pair import NLA, NLARef
from nla_variants.variants.registry import BuildContext, build
from nla_variants.variants.testing import (
    FAMILIES,
    ReleaseFormatReader,
    closing_generate,
    make_tiny_model,
)

TEXT = "Entry 7: the river market signal lantern orbit, and then the harbor engine."
WORDS = ["harbor", "python", "table", "river", "price", "garden", "engine", "winter"]
PROBES = ["A story about a harbor\nThe sentence stops after the", "Python code, a def line"]
TOL = 1e-4  # in cosine: the bar (the differences are fp32 rounding, ~1e-6)


def rows(n: int, d: int = 64) -> tuple[list[str], torch.Tensor]:
    """Explanations naming one of 8 words; vectors share a large mean direction (as real
    activations do) plus a direction per word: a bias-free head must carry the mean itself."""
    g = torch.Generator().manual_seed(0)
    mean = torch.randn(d, generator=g) * 20
    centres = torch.randn(len(WORDS), d, generator=g) * 5
    which = torch.randint(len(WORDS), (n,), generator=g)
    texts = [f"The text is about the {WORDS[i]}." for i in which.tolist()]
    return texts, mean + centres[which] + torch.randn(n, d, generator=g)


def release_nla(model: Path, workdir: Path) -> NLA:
    """An embedding-injection AV with no system message and a release AR whose head is the
    closed-form readout of a few rows: what `nla export --layout public` writes."""
    source = resolve_model(str(model))
    ctx = BuildContext(source, 2, 64, data_norm=5.0)
    torch.manual_seed(0)
    av = build("av", {"variant": "baseline", "system": ""}, ctx).eval()
    ar = build("ar", {"variant": "release"}, ctx).eval()
    texts, vectors = rows(48)
    refit_head(ar, texts, vectors, None, penalty=1e-2, batch_size=16)
    ref = NLARef("run", workdir, str(model), 2, target_fingerprint=source.fingerprint)
    return NLA(av, ar, ref)


def cosines(pred: torch.Tensor, vectors: torch.Tensor) -> torch.Tensor:
    return (normalize(pred.double()) * normalize(vectors.double())).sum(-1)


@pytest.fixture(scope="module", params=FAMILIES)
def exported(request, tmp_path_factory, embedded_dir) -> tuple[str, NLA, Path]:
    family = request.param
    tmp = tmp_path_factory.mktemp(f"public-{family}")
    model = make_tiny_model(tmp / "model", embedded_dir, family=family, blocks=3)
    nla = release_nla(model, tmp)
    return family, nla, export_public(nla, tmp / "public")


def test_the_formats_reader_reconstructs_as_we_do(exported):
    _, nla, out = exported
    reader = ReleaseFormatReader(out / "ar")
    texts, vectors = rows(48)
    texts += PROBES
    vectors = torch.cat([vectors, vectors[:2]])
    assert [reader.token_ids(t) for t in texts] == nla.ar.sequences(texts)
    assert all(reader.token_ids(t)[0] == reader.tokenizer.bos_token_id for t in PROBES)
    with torch.no_grad():
        ours, loaded = nla.ar(texts), load(locate(out)).ar(texts)
    theirs = reader.reconstruct(texts)
    torch.testing.assert_close(theirs, loaded, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(theirs, ours, atol=1e-4, rtol=1e-4)
    cos = cosines(theirs, vectors)
    assert float((cos - cosines(loaded, vectors)).abs().max()) < TOL
    # with no bias to carry it, the weight carries the mean direction: the fit's rows read well
    assert float(cos[:48].mean()) > 0.9


def test_explain_scores_what_the_formats_reader_scores(exported, monkeypatch):
    """`nla explain` on the export and the format's reader give each explanation the same
    cosine against the activation explain read (the tiny AV's generations are closed for it)."""
    from nla_variants.variants.av.baseline import BaselineAV

    _, _, out = exported
    monkeypatch.setattr(BaselineAV, "real_generate", BaselineAV.generate, raising=False)
    monkeypatch.setattr(BaselineAV, "generate", closing_generate)
    seen: list[torch.Tensor] = []
    real_extract = explain_module.extract

    def spy(*args, **kwargs):
        seen.append(real_extract(*args, **kwargs))
        return seen[-1]

    monkeypatch.setattr(explain_module, "extract", spy)
    settings = ExplainSettings(
        max_new_tokens=8, precision="fp32", device="cpu", baseline="none", samples=4,
        temperature=1.0,
    )  # fmt: skip
    records = explain(locate(out), [TextInput(TEXT, "--text")], settings, progress=False).records
    read = [
        (i, text, r["cos"][j])
        for i, r in enumerate(records)
        for j, text in enumerate(r["explanations"])
        if text is not None
    ]
    assert len(read) >= 3, "too few closed explanations to compare"
    index, texts, scores = zip(*read, strict=True)
    theirs = cosines(ReleaseFormatReader(out / "ar").reconstruct(list(texts)), seen[0][list(index)])
    ours = torch.tensor(scores, dtype=torch.float64)
    assert float((theirs - ours).abs().max()) < TOL  # explain's cosines are rounded to 1e-4 / 2


def test_a_tokenizer_without_bos_reads_none_there_and_here(tmp_path, embedded_dir):
    """Qwen's tokenizers declare no BOS: the release AR reads none, and the export's tokenizer
    is left as it is."""
    from transformers import AutoTokenizer

    model = make_tiny_model(tmp_path / "qwen", embedded_dir, family="qwen2", blocks=3)
    tokenizer = AutoTokenizer.from_pretrained(model)
    tokenizer.bos_token = None
    tokenizer.save_pretrained(model)
    nla = release_nla(model, tmp_path)
    out = export_public(nla, tmp_path / "public")
    reader = ReleaseFormatReader(out / "ar")
    assert reader.tokenizer.bos_token_id is None
    assert [reader.token_ids(t) for t in PROBES] == nla.ar.sequences(PROBES)
    assert nla.ar.sequences(PROBES)[0][:1] == nla.ar.tokenizer("Summary")["input_ids"][:1]
    with torch.no_grad():
        torch.testing.assert_close(reader.reconstruct(PROBES), nla.ar(PROBES), atol=1e-4, rtol=1e-4)


# -- the release AR's bias-free head -------------------------------------------------------------


@pytest.fixture(scope="module")
def ctx(tiny_model_dir) -> BuildContext:
    return BuildContext(resolve_model(str(tiny_model_dir)), layer=2, d_model=64, data_norm=5.0)


def test_the_release_head_has_no_bias_and_its_readout_no_intercept(ctx):
    assert build("ar", {"variant": "baseline"}, ctx).head.bias is not None  # others keep theirs
    ar = build("ar", {"variant": "release"}, ctx).eval()
    assert ar.head.bias is None and "head.bias" not in dict(ar.named_parameters())
    texts, vectors = rows(64)
    refit_head(ar, texts, vectors, None, penalty=1e-2, batch_size=32)
    # the normal equations of argmin |X W - Y|^2 + lam |W|^2, X uncentred:
    # X^T (X W - Y) = -lam W, lam = penalty x (the features' total variance) / d
    x = head_features(ar, texts, None, 32).double()
    w = ar.head.weight.detach().double().T
    y = normalize(vectors.double())
    lam = 1e-2 * (x - x.mean(0)).pow(2).sum() / 64
    grad = x.T @ (x @ w - y)
    torch.testing.assert_close(grad, -lam * w, atol=1e-3, rtol=1e-2)


def test_the_release_ars_warm_start_key_moved_and_no_other(tmp_path):
    """A cached release AR from before (biased head, no BOS on SmolLM2) is never reused; the
    baseline's key is the one tests/test_trial.py pins."""

    def ar_key(*overrides: str) -> str:
        cfg = load_config(None, TrialConfig, list(overrides))
        cache = WarmStartCache(Path("cache"), "ds-0123", "32-true", "cpu", cfg.seed, "0.0.0-test")
        av = cache.key("av", cfg.av, cfg.train.av_sft)
        return cache.key("ar", cfg.ar, cfg.train.ar_sft, {"schema": None, "av": av})

    assert ar_key() == "fb41ecfe434c57d7"
    assert ar_key("ar.variant=release") not in ("0224d868d6f598ed", ar_key())  # 0224...: before


def test_a_release_checkpoint_with_a_head_bias_is_refused(ctx, tmp_path):
    ar = build("ar", {"variant": "release"}, ctx)
    path = save_checkpoint(tmp_path / "ar", ar, "ar", ctx)
    weights = load_file(path / WEIGHTS)
    save_file({**weights, "head.bias": torch.ones(64)}, path / WEIGHTS)
    with pytest.raises(NLAError, match="has a head bias") as err:
        load_component(path, ctx)
    assert "\n" not in str(err.value)


# -- what the layout refuses --------------------------------------------------------------------


def test_an_ar_that_reads_no_declared_bos_is_refused(ctx, tmp_path):
    """SmolLM2's tokenizer declares BOS and prepends none: the baseline AR reads none, the
    release reads it first, so the export is refused naming BOS (the release AR is not)."""
    source = ctx.source
    av = build("av", {"variant": "baseline", "system": ""}, ctx).eval()
    ar = build("ar", {"variant": "baseline"}, ctx).eval()
    ref = NLARef("run", tmp_path, source.spec, 2, target_fingerprint=source.fingerprint)
    with pytest.raises(NLAError, match="reads no BOS first") as err:
        export_public(NLA(av, ar, ref), tmp_path / "public")
    assert "ar.variant: release" in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "public").exists()


def test_a_head_bias_is_refused_not_written_aside(tmp_path, embedded_dir):
    """A baseline AR on a Gemma (whose tokenizer prepends BOS, so the baseline reads it too)
    reads its template as the release does; its head's bias is what the layout cannot hold."""
    model = make_tiny_model(tmp_path / "gemma", embedded_dir, family="gemma3", blocks=3)
    source = resolve_model(str(model))
    ctx = BuildContext(source, 2, 64, data_norm=5.0)
    av = build("av", {"variant": "baseline", "system": ""}, ctx).eval()
    ar = build("ar", {"variant": "baseline", "template": "Read:\n{explanation}\nVector:"}, ctx)
    ref = NLARef("run", tmp_path, str(model), 2, target_fingerprint=source.fingerprint)
    with torch.no_grad():
        ar.head.bias.fill_(0.5)
    with pytest.raises(NLAError, match="ar.head.bias: the AR's head has a bias") as err:
        export_public(NLA(av, ar.eval(), ref), tmp_path / "public")
    assert "ar.variant: release" in str(err.value)


def test_an_earlier_exports_bias_file_is_refused_on_load(exported, tmp_path):
    import shutil

    _, _, out = exported
    copy = Path(shutil.copytree(out, tmp_path / "old"))
    save_file({"bias": torch.ones(64)}, copy / "ar" / "value_head_bias.safetensors")
    with pytest.raises(NLAError, match="head bias") as err:
        load(locate(copy))
    assert "\n" not in str(err.value)


def test_the_formats_reader_refuses_a_tokenizer_that_drops_its_declared_bos(
    exported, tmp_path, embedded_dir
):
    """What the reference critic found in earlier exports: SmolLM2's own tokenizer in ar/."""
    import shutil

    from transformers import AutoTokenizer

    family, _, out = exported
    copy = Path(shutil.copytree(out, tmp_path / "old"))
    AutoTokenizer.from_pretrained(embedded_dir).save_pretrained(copy / "ar")
    with pytest.raises(ValueError, match="declares BOS"):
        ReleaseFormatReader(copy / "ar")
