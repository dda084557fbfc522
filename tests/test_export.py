"""NLAs that travel, on the tiny model: `nla export` and loading back give the same explanations
as the run (greedy); LoRA kept as an adapter or merged; the public NLA release layout written
(with every inexpressible setting refused in one line) and read, including a release-layout NLA
made here by hand, the layer mapping (their K = our K + 1), and tampered sidecars."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file, save_file

from nla_variants.artifacts.loading import load, locate
from nla_variants.artifacts.public_layout import export_public
from nla_variants.cli import main
from nla_variants.common.errors import NLAError
from nla_variants.explain.explain import ExplainSettings, TextInput, explain
from nla_variants.target import layer_from_release, release_layer_index, resolve_model
from nla_variants.variants.pair import NLA, NLARef
from nla_variants.variants.registry import BuildContext, build

TEXT = "Entry 7: the river market signal lantern orbit, and then the harbor engine."
SETTINGS = ExplainSettings(
    max_new_tokens=12, precision="fp32", device="cpu", baseline="none", positions="::3"
)


def explained(path: Path) -> list[dict]:
    return explain(locate(path), [TextInput(TEXT, "--text")], SETTINGS, progress=False).records


def assert_same_explanations(a: list[dict], b: list[dict]) -> None:
    assert [r["explanations"] for r in a] == [r["explanations"] for r in b]
    assert [r["raw"] for r in a] == [r["raw"] for r in b]
    for x, y in zip(a, b, strict=True):
        assert x["norm"] == pytest.approx(y["norm"], rel=1e-5)
        assert x["cos"] == pytest.approx(y["cos"], abs=1e-3)


def assert_same_reconstructions(a: Path, b: Path) -> None:
    """The loaded ARs predict the same vectors (most tiny-model generations never close their
    tag, so the explain records alone would not exercise the AR)."""
    texts = ["A story about a harbor\nThe sentence stops after the", "Python code, a def line"]
    with torch.no_grad():
        want, got = (load(locate(p)).ar(texts) for p in (a, b))
    torch.testing.assert_close(want, got, atol=1e-5, rtol=1e-5)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_model_dir, trained_run):
    return trained_run(tmp_path_factory.mktemp("export-run"), tiny_model_dir)


@pytest.fixture(scope="module")
def release_ready(tmp_path_factory, tiny_model_dir, trained_run):
    """A run whose settings the public layout can hold: no system message, the release AR."""
    tmp = tmp_path_factory.mktemp("release-run")
    return trained_run(tmp, tiny_model_dir, **{"av.system": "", "ar": {"variant": "release"}})


def test_export_round_trip_gives_the_runs_explanations(trained, tmp_path, capsys):
    out = tmp_path / "nla"
    assert main(["export", str(trained), str(out), "-q"]) == 0, capsys.readouterr().err
    side = yaml.safe_load((out / "nla.yaml").read_text())
    assert side["layer"] == 2 and side["public_layer_index"] == 1
    assert side["placeholder"]["token_id"] and side["prompt_templates"]["av_prompt"]
    assert set(side["context"]["tensors"]) == {"data_mean", "data_std", "train_mean"}
    assert (out / "av" / "config.json").is_file() and (out / "av" / "model.safetensors").is_file()
    assert json.loads((out / "ar" / "config.json").read_text())["num_hidden_layers"] == 2
    card = (out / "README.md").read_text()
    assert "## Training data" in card and "roundtrip_fve" in card and "## Recipe" in card
    assert_same_explanations(explained(trained), explained(out))
    assert_same_reconstructions(trained, out)
    assert main(["export", str(trained), str(out), "-q"]) == 0  # an earlier export is replaced
    umask = os.umask(0)
    os.umask(umask)
    for path in (out, out / "av" / "model.safetensors", out / "nla.yaml"):
        assert path.stat().st_mode & 0o777 == (0o777 if path.is_dir() else 0o666) & ~umask


def test_lora_is_kept_as_an_adapter_or_merged(tmp_path, tiny_model_dir, trained_run):
    lora = trained_run(tmp_path, tiny_model_dir, **{"av.finetune": "lora"})
    for mode in ("adapter", "merge"):
        assert main(["export", str(lora), str(tmp_path / mode), "--lora", mode, "-q"]) == 0
    assert (tmp_path / "adapter" / "av" / "adapter_config.json").is_file()
    assert not (tmp_path / "merge" / "av" / "adapter_config.json").is_file()
    assert_same_explanations(explained(lora), explained(tmp_path / "adapter"))
    # merged weights compute W + BA in one matmul: the same model up to rounding
    a, b = (load(locate(p)).av for p in (lora, tmp_path / "merge"))
    vectors = torch.randn(2, 64, generator=torch.Generator().manual_seed(0)) * 3
    responses = a.encode_responses(["a harbor at night", "python code"])
    with torch.no_grad():
        la, _ = a.response_logprobs(vectors, responses)
        lb, _ = b.response_logprobs(vectors, responses)
    torch.testing.assert_close(la, lb, atol=1e-4, rtol=1e-4)


def test_public_layout_round_trip(release_ready, tmp_path, capsys):
    out = tmp_path / "public"
    assert main(["export", str(release_ready), str(out), "--layout", "public", "-q"]) == 0
    av_meta = yaml.safe_load((out / "av" / "nla_meta.yaml").read_text())
    ar_meta = yaml.safe_load((out / "ar" / "nla_meta.yaml").read_text())
    assert av_meta["kind"] == ar_meta["kind"] == "nla_model"
    assert (av_meta["role"], ar_meta["role"]) == ("av", "ar")
    assert (
        av_meta["extraction_layer_index"] == 1 and ar_meta["critic"]["extraction_layer_index"] == 1
    )
    assert "{injection_char}" in av_meta["prompt_templates"]["av"]
    assert "{explanation}" in ar_meta["prompt_templates"]["ar"]
    assert av_meta["extraction"]["injection_scale"] > 0 and ar_meta["extraction"]["mse_scale"] == 8
    assert json.loads((out / "ar" / "config.json").read_text())["num_hidden_layers"] == 2
    assert set(load_file(out / "ar" / "value_head.safetensors")) == {"weight"}
    assert_same_explanations(explained(release_ready), explained(out))
    assert_same_reconstructions(release_ready, out)


def test_layer_mapping():
    assert release_layer_index(20) == 19 and layer_from_release(19) == 20
    assert layer_from_release(release_layer_index(7)) == 7


@pytest.fixture(scope="module")
def ctx(tiny_model_dir):
    source = resolve_model(str(tiny_model_dir))
    stats = {"data_mean": torch.zeros(64), "data_std": torch.ones(64)}
    return BuildContext(source, 2, 64, data_norm=8.0, **stats)


@pytest.mark.parametrize(
    ("av", "setting"),
    [
        ({"injection": {"site": 1}, "system": ""}, "av.injection.site"),
        ({"injection": {"mode": "add"}, "system": ""}, "av.injection.mode"),
        ({"injection": {"scale": "match"}, "system": ""}, "av.injection.scale"),
        ({"injection": {"center": "mean"}, "system": ""}, "av.injection.center"),
        ({}, "av.system"),
        ({"variant": "multitoken", "k": 2, "system": ""}, "av.variant multitoken"),
    ],
)
def test_settings_the_public_layout_cannot_hold_are_refused(av, setting, ctx, tmp_path):
    nla = NLA(
        build("av", {"variant": "baseline", **av}, ctx),
        build("ar", {"variant": "release"}, ctx),
        NLARef("run", tmp_path, ctx.source.spec, 2),
    )
    with pytest.raises(NLAError) as err:
        export_public(nla, tmp_path / "out")
    assert str(err.value).startswith(setting) and "(fix: " in str(err.value)
    assert not (tmp_path / "out").exists()


def test_a_run_with_a_system_message_is_refused_in_the_public_layout(trained, capsys):
    code = main(["export", str(trained), str(trained.parent / "pub"), "--layout", "public"])
    err = capsys.readouterr().err
    assert code == 2 and "av.system" in err and len(err.strip().splitlines()) == 1


# -- an NLA in the public release layout, made by hand -------------------------------------

CHAR = "号"  # one token in SmolLM2's tokenizer
AV_TEMPLATE = "Here is the vector:\n<concept>{injection_char}</concept>\nPlease explain it."
AR_TEMPLATE = "Summary of the following text: <text>{explanation}</text> <summary>"


def write_release_nla(root: Path, model_dir: Path, k: int) -> Path:
    """AV (actor) and AR (critic) directories as the release ships them, for layer index K."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    ids = tok.apply_chat_template(
        [{"role": "user", "content": AV_TEMPLATE.format(injection_char=CHAR)}],
        tokenize=True,
        add_generation_prompt=True,
    )
    ids = ids["input_ids"] if isinstance(ids, dict) or hasattr(ids, "keys") else ids
    (pos,) = [i for i, t in enumerate(ids) if t == tok.encode(CHAR)[0]]
    suffix = tok(AR_TEMPLATE.format(explanation="x"))["input_ids"][-4:]
    meta = {
        "kind": "nla_model",
        "schema_version": 2,
        "base_checkpoint": str(model_dir),
        "d_model": 64,
        "extraction_layer_index": k,
        "tokens": {
            "injection_char": CHAR,
            "injection_token_id": ids[pos],
            "injection_left_neighbor_id": ids[pos - 1],
            "injection_right_neighbor_id": ids[pos + 1],
            "critic_suffix_ids": suffix,
        },
        "prompt_templates": {"actor": AV_TEMPLATE, "critic": AR_TEMPLATE},
    }
    actor, critic = root / "actor", root / "critic"
    model.save_pretrained(actor)
    tok.save_pretrained(actor)
    av_meta = {**meta, "role": "actor", "extraction": {"injection_scale": 6.0, "mse_scale": 8.0}}
    (actor / "nla_meta.yaml").write_text(yaml.safe_dump(av_meta, allow_unicode=True))
    truncated = AutoModelForCausalLM.from_pretrained(model_dir, num_hidden_layers=k + 1)
    truncated.save_pretrained(critic)
    tok.save_pretrained(critic)
    g = torch.Generator().manual_seed(3)
    save_file(
        {"weight": torch.eye(64) + 0.01 * torch.randn(64, 64, generator=g)},
        critic / "value_head.safetensors",
    )
    ar_meta = {**meta, "role": "critic", "extraction": {"injection_scale": None, "mse_scale": 8.0}}
    ar_meta["critic"] = {"extraction_layer_index": k}
    (critic / "nla_meta.yaml").write_text(yaml.safe_dump(ar_meta, allow_unicode=True))
    return root


