"""The variant contract: checks every registered AV and AR variant must pass, on a tiny model.

In the spirit of scikit-learn's `check_estimator`: a third-party variant package can run the same
suite on its own variants without the project's tests.

    from nla_variants.variants.testing import check_variant, make_tiny_model, tiny_trial_config

    model = make_tiny_model(tmp_path / "model")
    check_variant("ar", "mean_pool", model_dir=model, workdir=tmp_path / "work")

`tiny_trial_config(workdir, model, **{"train.rl.steps": 2})` is the trial the project's own tests
train on that model: a config dict (dotted-key overrides) to validate or write as YAML.

Checks (names are stable; `CHECKS` lists them in order):
- `shapes`: the interface the trainers and the evaluation call (`nla_variants.variants.interfaces`:
  every member of `ActivationVerbalizer` / `ActivationReconstructor`), with the shapes they
  rely on.
- `input_dependence`: the output depends on the input (AV: on the vector; AR: on the text, and
  for a `ReadsSource` AR on the source prefix too).
- `gradients`: the training loss gives every trainable parameter a finite gradient (possibly
  zero) and nothing else one (see `grad_optional` below).
- `save_load`: a checkpoint written by `nla_variants.training.checkpoint` reloads to identical outputs.
- `determinism`: two builds under the same seed give identical outputs, losses and samples.
- `trial`: one warm-start step and one RL step of `run_trial` with finite metrics.

A variant says how it is checked through its config defaults (the checks build it from them, plus
any `config` overrides) and two optional class attributes:
- `contract_configs: dict[str, dict]`: further named config overrides worth checking (for example
  each mode of the variant); the project's test suite checks each of them beside the defaults.
- `grad_optional: tuple[str, ...]`: fnmatch patterns of trainable parameter names that one
  batch's loss may legitimately leave without a gradient (hard routing, for example). Every other
  trainable parameter the loss never touches is an error: freeze it or drop it, since the
  optimiser would decay it and checkpoints would store it for nothing.
"""

from __future__ import annotations

import copy
import json
import math
import random
import tempfile
from collections.abc import Callable, Iterator
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch import nn

from nla_variants.variants.interfaces import (
    ActivationReconstructor,
    ActivationVerbalizer,
    ReadsSource,
    VerifiesInjection,
    missing_members,
)
from nla_variants.variants.registry import BuildContext, Kind, build, variant_config

CHECKS: tuple[str, ...] = (
    "shapes",
    "input_dependence",
    "gradients",
    "save_load",
    "determinism",
    "trial",
)
# What the checks feed a variant: explanations of different lengths (so padding is exercised)
# and the source prefixes they came from.
EXPLANATIONS = (
    "A story told in the past tense about a harbor\nThe sentence stops after the word the",
    "Python source code defining a function",
    "A table of prices with three columns\nThe next cell holds a number, probably a price",
)
SOURCES = (
    "The boats came back to the harbor at dusk, and the",
    "def total(items):\n    return sum(",
    "| item | price | count |\n| bread | 2.50 | 3 |\n| milk |",
)
LAYER = 2
SEED = 0
GEN_TOKENS = 6
TINY_WORDS = [
    "river",
    "market",
    "signal",
    "lantern",
    "orbit",
    "ledger",
    "harbor",
    "engine",
    "garden",
    "paper",
    "cobalt",
    "meadow",
    "violin",
    "thunder",
    "copper",
    "station",
]


# -- the tiny model ---------------------------------------------------------------------------


FAMILIES: tuple[str, ...] = (
    "llama",
    "qwen2",
    "qwen3",
    "gemma2",
    "gemma3",
    "mistral",
    "gpt2",
    "phi3",
)
# Gemma's real tokenizers prepend BOS and its chat template starts with it; the tiny Gemmas'
# tokenizer (the embedded vocabulary) is made to do the same, so the BOS rule is exercised.
BOS_FAMILIES = ("gemma2", "gemma3")


