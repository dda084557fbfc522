"""The variant registry: built-ins, lookup errors, per-variant config validation, registration,
the `nla_variants.variants` entry-point group and validation at trial-config load. No variant is
instantiated (that would load a model)."""

from __future__ import annotations

import importlib
import sys
import textwrap
import uuid
from importlib.metadata import entry_points

import pytest
from pydantic import BaseModel

import nla_variants.variants.registry as registry
from nla_variants.common.errors import NLAError
from nla_variants.common.strict import Strict
from nla_variants.config import TrialConfig, load_config
from nla_variants.variants.ar.baseline import BaselineAR, BaselineARConfig
from nla_variants.variants.av.baseline import BaselineAV, BaselineAVConfig
from nla_variants.variants.registry import (
    ENTRY_POINT_GROUP,
    get_variant,
    register_ar,
    register_av,
    variant_config,
    variants,
)

PLUGIN_MODULE = "my_nla_plugin"


@pytest.fixture
def clean_registry():
    """Restore the registry to its state before the test (built-ins loaded first, so the snapshot
    holds them), whatever the test registered."""
    variants("av")  # load built-ins (and installed plugins) before the snapshot
    snapshot = {kind: dict(entries) for kind, entries in registry._REGISTRY.items()}
    yield
    for kind, entries in registry._REGISTRY.items():
        entries.clear()
        entries.update(snapshot[kind])


def _unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


# -- built-ins ------------------------------------------------------------------------------------


def test_builtin_baselines_are_registered():
    av, ar = variants("av"), variants("ar")
    assert "baseline" in av and "baseline" in ar
    assert av["baseline"].cls is BaselineAV and av["baseline"].config_cls is BaselineAVConfig
    assert ar["baseline"].cls is BaselineAR and ar["baseline"].config_cls is BaselineARConfig
    assert (av["baseline"].kind, av["baseline"].name) == ("av", "baseline")
    assert (ar["baseline"].kind, ar["baseline"].name) == ("ar", "baseline")
    assert BaselineAV.variant_name == "baseline" and BaselineAV.config_class is BaselineAVConfig
    assert BaselineAR.variant_name == "baseline" and BaselineAR.config_class is BaselineARConfig


def test_variants_returns_a_copy():
    known = variants("av")
    known["intruder"] = known["baseline"]
    assert "intruder" not in variants("av")


def test_get_variant_known():
    assert get_variant("av", "baseline").cls is BaselineAV
    assert get_variant("ar", "baseline").cls is BaselineAR


def test_get_variant_unknown_lists_known_variants():
    with pytest.raises(NLAError, match=r"unknown av variant 'nope'") as info:
        get_variant("av", "nope")
    assert "baseline" in str(info.value)
    assert info.value.fix is not None and "baseline" in info.value.fix


# -- variant_config -------------------------------------------------------------------------------


def test_variant_config_rejects_unknown_key():
    with pytest.raises(NLAError, match=r"bogus") as info:
        variant_config("ar", {"variant": "baseline", "bogus": 1})
    message = str(info.value)
    assert "ar (baseline)" in message and "unknown key" in message
    assert "BaselineARConfig" in message


def test_variant_config_rejects_bad_value():
    with pytest.raises(NLAError, match=r"max_explanation_tokens"):
        variant_config("ar", {"variant": "baseline", "max_explanation_tokens": 2})
    with pytest.raises(NLAError, match=r"injection.scale"):
        variant_config("av", {"injection": {"scale": "bogus"}})


def test_variant_config_validates_into_the_config_class():
    section = {"variant": "baseline", "max_explanation_tokens": 64}
    variant, cfg = variant_config("ar", section)
    assert variant.cls is BaselineAR
    assert isinstance(cfg, BaselineARConfig) and cfg.max_explanation_tokens == 64
    assert section == {"variant": "baseline", "max_explanation_tokens": 64}  # not mutated

    variant, cfg = variant_config("av", {"variant": "baseline", "injection": {"scale": 3}})
    assert isinstance(cfg, BaselineAVConfig) and cfg.injection.scale == 3.0


def test_variant_config_defaults_to_baseline():
    variant, cfg = variant_config("ar", {"max_explanation_tokens": 32})
    assert variant.name == "baseline" and cfg.max_explanation_tokens == 32
    variant, cfg = variant_config("av", {})
    assert variant.name == "baseline" and cfg == BaselineAVConfig()


def test_variant_config_unknown_variant():
    with pytest.raises(NLAError, match=r"unknown ar variant 'nope'.*baseline"):
        variant_config("ar", {"variant": "nope"})


