"""Every model family the published NLAs use (and GPT-2), each a tiny random-weight model built
from its transformers config class: the whole path (prepare, warm start, one RL step, evaluate,
explain, export in both layouts and load back with equal outputs), and what sets each family
apart: Gemma's sqrt(d) embedding scale at an embedding-site injection, its soft-capped logits,
sliding windows, the BOS rule in the AR, tied and untied embeddings, Qwen's biases, GPT-2's
block and norm names. `docs/families.md` says what is tested and refused per family."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import yaml

from nla_variants.artifacts.loading import load, locate
from nla_variants.cli import main
from nla_variants.common.errors import NLAError
from nla_variants.config import TrialConfig
from nla_variants.explain.explain import ExplainSettings, TextInput, explain
from nla_variants.target import decoder_blocks, decoder_parts, resolve_model
from nla_variants.variants.registry import BuildContext, build
from nla_variants.variants.testing import (
    FAMILIES,
    closing_generate,
    make_tiny_model,
    tiny_trial_config,
)

TEXT = "Entry 7: the river market signal lantern orbit, and then the harbor engine."
SETTINGS = ExplainSettings(
    max_new_tokens=8, precision="fp32", device="cpu", baseline="none", positions="::4"
)
PROBES = ["A story about a harbor\nThe sentence stops after the", "Python code, a def line"]
# one warm-start step per side and one RL step; the settings the public layout can hold
TRIAL = {
    "av.system": "",
    "ar": {"variant": "release"},
    "train.av_sft.steps": 2,
    "train.ar_sft.steps": 2,
    "train.rl.steps": 1,
    "train.rl.batch_size": 2,
    "train.rl.group_size": 2,
    "train.rl.eval_every": 0,
    "train.rl.max_response_tokens": 8,
    "eval.max_samples": 4,
    "mlflow.log_checkpoints": False,
}


@pytest.fixture(scope="module", params=FAMILIES)
def family_model(request, tmp_path_factory, embedded_dir) -> tuple[str, Path]:
    family = request.param
    directory = tmp_path_factory.mktemp(f"tiny-{family}")
    return family, make_tiny_model(directory, embedded_dir, family=family, blocks=3)


def explained(path: Path) -> list[dict]:
    return explain(locate(path), [TextInput(TEXT, "--text")], SETTINGS, progress=False).records


def assert_same_nla(a: Path, b: Path) -> None:
    """Greedy explanations, their scores and the AR's reconstructions agree."""
    x, y = explained(a), explained(b)
    assert [r["raw"] for r in x] == [r["raw"] for r in y]
    for r, s in zip(x, y, strict=True):
        assert r["norm"] == pytest.approx(s["norm"], rel=1e-5)
        assert r["cos"] == pytest.approx(s["cos"], abs=1e-3)
    with torch.no_grad():
        want, got = (load(locate(p)).ar(PROBES) for p in (a, b))
    torch.testing.assert_close(want, got, atol=1e-4, rtol=1e-4)