def _family_config(family: str, tok: Any, blocks: int) -> Any:
    """The config of a tiny (d_model 64) model of `family`, sized to the tokenizer. Each keeps
    what sets its family apart: Qwen2's biases, Qwen3's q/k norms, Gemma's soft-capping and
    sliding windows (a window of 8 tokens, shorter than the test texts), GPT-2's names and
    learned positions; tied embeddings for Llama, Qwen2, Gemma and GPT-2, untied otherwise."""
    import transformers

    special = {
        "vocab_size": len(tok),
        "bos_token_id": tok.bos_token_id,
        "eos_token_id": tok.eos_token_id,
        "pad_token_id": tok.pad_token_id,
    }
    if family == "gpt2":
        return transformers.GPT2Config(
            n_embd=64, n_layer=blocks, n_head=4, n_positions=512, **special
        )
    common = {
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": blocks,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 512,
        **special,
    }
    window = {"sliding_window": 8}
    layer_types = ["sliding_attention", "full_attention"] * blocks
    specific: dict[str, tuple[str, dict[str, Any]]] = {
        "llama": ("LlamaConfig", {"tie_word_embeddings": True}),
        "qwen2": ("Qwen2Config", {"tie_word_embeddings": True}),
        "qwen3": ("Qwen3Config", {"tie_word_embeddings": False, "head_dim": 16}),
        "gemma2": (
            "Gemma2Config",
            {
                "head_dim": 16,
                "query_pre_attn_scalar": 16,
                "attn_logit_softcapping": 50.0,
                "final_logit_softcapping": 30.0,
                "layer_types": layer_types[:blocks],
                **window,
            },
        ),
        "gemma3": (
            "Gemma3TextConfig",
            {
                "head_dim": 16,
                "query_pre_attn_scalar": 16,
                "final_logit_softcapping": 30.0,
                "layer_types": layer_types[:blocks],
                **window,
            },
        ),
        "mistral": ("MistralConfig", {"tie_word_embeddings": False, **window}),
        "phi3": ("Phi3Config", {"tie_word_embeddings": False}),
    }
    if family not in specific:
        raise ValueError(f"unknown tiny model family {family!r}; known: {', '.join(FAMILIES)}")
    name, extra = specific[family]
    return getattr(transformers, name)(**common, **extra)


def _gemma_tokenizer(tok: Any) -> Any:
    """The tokenizer as Gemma's behave: BOS prepended, and the chat template starting with it."""
    from transformers import AutoTokenizer

    with tempfile.TemporaryDirectory() as tmp:
        tok.save_pretrained(tmp)
        out = AutoTokenizer.from_pretrained(tmp, add_bos_token=True)
    out.chat_template = "{{ bos_token }}" + tok.chat_template
    return out


