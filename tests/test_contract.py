"""The variant contract (`nla_variants.variants.testing`) over every registered AV and AR variant, the
documented example variant, and deliberately broken variants that each check must catch.

The variant list is read from the registry at import, so a newly registered variant (built-in or
installed plugin) is checked without touching this file; a variant's `contract_configs` add
further configurations beside its defaults.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest
import torch
from torch import nn

import nla_variants.variants.registry as registry
from nla_variants.common.errors import NLAError
from nla_variants.variants.interfaces import (
    ActivationReconstructor,
    ActivationVerbalizer,
    missing_members,
)
from nla_variants.variants.registry import register_ar, register_av, variants
from nla_variants.variants.testing import CHECKS, check_variant, run_check, variant_checks

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "docs" / "examples" / "mean_pool_ar.py"
GUIDE = ROOT / "docs" / "adding_a_variant.md"


def _cases() -> list:
    cases = []
    for kind in ("av", "ar"):
        for name, variant in sorted(variants(kind).items()):
            configs = {"default": {}, **getattr(variant.cls, "contract_configs", {})}
            for label, config in configs.items():
                cases.append(pytest.param(kind, name, config, id=f"{kind}-{name}-{label}"))
    return cases


CASES = _cases()


@pytest.fixture(scope="session")
def contract_workdir(tmp_path_factory) -> Path:
    """Shared by every check, so the trial check prepares its tiny dataset once."""
    return tmp_path_factory.mktemp("contract")


@pytest.mark.parametrize("check", CHECKS)
@pytest.mark.parametrize(("kind", "name", "config"), CASES)
def test_registered_variant_meets_the_contract(
    kind, name, config, check, tiny_model_dir, contract_workdir
):
    run_check(kind, name, check, config, model_dir=tiny_model_dir, workdir=contract_workdir)


def test_every_builtin_is_collected():
    ids = {p.id for p in CASES}
    assert {"av-baseline-default", "ar-baseline-default"} <= ids
    for kind in ("av", "ar"):
        for name in variants(kind):
            assert f"{kind}-{name}-default" in ids


# -- the documented example ---------------------------------------------------------------------


@pytest.fixture
def restore_registry():
    variants("av")  # built-ins and plugins loaded before the snapshot
    snapshot = {kind: dict(entries) for kind, entries in registry._REGISTRY.items()}
    yield
    for kind, entries in registry._REGISTRY.items():
        entries.clear()
        entries.update(snapshot[kind])


@pytest.fixture
def example(restore_registry):
    """Import docs/examples/mean_pool_ar.py from its path (as a third party's module would be),
    which registers the `mean_pool` AR until the test ends."""
    spec = importlib.util.spec_from_file_location("nla_example_mean_pool_ar", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert variants("ar")["mean_pool"].cls is module.MeanPoolAR
    return module


def test_the_documented_example_meets_the_whole_contract(example, tiny_model_dir, contract_workdir):
    dirs = {"model_dir": tiny_model_dir, "workdir": contract_workdir}
    check_variant("ar", "mean_pool", **dirs)
    check_variant("ar", "mean_pool", {"dim": 8}, checks=("shapes", "save_load"), **dirs)


def test_the_guide_shows_the_example_file_verbatim():
    guide = GUIDE.read_text()
    blocks = re.findall(r"```python\n(.*?)```", guide, flags=re.S)
    assert EXAMPLE.read_text() in blocks
    assert "nla_variants.variants" in guide and "check_variant" in guide


# -- the checks can fail --------------------------------------------------------------------------


def _register_broken(kind: str, base: type, name: str, **members) -> str:
    cls = type(f"Broken_{name}", (base,), members)
    (register_av if kind == "av" else register_ar)(name, base.config_class)(cls)
    return name


def _fails(kind, name, check, match, model_dir, workdir, config=None) -> None:
    with pytest.raises(AssertionError, match=match) as info:
        run_check(kind, name, check, config, model_dir=model_dir, workdir=workdir)
    assert f"{kind} variant {name!r} failed contract check {check!r}" in str(info.value)


def test_each_check_catches_its_defect(example, tiny_model_dir, contract_workdir):
    base = example.MeanPoolAR
    dirs = {"model_dir": tiny_model_dir, "workdir": contract_workdir}

    def wrong_width(self, explanations, sources=None):
        return base.forward(self, explanations, sources)[:, :-1]

    _register_broken("ar", base, "bad_shape", forward=wrong_width)
    _fails("ar", "bad_shape", "shapes", r"must give \[B, d_model\]", **dirs)

    def ignores_text(self, explanations, sources=None):
        return self.head.bias.expand(len(explanations), -1) * 1.0

    _register_broken("ar", base, "deaf", forward=ignores_text)
    _fails("ar", "deaf", "input_dependence", "ignores its text", **dirs)

    def with_unused(self, cfg, ctx):
        base.__init__(self, cfg, ctx)
        self.spare = nn.Linear(4, 4)

    _register_broken("ar", base, "unused", __init__=with_unused)
    _fails("ar", "unused", "gradients", r"got no gradient.*spare\.weight", **dirs)
    # ...unless the variant declares them optional (the documented rule)
    _register_broken("ar", base, "declared", __init__=with_unused, grad_optional=("spare.*",))
    run_check("ar", "declared", "gradients", **dirs)

    def with_stray(self, cfg, ctx):
        base.__init__(self, cfg, ctx)
        self.gain = torch.ones(1, requires_grad=True)  # not a Parameter: never optimised

    def scaled(self, explanations, sources=None):
        return base.forward(self, explanations, sources) * self.gain

    _register_broken("ar", base, "stray", __init__=with_stray, forward=scaled)
    _fails("ar", "stray", "gradients", "not parameters: .*gain", **dirs)

    def with_random_frozen(self, cfg, ctx):
        base.__init__(self, cfg, ctx)
        d = ctx.d_model
        self.mix = nn.Parameter(torch.randn(d, d) / d**0.5, requires_grad=False)

    def mixed(self, explanations, sources=None):
        return base.forward(self, explanations, sources) @ self.mix

    # frozen tensors are not in the checkpoint: drawn at random, they do not survive a reload
    _register_broken("ar", base, "lossy", __init__=with_random_frozen, forward=mixed)
    _fails("ar", "lossy", "save_load", "prediction differs", **dirs)
    run_check("ar", "lossy", "determinism", **dirs)  # seeded, so still deterministic

    def unseeded(self, cfg, ctx):
        base.__init__(self, cfg, ctx)
        g = torch.Generator()
        g.seed()  # a fresh OS seed: ignores the trial's seed
        with torch.no_grad():
            self.head.weight.copy_(torch.randn(self.head.weight.shape, generator=g))

    _register_broken("ar", base, "unseeded", __init__=unseeded)
    _fails("ar", "unseeded", "determinism", "two builds under the same seed", **dirs)

    def nan_loss(self, explanations, vectors, sources=None):
        return base.loss(self, explanations, vectors, sources) * float("nan")

    _register_broken("ar", base, "nan_loss", loss=nan_loss)
    _fails("ar", "nan_loss", "trial", "non-finite", **dirs)


def test_an_av_that_ignores_the_vector_is_caught(restore_registry, tiny_model_dir, tmp_path):
    base = variants("av")["baseline"].cls

    def constant(self, vectors):
        return torch.ones_like(vectors).unsqueeze(1)

    name = _register_broken("av", base, "blind_av", vector_inputs=constant)
    _fails("av", name, "input_dependence", "never sees the vector", tiny_model_dir, tmp_path)


def test_an_av_whose_samples_share_one_random_stream_is_caught(
    restore_registry, tiny_model_dir, tmp_path
):
    """The seed check runs in float64 (so fp32 rounding cannot flip a draw on another CPU); a
    batch drawing from one stream still fails it."""
    base = variants("av")["baseline"].cls

    def one_stream(self, vectors, max_new_tokens=None, temperature=0.0, num_samples=1, seeds=None):
        if seeds is not None:
            torch.manual_seed(seeds[0])  # the whole batch from the first row's seed
        return base.generate(self, vectors, max_new_tokens, temperature, num_samples)

    name = _register_broken("av", base, "one_stream_av", generate=one_stream)
    _fails("av", name, "shapes", "must depend on its seed alone", tiny_model_dir, tmp_path)


def test_check_variant_lists_every_failed_check(example, tiny_model_dir, tmp_path):
    base = example.MeanPoolAR

    def with_unused(self, cfg, ctx):
        base.__init__(self, cfg, ctx)
        self.spare = nn.Linear(4, 4)

    _register_broken("ar", base, "unused2", __init__=with_unused)
    with pytest.raises(AssertionError) as info:
        check_variant(
            "ar",
            "unused2",
            model_dir=tiny_model_dir,
            workdir=tmp_path,
            checks=("shapes", "gradients", "determinism"),
        )
    message = str(info.value)
    assert "failed contract check 'gradients'" in message
    assert "'shapes'" not in message and "'determinism'" not in message


def test_variant_checks_yields_named_callables_and_rejects_bad_overrides(tiny_model_dir, tmp_path):
    pairs = list(variant_checks("ar", "baseline", model_dir=tiny_model_dir, workdir=tmp_path))
    assert [name for name, _ in pairs] == list(CHECKS)
    assert all(callable(run) for _, run in pairs)
    with pytest.raises(NLAError, match="bogus: unknown key"):
        list(variant_checks("ar", "baseline", {"bogus": 1}, model_dir="x", workdir="y"))
    with pytest.raises(ValueError, match="unknown contract check"):
        run_check("ar", "baseline", "nope", model_dir=tiny_model_dir, workdir=tmp_path)


# -- the written interface ----------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "name", "config"), CASES)
def test_builtins_implement_their_protocol_and_declare_capabilities(kind, name, config):
    """Without building anything: a method-only capability is a property of the class."""
    from nla_variants.variants.interfaces import PrintsFlowchart, ReadsSource, VerifiesInjection

    cls = variants(kind)[name].cls
    protocol = ActivationVerbalizer if kind == "av" else ActivationReconstructor
    set_in_init = {"cfg", "eos_id", "prompt_ids"}
    lacks = [m for m in missing_members(cls, protocol) if m not in set_in_init]
    assert not lacks, f"{cls.__name__} lacks {lacks}"
    assert issubclass(cls, VerifiesInjection) == (kind == "av")
    assert issubclass(cls, ReadsSource) == (name == "context")
    assert issubclass(cls, PrintsFlowchart) == (name == "flowchart")


def test_a_missing_interface_member_is_named(example, tiny_model_dir, contract_workdir):
    def no_sequences(self):
        raise AttributeError("sequences")

    _register_broken("ar", example.MeanPoolAR, "no_sequences", sequences=property(no_sequences))
    _fails(
        "ar",
        "no_sequences",
        "shapes",
        r"missing members of nla_variants.variants.interfaces.ActivationReconstructor: \['sequences'\]",
        tiny_model_dir,
        contract_workdir,
    )


def test_a_source_reader_that_ignores_its_source_is_caught(
    example, tiny_model_dir, contract_workdir
):
    base = example.MeanPoolAR

    def source_ids(self, sources):
        return self.tokenizer(list(sources), add_special_tokens=False)["input_ids"]

    _register_broken("ar", base, "deaf_reader", source_ids=source_ids)
    dirs = {"model_dir": tiny_model_dir, "workdir": contract_workdir}
    run_check("ar", "deaf_reader", "shapes", **dirs)
    _fails("ar", "deaf_reader", "input_dependence", "ignores its source", **dirs)