def test_a_release_layout_nla_loads_and_reads_layer_k_plus_one(tmp_path, tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    root = write_release_nla(tmp_path / "release", tiny_model_dir, k=1)
    for path in (root, root / "actor", root / "critic"):
        ref = locate(path)
        assert (ref.kind, ref.layer, ref.target) == ("public", 2, str(tiny_model_dir))
    result = explain(locate(root), [TextInput(TEXT, "--text")], SETTINGS, progress=False)
    nla = load(locate(root))
    assert nla.av.placeholder.text == CHAR and nla.av.scale == 6.0 and nla.av.cfg.system == ""
    assert nla.ar.variant_name == "release" and len(nla.ar.backbone.layers) == 2
    ids = AutoTokenizer.from_pretrained(tiny_model_dir)(TEXT)["input_ids"]
    with torch.no_grad():
        hidden = AutoModelForCausalLM.from_pretrained(tiny_model_dir)(
            torch.tensor([ids]), output_hidden_states=True
        ).hidden_states
    # the release's layer index K=1 is the output of block 1: hidden_states[2]
    for r in result.records:
        want = float(hidden[2][0, r["position"]].norm())
        assert r["norm"] == pytest.approx(want, rel=1e-4)
        assert r["cos"] is not None and r["fve"] is None  # no training mean in the release


def _set(meta: dict, dotted: str, value) -> None:
    *parents, leaf = dotted.split(".")
    for key in parents:
        meta = meta[key]
    if value is None:
        del meta[leaf]
    else:
        meta[leaf] = value(meta[leaf]) if callable(value) else value


@pytest.mark.parametrize(
    ("role", "key", "value", "needle"),
    [
        ("actor", "tokens.injection_left_neighbor_id", lambda v: v + 1, "placeholder"),
        ("actor", "tokens.injection_token_id", lambda v: v + 1, "placeholder"),
        ("actor", "tokens.injection_char", "\u00e9t\u00e9", "placeholder"),
        ("critic", "tokens.critic_suffix_ids", [5, 6], "critic_suffix_ids"),
        ("actor", "tokens.injection_char", None, "tokens.injection_char"),
        ("actor", "prompt_templates.actor", "no slot here", "prompt_templates.av"),
        ("actor", "extraction.injection_scale", "big", "injection_scale"),
        ("actor", "d_model", "sixty-four", "d_model"),
        ("critic", "extraction.mse_scale", None, "mse_scale"),
    ],
)
def test_a_tampered_sidecar_fails_in_one_line(
    role, key, value, needle, tmp_path, tiny_model_dir, capsys
):
    root = write_release_nla(tmp_path / "release", tiny_model_dir, k=1)
    path = root / role / "nla_meta.yaml"
    meta = yaml.safe_load(path.read_text())
    if key == "extraction.mse_scale":  # a raw-MSE AR: explicitly null
        meta["extraction"]["mse_scale"] = None
    else:
        _set(meta, key, value)
    path.write_text(yaml.safe_dump(meta, allow_unicode=True))
    out = tmp_path / "e.jsonl"
    capsys.readouterr()  # the writing above may print progress
    code = main(["explain", str(root), "--text", TEXT, "--out", str(out), "-q"])
    err = capsys.readouterr().err
    assert code == 2 and needle in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists()


def test_export_refuses_a_directory_it_did_not_write(trained, tmp_path, capsys):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    code = main(["export", str(trained), str(tmp_path / "mine"), "-q"])
    err = capsys.readouterr().err
    assert code == 2 and "not an NLA export" in err
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


@pytest.mark.parametrize(
    ("av", "ar"),
    [
        ({"variant": "multitoken", "k": 2}, {"variant": "flowchart", "vocab_size": 256}),
        ({"variant": "structured"}, {"variant": "context", "n_layers": 1}),
        (
            {"variant": "baseline", "finetune": "lora"},
            {"variant": "small", "head": "lowrank", "head_rank": 8},
        ),
        ({"variant": "baseline", "injection": {"site": 1, "center": "mean"}}, {"variant": "small"}),
    ],
)
def test_every_variant_exports_and_loads_to_the_same_outputs(av, ar, ctx, tmp_path):
    from nla_variants.artifacts.export import export_nla

    g = torch.Generator().manual_seed(5)
    nla = NLA(
        build("av", av, ctx), build("ar", ar, ctx), NLARef("run", tmp_path, ctx.source.spec, 2)
    )
    with torch.no_grad():  # move every trainable tensor away from its initialisation
        for p in [*nla.av.parameters(), *nla.ar.parameters()]:
            if p.requires_grad:
                p.add_(0.02 * torch.randn(p.shape, generator=g))
    vectors = torch.randn(2, 64, generator=g) * 3
    texts, sources = ["a harbor at night", "python code"], ["The boats", "def f("]
    responses = nla.av.encode_responses(texts)

    def outputs(pair: NLA) -> tuple[torch.Tensor, torch.Tensor]:
        pair.av.eval(), pair.ar.eval()
        with torch.no_grad():
            return pair.av.response_logprobs(vectors, responses)[0], pair.ar(texts, sources)

    want = outputs(nla)
    export_nla(nla, tmp_path / "out", lora="adapter")
    got = outputs(load(locate(tmp_path / "out")))
    for w, o in zip(want, got, strict=True):
        torch.testing.assert_close(o, w, atol=1e-4, rtol=1e-4)