def make_tiny_model(
    directory: str | Path,
    tokenizer: str | Path = "embedded",
    *,
    seed: int = 0,
    family: str = "llama",
    blocks: int = 4,
) -> Path:
    """Write a `blocks`-block, d_model=64 model of `family` (default: a Llama, the embedded
    SmolLM2's architecture scaled down; `FAMILIES` lists the others) with random weights and a
    real tokenizer to `directory`; returns the directory. Cheap (seconds), so contract checks
    can build a variant many times; the real tokenizer matters because variants pick
    placeholder tokens and templates from it. `tokenizer`: "embedded" or a path."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if str(tokenizer) == "embedded":
        from nla_variants.target import resolve_model

        tokenizer = resolve_model("embedded").load_path
    tok = AutoTokenizer.from_pretrained(tokenizer)
    if family in BOS_FAMILIES:
        tok = _gemma_tokenizer(tok)
    config = _family_config(family, tok, blocks)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(config)
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    return out


def write_tiny_corpus(path: str | Path, n_docs: int = 24, max_words: int = 80) -> Path:
    """A deterministic JSONL corpus of short word-salad documents in three genres."""
    path = Path(path)
    rng = np.random.default_rng(0)
    with path.open("w") as f:
        for i in range(n_docs):
            words = rng.choice(TINY_WORDS, size=int(rng.integers(40, max_words)))
            text = f"Entry {i}: " + " ".join(words) + "."
            f.write(json.dumps({"text": text, "genre": "abc"[i % 3]}) + "\n")
    return path


def closing_generate(
    av, vectors, max_new_tokens=None, temperature=0.0, num_samples=1, seeds=None
) -> tuple[list[str], list[list[int]]]:
    """The baseline AV's real `generate`, with the samples whose first token id is even
    rewritten into a closed explanation built from their ids: a random tiny model never closes
    its tag, so its rollouts would all fail and all score the same; these vary with what was
    sampled, and each depends on its own tokens alone (not on its batch or rank)."""
    from nla_variants.variants.av.baseline import BaselineAV

    texts, tokens = BaselineAV.real_generate(
        av, vectors, max_new_tokens, temperature, num_samples, seeds
    )
    out_t, out_k = [], []
    for text, toks in zip(texts, tokens, strict=True):
        if toks and toks[0] % 2 == 0:
            words = " ".join(f"w{t % 40}" for t in toks[:6]) or "w0"
            text = f"<explanation>\n{words}\n</explanation>"
            toks = av.tokenizer(text, add_special_tokens=False)["input_ids"]
        out_t.append(text)
        out_k.append(list(toks))
    return out_t, out_k


def close_some_rollouts() -> None:
    """Patch the baseline AV's `generate` with `closing_generate` (tests of RL on the tiny
    model; a multi-process test patches every rank by running a script that calls this)."""
    from nla_variants.variants.av.baseline import BaselineAV

    if not hasattr(BaselineAV, "real_generate"):
        BaselineAV.real_generate = BaselineAV.generate
    BaselineAV.generate = closing_generate


def tiny_trial_config(
    workdir: str | Path,
    model_dir: str | Path,
    *,
    n_docs: int = 40,
    max_words: int = 90,
    **overrides: Any,
) -> dict[str, Any]:
    """A trial config (a plain dict, as a YAML file holds it) that trains in seconds on a tiny
    model (`make_tiny_model`): a word-salad corpus written to `workdir`/c.jsonl, layer 2, three
    warm-start steps per side, a six-row evaluation; datasets, MLflow and runs under `workdir`.

    `overrides` are dotted keys, applied in order after the defaults:
    `tiny_trial_config(tmp, model, **{"train.rl.steps": 2})`; a top-level key (`"train": {...}`)
    replaces that whole section."""
    from nla_variants.config import set_dotted

    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    corpus = write_tiny_corpus(workdir / "c.jsonl", n_docs, max_words=max_words)
    cfg: dict[str, Any] = {
        "name": "tiny-trial",
        "seed": 0,
        "data": {
            "name": "tiny",
            "target": {"model": str(model_dir), "layer": 2, "precision": "fp32"},
            "corpus": {"source": "files", "min_chars": 50, "paths": [str(corpus)]},
            "sampling": {"positions_per_doc": 2, "min_prefix": 4, "max_tokens": 40},
            "store": {"root": str(workdir / "datasets")},
        },
        "av": {"variant": "baseline", "injection": {"scale": "data"}},
        "train": {
            "precision": "32-true",
            "av_sft": {"steps": 3, "batch_size": 4, "warmup_steps": 1},
            "ar_sft": {"steps": 3, "batch_size": 4, "warmup_steps": 1},
        },
        "eval": {"max_samples": 6, "max_new_tokens": 8, "batch_size": 4, "table_rows": 4},
        "mlflow": {"tracking_uri": f"sqlite:///{workdir}/mlflow.db", "experiment": "tests"},
        "output_dir": str(workdir / "runs"),
    }
    for key, value in overrides.items():
        set_dotted(cfg, key, value, what="override", fix="override a leaf key like a.b")
    return cfg


# -- shared pieces ----------------------------------------------------------------------------


def _seed_all(seed: int) -> None:
    """What `run_trial` seeds (python, numpy, torch), so a variant may draw from any of them."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class _Case:
    """One variant under one config on one tiny model: builds it and feeds it the fixed inputs."""

    def __init__(
        self, kind: Kind, name: str, config: dict | None, model_dir: Path, workdir: Path
    ) -> None:
        from nla_variants.target import resolve_model

        if config and "variant" in config:
            raise ValueError("pass the variant as `name`, not inside `config`")
        self.kind, self.name = kind, name
        self.section = {"variant": name, **(config or {})}
        variant_config(kind, self.section)  # a bad override fails here, naming the key
        self.workdir = Path(workdir)
        source = resolve_model(str(Path(model_dir).resolve()))
        self.model_dir = Path(source.load_path)
        self.d = source.d_model
        self.layer = min(LAYER, source.num_layers)
        g = torch.Generator().manual_seed(1234)
        self.vectors = torch.randn(len(EXPLANATIONS), self.d, generator=g) * 2.0
        self.ctx = BuildContext(
            source,
            self.layer,
            self.d,
            data_norm=2.0 * math.sqrt(self.d),
            data_mean=torch.randn(self.d, generator=g) * 0.1,  # an injection may centre
            data_std=torch.rand(self.d, generator=g) + 0.5,
        )

    def build(self, seed: int = SEED) -> nn.Module:
        _seed_all(seed)
        return build(self.kind, self.section, self.ctx)

    def scratch(self, label: str) -> Path:
        self.workdir.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f"{self.kind}-{self.name}-{label}-", dir=self.workdir))

    def loss(self, m: nn.Module) -> torch.Tensor:
        """The warm-start loss, called as the trainers call it."""
        if self.kind == "av":
            return m.sft_loss(self.vectors, list(EXPLANATIONS))
        return m.loss(list(EXPLANATIONS), self.vectors, list(SOURCES))

    @torch.no_grad()
    def outputs(self, m: nn.Module) -> dict[str, Any]:
        """Eval-mode outputs that must survive a checkpoint and repeat under a seed."""
        m.eval()
        try:
            if self.kind == "av":
                responses = m.encode_responses(list(EXPLANATIONS))
                logp, mask = m.response_logprobs(self.vectors, responses)
                _, tokens = m.generate(self.vectors, max_new_tokens=GEN_TOKENS)
                return {"response_logprobs": logp, "mask": mask, "greedy_tokens": tokens}
            return {"prediction": m(list(EXPLANATIONS), list(SOURCES))}
        finally:
            m.train()