# -- registration ---------------------------------------------------------------------------------


class _TinyConfig(Strict):
    width: int = 4


def test_register_av_and_ar_make_variants_visible(clean_registry):
    av_name, ar_name = _unique("test_av"), _unique("test_ar")

    @register_av(av_name, _TinyConfig)
    class TinyAV:
        pass

    @register_ar(ar_name, _TinyConfig)
    class TinyAR:
        pass

    assert variants("av")[av_name].cls is TinyAV
    assert variants("ar")[ar_name].cls is TinyAR
    assert av_name not in variants("ar") and ar_name not in variants("av")
    assert TinyAV.variant_name == av_name and TinyAV.config_class is _TinyConfig
    variant, cfg = variant_config("av", {"variant": av_name, "width": 9})
    assert variant.cls is TinyAV and cfg == _TinyConfig(width=9)
    with pytest.raises(NLAError, match="unknown key"):
        variant_config("ar", {"variant": ar_name, "height": 1})
    # Re-registering the same class (e.g. a second import) is allowed.
    assert register_av(av_name, _TinyConfig)(TinyAV) is TinyAV


def test_clean_registry_fixture_removed_previous_test_variants():
    assert all(not n.startswith("test_av_") for n in variants("av"))
    assert all(not n.startswith("test_ar_") for n in variants("ar"))


def test_register_different_class_under_existing_name_raises(clean_registry):
    with pytest.raises(ValueError, match="already registered"):

        @register_av("baseline", BaselineAVConfig)
        class Impostor:
            pass

    assert variants("av")["baseline"].cls is BaselineAV

    name = _unique("test_ar")

    @register_ar(name, _TinyConfig)
    class First:
        pass

    with pytest.raises(ValueError, match=name):

        @register_ar(name, _TinyConfig)
        class Second:
            pass

    assert variants("ar")[name].cls is First


# -- entry-point plugins --------------------------------------------------------------------------

PLUGIN_SOURCE = '''
"""A third-party plugin: importing it registers an AV variant."""

from pydantic import BaseModel, ConfigDict

from nla_variants.variants.registry import register_av


class PluginAVConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    temperature: float = 0.5


@register_av("plugin_av", PluginAVConfig)
class PluginAV:
    def __init__(self, cfg, ctx):
        self.cfg = cfg
'''


@pytest.fixture
def plugin_on_path(tmp_path, monkeypatch, clean_registry):
    """A real installed-looking distribution in tmp_path: a module and its dist-info with an
    entry point in the `nla_variants.variants` group."""
    (tmp_path / f"{PLUGIN_MODULE}.py").write_text(textwrap.dedent(PLUGIN_SOURCE))
    dist_info = tmp_path / f"{PLUGIN_MODULE}-0.1.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {PLUGIN_MODULE}\nVersion: 0.1\n"
    )
    (dist_info / "entry_points.txt").write_text(
        f"[{ENTRY_POINT_GROUP}]\nplugin = {PLUGIN_MODULE}\n"
    )
    assert PLUGIN_MODULE not in sys.modules
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    monkeypatch.setattr(registry, "_loaded_plugins", False)
    yield tmp_path
    sys.modules.pop(PLUGIN_MODULE, None)
    importlib.invalidate_caches()


def test_entry_point_plugin_registers_variant(plugin_on_path):
    names = {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}
    assert names.get("plugin") == PLUGIN_MODULE

    av = variants("av")
    assert "plugin_av" in av and "baseline" in av
    assert PLUGIN_MODULE in sys.modules
    plugin = sys.modules[PLUGIN_MODULE]
    assert av["plugin_av"].cls is plugin.PluginAV
    assert av["plugin_av"].config_cls is plugin.PluginAVConfig
    assert issubclass(av["plugin_av"].config_cls, BaseModel)
    assert registry._loaded_plugins is True
    assert "plugin_av" not in variants("ar")

    variant, cfg = variant_config("av", {"variant": "plugin_av", "temperature": 0.9})
    assert variant.cls is plugin.PluginAV and cfg.temperature == 0.9
    with pytest.raises(NLAError, match=r"av \(plugin_av\): bogus: unknown key"):
        variant_config("av", {"variant": "plugin_av", "bogus": 1})
    with pytest.raises(NLAError, match="plugin_av"):  # listed among the known variants
        get_variant("av", "nope")


def test_plugin_is_gone_after_cleanup():
    assert PLUGIN_MODULE not in sys.modules
    assert "plugin_av" not in variants("av")