@pytest.mark.integration
def test_the_whole_path_runs_on_every_family(family_model, tmp_path, monkeypatch, capsys):
    from nla_variants.training.experiment import run_trial
    from nla_variants.variants.av.baseline import BaselineAV

    family, model = family_model
    cfg = tiny_trial_config(tmp_path, model, n_docs=16, max_words=60, **TRIAL)
    prepare_yaml = tmp_path / "prepare.yaml"
    prepare_yaml.write_text(yaml.safe_dump(cfg["data"]))
    assert main(["prepare", str(prepare_yaml), "-q"]) == 0, capsys.readouterr().err
    (dataset,) = (tmp_path / "datasets").glob("*/dataset.yaml")
    with monkeypatch.context() as m:  # some rollouts close their tag, so RL scores them
        m.setattr(BaselineAV, "real_generate", BaselineAV.generate, raising=False)
        m.setattr(BaselineAV, "generate", closing_generate)
        metrics = run_trial(TrialConfig.model_validate(cfg), progress=False)
        assert list((tmp_path / "datasets").glob("*/dataset.yaml")) == [dataset]  # reused
        assert (metrics["av_sft/steps"], metrics["rl/steps"]) == (2.0, 1.0)
        assert metrics["rl/skipped_steps"] == 0.0
        run = Path(cfg["output_dir"]) / metrics["run_id"]
        report = tmp_path / "report.json"
        args = ["evaluate", str(run), "--samples", "4", "--precision", "fp32", "--out", str(report)]
        assert main([*args, "-q"]) == 0, capsys.readouterr().err
    scores = json.loads(report.read_text())["metrics"]
    for key in ("roundtrip_fve", "ar_teacher_fve"):
        assert math.isfinite(scores[key]), key
        assert scores[key] == pytest.approx(metrics[f"eval/{key}"], abs=1e-4), key

    out = tmp_path / "e.jsonl"
    fast = ["--max-new-tokens", "8", "--precision", "fp32", "--device", "cpu", "-q"]
    assert main(["explain", str(run), "--text", TEXT, "--out", str(out), *fast]) == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert records and all(-1 <= r["cos"][0] <= 1 for r in records)

    for layout in ("nla_variants", "public"):
        exported = tmp_path / layout
        code = main(["export", str(run), str(exported), "--layout", layout, "-q"])
        assert code == 0, capsys.readouterr().err
        assert_same_nla(run, exported)


# -- what sets each family apart, in seconds ---------------------------------------------------


def av_of(model: Path, **section) -> torch.nn.Module:
    source = resolve_model(str(model))
    ctx = BuildContext(source, 2, 64, data_norm=5.0)
    return build("av", {"variant": "baseline", "system": "", **section}, ctx).eval()


def ar_of(model: Path, variant: str) -> torch.nn.Module:
    ctx = BuildContext(resolve_model(str(model)), 2, 64)
    return build("ar", {"variant": variant}, ctx).eval()


def test_blocks_norms_and_dims_are_found_by_each_familys_names(family_model):
    from transformers import AutoModelForCausalLM

    family, model = family_model
    source = resolve_model(str(model))
    assert (source.num_layers, source.d_model) == (3, 64)
    lm = AutoModelForCausalLM.from_pretrained(model)
    _, blocks, norm = decoder_parts(lm)
    assert (blocks, norm) == (("h", "ln_f") if family == "gpt2" else ("layers", "norm"))
    tied = lm.get_input_embeddings().weight is lm.get_output_embeddings().weight
    assert tied == (family not in ("qwen3", "mistral", "phi3"))
    ar = ar_of(model, "baseline")
    assert ar.metadata()["blocks"] == 2
    biases = [n for n, _ in ar.backbone.named_parameters() if n.endswith("q_proj.bias")]
    assert bool(biases) == (family == "qwen2")  # Qwen2's attention biases reach the AR


def test_an_embedding_injection_enters_block_0_at_its_norm(family_model):
    """Gemma multiplies its embedding rows by sqrt(d) inside the embedding module: an `embed`
    scale is the norm of the rows as block 0 receives them, and the injected vector enters
    block 0 at exactly the scale, whatever the family does before it."""
    family, model = family_model
    av = av_of(model, injection={"scale": "embed"})
    rows = float(av.lm.get_input_embeddings().weight.norm(dim=-1).mean())
    factor = math.sqrt(64) if family.startswith("gemma") else 1.0
    assert av.embed_norm == pytest.approx(rows * factor, rel=1e-4)
    seen = []
    handle = decoder_blocks(av.lm)[0].register_forward_pre_hook(  # after the injector's
        lambda m, args, kwargs: seen.append(args[0] if args else kwargs["hidden_states"]),
        with_kwargs=True,
    )
    vectors = torch.randn(2, 64, generator=torch.Generator().manual_seed(0)) * 3
    ids = av.prompt_ids.expand(2, -1)
    try:
        with torch.no_grad(), av.injecting(ids, vectors):
            av._decoder(input_ids=ids)
    finally:
        handle.remove()
    norms = seen[0][:, av.slot].norm(dim=-1)
    torch.testing.assert_close(norms, torch.full((2,), av.embed_norm), rtol=1e-4, atol=1e-4)