def _assert_same(a: dict[str, Any], b: dict[str, Any], what: str) -> None:
    for key in a:
        x, y = a[key], b[key]
        if torch.is_tensor(x):
            same = x.shape == y.shape and torch.equal(x, y)
            diff = (x - y).abs().max().item() if x.shape == y.shape else "shape"
            assert same, f"{what}: {key} differs (max abs difference {diff})"
        else:
            assert x == y, f"{what}: {key} differs ({x!r} vs {y!r})"


def _yaml_safe(value: Any, what: str) -> None:
    try:
        yaml.safe_dump(value)
    except yaml.YAMLError as e:
        raise AssertionError(
            f"{what} must be plain YAML data (it goes in checkpoint.yaml): {e}"
        ) from None


def _token_lists(value: Any, n: int, what: str) -> list[list[int]]:
    assert isinstance(value, list) and len(value) == n, f"{what}: expected a list of {n} lists"
    for row in value:
        assert isinstance(row, list) and all(isinstance(t, int) for t in row), (
            f"{what}: every row must be a list of int token ids, got {row!r}"
        )
    return value


# -- the checks -------------------------------------------------------------------------------


def _check_shapes(case: _Case) -> None:
    m = case.build()
    b = len(EXPLANATIONS)
    assert isinstance(m, nn.Module), "a variant is a torch.nn.Module"
    protocol = ActivationVerbalizer if case.kind == "av" else ActivationReconstructor
    missing = missing_members(m, protocol)
    assert not missing, (
        f"missing members of nla_variants.variants.interfaces.{protocol.__name__}: {missing}"
    )
    assert isinstance(m.cfg, type(m).config_class), "the variant keeps its config as `self.cfg`"
    _yaml_safe(m.metadata(), "metadata()")
    _yaml_safe(m.cfg.model_dump(mode="json"), "cfg")
    if case.kind == "av":
        _check_av_shapes(case, m, b)
    else:
        _check_ar_shapes(case, m, b)