# -- validation at trial-config load --------------------------------------------------------------


def test_trial_config_unknown_variant_lists_known():
    with pytest.raises(NLAError, match=r"unknown av variant 'nope'") as info:
        load_config(None, TrialConfig, ["av.variant=nope"])
    assert "baseline" in str(info.value)
    with pytest.raises(NLAError, match=r"unknown ar variant 'other'"):
        load_config(None, TrialConfig, ["ar.variant=other"])


def test_trial_config_unknown_variant_key():
    with pytest.raises(NLAError, match=r"ar \(baseline\): bogus: unknown key"):
        load_config(None, TrialConfig, ["ar.bogus=1"])
    with pytest.raises(NLAError, match=r"av \(baseline\): injection.scale"):
        load_config(None, TrialConfig, ["av.injection.scale=huge"])
    with pytest.raises(NLAError, match=r"av \(baseline\): injection.site"):
        load_config(None, TrialConfig, ["av.injection.site=middle"])


def test_trial_config_defaults_and_valid_overrides():
    cfg = load_config(None, TrialConfig)
    assert cfg.av == {"variant": "baseline"} and cfg.ar == {"variant": "baseline"}
    overrides = ["av.injection.scale=match", "av.injection.site=1", "av.finetune=lora"]
    cfg = load_config(None, TrialConfig, overrides)
    _, av_cfg = variant_config("av", cfg.av)
    assert av_cfg.injection.scale == "match" and av_cfg.injection.site == 1
    assert av_cfg.finetune == "lora"


def test_trial_config_template_without_slot_fails_at_load():
    # The {explanation} slot is checked when the config loads, not once the AR is built (after
    # a dataset and an MLflow run exist: issue 22).
    with pytest.raises(NLAError, match=r"ar \(baseline\): template: .*\{explanation\}"):
        load_config(None, TrialConfig, ["ar.template=no slot here"])
    # An override replaces the default section, so the variant key is absent (baseline implied).
    cfg = load_config(None, TrialConfig, ["ar.template=A {explanation} B"])
    assert cfg.ar == {"template": "A {explanation} B"}
    variant, ar_cfg = variant_config("ar", cfg.ar)
    assert variant.cls is BaselineAR and ar_cfg.template == "A {explanation} B"


# -- the typed sections of a trial ----------------------------------------------------------------


def test_a_trial_carries_its_sections_validated_once():
    from nla_variants.variants.av.structured import StructuredAV, StructuredAVConfig
    from nla_variants.variants.registry import ARSection, AVSection

    cfg = load_config(None, TrialConfig, ["av.variant=structured", "av.fields=topic,next"])
    assert isinstance(cfg.av, AVSection) and isinstance(cfg.ar, ARSection)
    assert cfg.av.variant.cls is StructuredAV and cfg.av.variant.name == "structured"
    assert isinstance(cfg.av.config, StructuredAVConfig) and cfg.av.config.fields == [
        "topic",
        "next",
    ]
    assert cfg.av.config is cfg.av.config  # validated once, at load
    variant, av_cfg = variant_config("av", cfg.av)
    assert av_cfg is cfg.av.config  # the registry reuses it instead of validating again
    assert cfg.ar.variant.cls is BaselineAR and cfg.ar.config == BaselineARConfig()


def test_a_section_serialises_as_written():
    """Dumps (config.yaml, MLflow params) and hashes see the keys as written, not the defaults
    the validated config fills in: existing run records and cache keys stay valid."""
    overrides = ["av.variant=structured", "av.fields=topic,next", "ar.template=x {explanation}"]
    cfg = load_config(None, TrialConfig, overrides)
    dumped = cfg.model_dump(mode="json")
    assert dumped["av"] == {"variant": "structured", "fields": "topic,next"}
    assert dumped["ar"] == {"template": "x {explanation}"}
    assert type(dumped["av"]) is dict and type(cfg.model_dump()["ar"]) is dict
    assert cfg.av == {"variant": "structured", "fields": "topic,next"}  # a read-only mapping
    again = TrialConfig.model_validate(dumped)
    assert again == cfg and again.av.config == cfg.av.config


def test_assigning_a_section_validates_it():
    cfg = load_config(None, TrialConfig)
    cfg.ar = {"variant": "small", "n_layers": 1}
    assert cfg.ar.variant.name == "small" and cfg.ar.config.n_layers == 1
    with pytest.raises(NLAError, match=r"unknown av variant 'nope'"):
        cfg.av = {"variant": "nope"}