def test_log_probs_and_generation_agree_with_the_full_model(family_model):
    """The AV's log-probs (its head on the decoder's output) are the model's own (Gemma's
    soft-capped logits included), and KV-cached generation (sliding windows of 8 tokens,
    shorter than the prompt) picks what a full forward over the same tokens ranks first."""
    _, model = family_model
    av = av_of(model)
    vectors = torch.randn(2, 64, generator=torch.Generator().manual_seed(1)) * 3
    _, tokens = av.generate(vectors, max_new_tokens=6)
    tokens = [t or [av.eos_id] for t in tokens]
    width = max(map(len, tokens))
    tokens = [t + [av.eos_id] * (width - len(t)) for t in tokens]  # equal lengths, no padding
    with torch.no_grad():
        logp, _ = av.response_logprobs(vectors, tokens)
        ids = torch.cat([av.prompt_ids.expand(2, -1), torch.tensor(tokens)], 1)
        with av.injecting(ids, vectors):
            logits = av.lm(input_ids=ids).logits.float()
    p = len(av.prompt_ids)
    full = torch.log_softmax(logits[:, p - 1 : -1], -1)
    want = full.gather(-1, ids[:, p:].unsqueeze(-1)).squeeze(-1)
    torch.testing.assert_close(logp, want, atol=1e-4, rtol=1e-4)
    for row, generated in enumerate(tokens):  # greedy: each token is (near) the top one
        for i, token in enumerate(generated):
            if token == av.eos_id and i > 0 and generated[i - 1] == av.eos_id:
                break
            assert full[row, i, token] >= full[row, i].max() - 1e-3


@pytest.mark.parametrize("variant", ["baseline", "release", "context"])
def test_the_ar_starts_with_bos_where_the_tokenizer_prepends_it(family_model, variant):
    """The release AR reads a declared BOS first even where the tokenizer prepends none (the
    embedded tokenizer, which every tiny model has, declares one), as the release's readers do."""
    family, model = family_model
    ar = ar_of(model, variant)
    first = {s[0] for s in ar.sequences(PROBES, ["a source", "another source"])}
    bos = ar.tokenizer.bos_token_id
    assert (first == {bos}) == (family.startswith("gemma") or variant == "release")
    if variant != "context":
        with torch.no_grad():
            assert torch.isfinite(ar(PROBES)).all()


@pytest.mark.parametrize("family", ["gemma2", "gemma3"])
def test_a_gemma_whose_tokenizer_adds_no_bos_is_refused(
    family, tmp_path, embedded_dir, write_config, capsys
):
    from transformers import AutoTokenizer

    model = make_tiny_model(tmp_path / "model", embedded_dir, family=family, blocks=3)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (model / name).unlink()
    AutoTokenizer.from_pretrained(embedded_dir).save_pretrained(model)  # prepends no BOS
    with pytest.raises(NLAError, match="needs a BOS token first") as err:
        ar_of(model, "baseline")
    assert "add_bos_token" in str(err.value)
    config = write_config(tmp_path, model)
    capsys.readouterr()
    assert main(["prepare", str(config)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "BOS" in lines[0] and "(fix: " in lines[0], lines
    assert not (tmp_path / "datasets").exists() or not any((tmp_path / "datasets").iterdir())


def test_frozen_embeddings_leave_an_untied_head_trainable(family_model):
    family, model = family_model
    av = av_of(model, frozen_blocks=1)
    tied = family not in ("qwen3", "mistral", "phi3")
    assert not av.lm.get_input_embeddings().weight.requires_grad
    assert av.lm.get_output_embeddings().weight.requires_grad == (not tied)