def _check_av_shapes(case: _Case, m: ActivationVerbalizer, b: int) -> None:
    from nla_variants.core.text import CLOSE_TAG, wrap_explanation

    if isinstance(m, VerifiesInjection):
        m.verify_injection()
    assert isinstance(m.eos_id, int), "the AV exposes its end token as `eos_id` (RL uses it)"
    assert torch.is_tensor(m.prompt_ids) and m.prompt_ids.dim() == 1, (
        "`prompt_ids` must be a 1-D tensor (the warm start counts its tokens)"
    )
    responses = _token_lists(m.encode_responses(list(EXPLANATIONS)), b, "encode_responses")
    assert all(responses), "encode_responses: a response is never empty"
    logp, mask = m.response_logprobs(case.vectors, responses)
    width = max(map(len, responses))
    assert tuple(logp.shape) == (b, width), f"response_logprobs: logp {tuple(logp.shape)}"
    assert tuple(mask.shape) == (b, width), f"response_logprobs: mask {tuple(mask.shape)}"
    assert mask.sum(1).tolist() == [float(len(r)) for r in responses], (
        "response_logprobs: the mask must cover exactly each response's tokens"
    )
    assert bool(torch.isfinite(logp).all()), "response_logprobs: non-finite log-probs"
    assert bool((logp[mask.bool()] <= 1e-6).all()), "response_logprobs: a log-prob above 0"
    assert bool((logp[~mask.bool()] == 0).all()), "response_logprobs: padding must be zeroed"
    with torch.no_grad():  # batching (padding, a shared prompt prefix) must not change a row
        for i, response in enumerate(responses):
            alone, _ = m.response_logprobs(case.vectors[i : i + 1], [response])
            torch.testing.assert_close(
                logp[i, : len(response)].detach(), alone[0], atol=1e-4, rtol=1e-4,
                msg=lambda why, i=i: f"response_logprobs: row {i} differs alone and in its batch ({why})",
            )  # fmt: skip
    for text in EXPLANATIONS:  # what the AV is taught to write must pass its own extraction
        tagged = wrap_explanation(m.render_target(text))
        assert isinstance(m.extract(tagged), str), (
            f"extract() rejects its own warm-start target {tagged!r}"
        )
    unclosed = tagged.removesuffix(CLOSE_TAG)
    assert m.extract(unclosed) is None, (
        f"extract() must return None for an output whose tag never closes: {unclosed!r}"
    )
    loss = m.sft_loss(case.vectors, list(EXPLANATIONS))
    assert loss.dim() == 0, f"sft_loss must be a scalar, got shape {tuple(loss.shape)}"
    assert bool(torch.isfinite(loss)) and loss.requires_grad, "sft_loss: finite, differentiable"
    m.eval()
    texts, tokens = m.generate(case.vectors, max_new_tokens=GEN_TOKENS)
    assert isinstance(texts, list) and all(isinstance(t, str) for t in texts), "generate: texts"
    assert len(texts) == b, f"generate: {len(texts)} texts for {b} vectors"
    _token_lists(tokens, b, "generate tokens")
    assert all(len(t) <= GEN_TOKENS for t in tokens), "generate: more than max_new_tokens"
    texts, tokens = m.generate(
        case.vectors, max_new_tokens=GEN_TOKENS, temperature=1.0, num_samples=2
    )
    assert len(texts) == 2 * b, "generate: num_samples=2 must give 2 rows per vector"
    _token_lists(tokens, 2 * b, "sampled tokens")
    # In float64: a batch of b rows and a batch of one take different matmul kernels, whose
    # fp32 rounding differs by CPU model; at temperature 1 the tiny random model's next-token
    # distribution is nearly flat (49k boundaries 2e-5 apart), so that rounding alone moves a
    # draw to the adjacent token id now and then (seen on an EPYC). A batch-coupled random
    # stream changes every draw, in any precision.
    m64, vectors = copy.deepcopy(m).double(), case.vectors.double()
    seeds, kw = list(range(7, 7 + b)), {"max_new_tokens": GEN_TOKENS, "temperature": 1.0}
    _, together = m64.generate(vectors, num_samples=2, seeds=seeds, **kw)
    alone = [m64.generate(vectors[i : i + 1], num_samples=2, seeds=seeds[i : i + 1], **kw)[1]
             for i in range(b)]  # fmt: skip
    del m64
    assert together == sum(alone, []), (
        "generate(seeds=...): a row's samples must depend on its seed alone, not on its batch "
        "(RL's ranks and resumes rely on it; core/sampling.py does it for a HF generate)"
    )


def _check_ar_shapes(case: _Case, m: ActivationReconstructor, b: int) -> None:
    _token_lists(m.sequences(list(EXPLANATIONS), list(SOURCES)), b, "sequences")
    if isinstance(m, ReadsSource):
        _token_lists(m.source_ids(list(SOURCES)), b, "source_ids")
    # the evaluation's text-only row asks the AR about an empty explanation
    for texts in (list(EXPLANATIONS), [""] * b):
        pred = m(texts, list(SOURCES))
        shape = tuple(pred.shape) if torch.is_tensor(pred) else type(pred).__name__
        what = "forward" if texts[0] else "forward on empty explanations"
        assert torch.is_tensor(pred) and pred.shape == (b, case.d), (
            f"{what} must give [B, d_model] = {(b, case.d)}, got {shape}"
        )
        assert pred.dtype == torch.float32, f"{what} must return float32, got {pred.dtype}"
        assert bool(torch.isfinite(pred).all()), f"{what}: non-finite prediction"
    loss = m.loss(list(EXPLANATIONS), case.vectors, list(SOURCES))
    assert loss.dim() == 0, f"loss must be a scalar, got shape {tuple(loss.shape)}"
    assert bool(torch.isfinite(loss)) and loss.requires_grad, "loss: finite, differentiable"
    assert loss.item() >= 0, "loss: the normalised MSE is never negative"


def _check_input_dependence(case: _Case) -> None:
    m = case.build().eval()
    with torch.no_grad():
        if case.kind == "av":
            response = m.encode_responses([EXPLANATIONS[0]])[0]
            logp, _ = m.response_logprobs(case.vectors[:2], [response, response])
            assert not torch.allclose(logp[0], logp[1]), (
                "two different vectors give the same log-probs: the AV never sees the vector"
            )
        else:
            pred = m(list(EXPLANATIONS[:2]), list(SOURCES[:1]) * 2)
            assert not torch.allclose(pred[0], pred[1]), (
                "two different explanations give the same prediction: the AR ignores its text"
            )
            if isinstance(m, ReadsSource):
                pred = m(list(EXPLANATIONS[:1]) * 2, list(SOURCES[:2]))
                assert not torch.allclose(pred[0], pred[1]), (
                    "two different source prefixes give the same prediction: a ReadsSource AR "
                    "ignores its source"
                )


def _stray_grad_tensors(m: nn.Module) -> list[str]:
    """Tensors that require grad but are plain attributes, not registered parameters: the
    optimiser and the checkpoint never see them."""
    params = {id(p) for p in m.parameters()}
    found = []
    for mod_name, mod in m.named_modules():
        for attr, value in vars(mod).items():
            if torch.is_tensor(value) and value.requires_grad and id(value) not in params:
                found.append(f"{mod_name}.{attr}" if mod_name else attr)
    return found


def _check_gradients(case: _Case) -> None:
    m = case.build().train()
    stray = _stray_grad_tensors(m)
    assert not stray, f"tensors require grad but are not parameters: {stray[:5]}"
    m.zero_grad(set_to_none=True)
    case.loss(m).backward()
    optional = tuple(getattr(type(m), "grad_optional", ()))
    trainable, frozen_with_grad, missing, nonfinite = 0, [], [], []
    any_nonzero = False
    for pname, p in m.named_parameters():
        if not p.requires_grad:
            if p.grad is not None:
                frozen_with_grad.append(pname)
            continue
        trainable += 1
        if p.grad is None:
            if not any(fnmatch(pname, pat) for pat in optional):
                missing.append(pname)
        elif not bool(torch.isfinite(p.grad).all()):
            nonfinite.append(pname)
        elif bool(p.grad.ne(0).any()):
            any_nonzero = True
    assert trainable, "no trainable parameter (requires_grad=True): nothing would train"
    assert not frozen_with_grad, f"frozen parameters received a gradient: {frozen_with_grad[:5]}"
    assert not missing, (
        f"{len(missing)} trainable parameter(s) got no gradient from the loss, e.g. {missing[:5]}: "
        "freeze them (requires_grad=False) or list them in the class's `grad_optional` patterns"
    )
    assert not nonfinite, f"non-finite gradients: {nonfinite[:5]}"
    assert any_nonzero, "every gradient is zero: the loss does not depend on the parameters"


def _check_save_load(case: _Case) -> None:
    from nla_variants.training.checkpoint import load_component, save_checkpoint

    m = case.build()
    g = torch.Generator().manual_seed(99)
    with torch.no_grad():  # move away from the initialisation, so a failed load cannot pass
        for p in m.parameters():
            if p.requires_grad:
                noise = torch.randn(p.shape, generator=g).to(p.device, p.dtype)
                p.add_(noise * (0.05 * float(p.detach().float().std().nan_to_num(1.0)) + 1e-3))
    want = case.outputs(m)
    fresh = case.outputs(case.build(seed=SEED))
    assert any(
        not torch.equal(want[k], fresh[k]) if torch.is_tensor(want[k]) else want[k] != fresh[k]
        for k in want
    ), "perturbing the trainable parameters does not change the outputs"
    directory = save_checkpoint(case.scratch("ckpt") / "checkpoint", m, case.kind, case.ctx)
    _seed_all(SEED + 1)  # the reload must not depend on the RNG
    loaded, meta = load_component(directory, case.ctx)
    assert type(loaded) is type(m), f"reloaded as {type(loaded).__name__}"
    assert meta.variant == case.name and loaded.cfg == m.cfg, "config lost in the round trip"
    assert loaded.metadata() == m.metadata(), "metadata() differs after reload"
    _assert_same(want, case.outputs(loaded), "after save/load")


def _check_determinism(case: _Case) -> None:
    runs = []
    for _ in range(2):
        m = case.build(seed=SEED)
        out = case.outputs(m)
        _seed_all(SEED)
        m.train()
        out["train_loss"] = case.loss(m).detach()
        if case.kind == "av":
            m.eval()
            with torch.no_grad():
                _, out["sampled_tokens"] = m.generate(
                    case.vectors, max_new_tokens=GEN_TOKENS, temperature=1.0, num_samples=2
                )
        runs.append(out)
    _assert_same(runs[0], runs[1], "two builds under the same seed")


def _trial_config(case: _Case) -> Any:
    """The smallest trial that exercises every stage: 1 SFT step each, 1 RL step, tiny eval.
    The variant under test takes its side; the other side is the baseline."""
    from nla_variants.config import TrainConfig, TrialConfig

    sides = {"av": {"variant": "baseline"}, "ar": {"variant": "baseline"}}
    sides[case.kind] = dict(case.section)
    sft = {"steps": 1, "batch_size": 2, "warmup_steps": 0}
    train: dict[str, Any] = {
        "precision": "32-true",
        "device": "cpu",
        "av_sft": sft,
        "ar_sft": sft,
        "rl": {
            "steps": 1,
            "batch_size": 2,
            "group_size": 2,
            "max_response_tokens": 8,
            "eval_every": 0,
        },
    }
    if "reuse_warm_start" in TrainConfig.model_fields:
        # the check exercises the warm start itself; a cached one may predate the code
        train["reuse_warm_start"] = False
    overrides = {
        "name": f"contract-{case.kind}-{case.name}",
        "data.name": "contract",
        "data.target.layer": case.layer,
        "data.sampling.max_tokens": 32,
        **sides,
        "train": train,
        "eval": {"max_samples": 2, "max_new_tokens": 8, "batch_size": 2, "table_rows": 2},
        "mlflow.experiment": "contract",
        "mlflow.log_checkpoints": False,
        "output_dir": str(case.scratch("trial")),
    }
    data = case.workdir / "contract-data"
    cfg = tiny_trial_config(data, case.model_dir, n_docs=24, max_words=80, **overrides)
    return TrialConfig.model_validate(cfg)


def _check_trial(case: _Case) -> None:
    from nla_variants.training.experiment import run_trial

    metrics = run_trial(_trial_config(case), progress=False)
    for key in ("av_sft/steps", "ar_sft/steps", "rl/steps"):
        assert metrics.get(key) == 1.0, f"{key} = {metrics.get(key)}, expected 1 step"
    assert metrics.get("rl/skipped_steps") == 0.0, "the RL step was skipped (non-finite)"
    split = f"{case.kind}_sft"
    assert not metrics.get(f"{split}/cache_hit"), "the warm start came from a cache"
    bad = {
        k: v
        for k, v in metrics.items()
        if isinstance(v, int | float) and not math.isfinite(float(v))
    }
    assert not bad, f"non-finite metrics: {bad}"
    assert "eval/roundtrip_fve" in metrics, "the trial did not evaluate"


_CHECK_FUNCS: dict[str, Callable[[_Case], None]] = {
    "shapes": _check_shapes,
    "input_dependence": _check_input_dependence,
    "gradients": _check_gradients,
    "save_load": _check_save_load,
    "determinism": _check_determinism,
    "trial": _check_trial,
}


# -- public entry points ----------------------------------------------------------------------


def run_check(
    kind: Kind,
    name: str,
    check: str,
    config: dict | None = None,
    *,
    model_dir: str | Path,
    workdir: str | Path,
) -> None:
    """Run one named contract check; raises AssertionError naming the variant and the check."""
    if check not in _CHECK_FUNCS:
        raise ValueError(f"unknown contract check {check!r}; known: {', '.join(CHECKS)}")
    case = _Case(kind, name, config, Path(model_dir), Path(workdir))
    try:
        _CHECK_FUNCS[check](case)
    except AssertionError as e:
        raise AssertionError(f"{kind} variant {name!r} failed contract check {check!r}: {e}") from e
    except Exception as e:
        raise AssertionError(
            f"{kind} variant {name!r} failed contract check {check!r}: {type(e).__name__}: {e}"
        ) from e


def variant_checks(
    kind: Kind,
    name: str,
    config: dict | None = None,
    *,
    model_dir: str | Path,
    workdir: str | Path,
    checks: tuple[str, ...] = CHECKS,
) -> Iterator[tuple[str, Callable[[], None]]]:
    """(check name, zero-argument callable) pairs, for pytest parametrisation or a custom loop."""
    variant_config(kind, {"variant": name, **(config or {})})  # fail early on a bad override
    for check in checks:

        def run(check: str = check) -> None:
            run_check(kind, name, check, config, model_dir=model_dir, workdir=workdir)

        yield check, run


def check_variant(
    kind: Kind,
    name: str,
    config: dict | None = None,
    *,
    model_dir: str | Path,
    workdir: str | Path,
    checks: tuple[str, ...] = CHECKS,
) -> None:
    """Run every contract check on one variant (built from its config defaults plus `config`);
    raises one AssertionError listing each failed check and why."""
    failures = []
    for _, run in variant_checks(
        kind, name, config, model_dir=model_dir, workdir=workdir, checks=checks
    ):
        try:
            run()
        except AssertionError as e:
            failures.append(str(e))
    if failures:
        raise AssertionError("\n".join(failures))


# -- the public release format, read by its own rules ------------------------------------------


_FINAL_NORMS = ("norm", "ln_f", "final_layernorm")


class ReleaseFormatReader:
    """An AR ("critic") directory of the public NLA release layout read by that format's
    published rules alone, with plain transformers and none of this package's AR code: the
    yardstick that an export reads there as `nla_variants` reads it.

    The rules: the sidecar's AR template (`str.format` with `explanation`); the tokenizer with
    its special tokens (a tokenizer that declares BOS must prepend it, else the directory is
    refused); the checkpoint's `num_hidden_layers` blocks (the sidecar's layer index K + 1) with
    the final norm left out; the last token's hidden state; `value_head.safetensors`, a
    bias-free Linear(d, d). Prompts are read one at a time, unpadded."""

    def __init__(self, directory: str | Path) -> None:
        from safetensors.torch import load_file
        from transformers import AutoModel, AutoTokenizer

        directory = Path(directory)
        meta = yaml.safe_load((directory / "nla_meta.yaml").read_text())
        if meta.get("role") not in ("ar", "critic"):
            raise ValueError(f"{directory}: role {meta.get('role')!r} is not an AR (critic)")
        templates = meta["prompt_templates"]
        self.template: str = templates.get("ar") or templates["critic"]
        self.tokenizer = AutoTokenizer.from_pretrained(directory)
        bos = self.tokenizer.bos_token_id
        first = self.tokenizer("x")["input_ids"][:1]
        if bos is not None and first != [bos]:
            raise ValueError(f"{directory}: the tokenizer declares BOS {bos} but starts {first}")
        self.model = AutoModel.from_pretrained(directory, dtype=torch.float32).eval()
        index = meta.get(
            "extraction_layer_index", meta.get("critic", {}).get("extraction_layer_index")
        )
        blocks = self.model.config.num_hidden_layers
        if index is not None and blocks != index + 1:
            raise ValueError(f"{directory}: {blocks} blocks for layer index {index}")
        self._drop_final_norm()
        weight = load_file(directory / "value_head.safetensors")
        d = int(meta["d_model"])
        self.head = nn.Linear(d, d, bias=False)
        self.head.load_state_dict(weight)  # a bias-free head: a 'bias' tensor would not load

    def _drop_final_norm(self) -> None:
        for name in _FINAL_NORMS:
            if isinstance(getattr(self.model, name, None), nn.Module):
                setattr(self.model, name, nn.Identity())
                return
        raise ValueError(f"no final norm among {_FINAL_NORMS} on {type(self.model).__name__}")

    def token_ids(self, explanation: str) -> list[int]:
        """The prompt's token ids as the format reads them."""
        return list(self.tokenizer(self.template.format(explanation=explanation))["input_ids"])

    @torch.no_grad()
    def reconstruct(self, explanations: list[str]) -> torch.Tensor:
        """Predicted vectors [B, d] (float32), one prompt at a time."""
        out = []
        for text in explanations:
            ids = torch.tensor([self.token_ids(text)])
            hidden = self.model(input_ids=ids, use_cache=False).last_hidden_state[0, -1]
            out.append(self.head(hidden.float()))
        return torch.stack(out)
