"""Config loading: overrides, one-line errors naming the key and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from nla_variants.common.errors import NLAError
from nla_variants.config import PrepareConfig, TrialConfig, load_config

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
ABLATIONS = CONFIGS.parent / "ablations"  # the ablation studies: one sweep config each


def test_defaults_and_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("name: demo\ntarget:\n  layer: 12\n")
    cfg = load_config(
        path, PrepareConfig, ["sampling.positions_per_doc=2", "teacher.splits=[eval]"]
    )
    assert (cfg.name, cfg.target.layer, cfg.sampling.positions_per_doc) == ("demo", 12, 2)
    assert cfg.teacher.splits == ["eval"]


@pytest.mark.parametrize(
    ("text", "overrides", "match"),
    [
        ("target:\n  lyer: 3\n", [], r"target\.lyer: unknown key"),
        ("", ["target.layer=abc"], r"target\.layer: Input should be a valid integer"),
        ("", ["sampling.splits={train: 1.0}"], r"unknown split"),
        ("", ["sampling.splits={eval: 0.5}"], r"sum to 1"),
        ("", ["corpus.source=files"], r"needs corpus.paths"),
        ("", ["teacher.kind=gpt"], r"teacher\.kind"),
        ("a: [1,\n", [], r"not valid YAML at line"),
        ("- 1\n", [], r"must be a YAML mapping"),
        ("", ["novalue"], r"not key=value"),
        ("", ["seed=-1"], r"seed: Input should be greater than or equal to 0"),
        ("", [f"seed={2**64}"], r"seed: Input should be less than 4294967296"),
    ],
)
def test_bad_configs_raise_one_line_errors(tmp_path, text, overrides, match):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(NLAError, match=match) as info:
        load_config(path, PrepareConfig, overrides)
    assert "\n" not in str(info.value) and "fix:" in str(info.value)


def test_a_trial_seed_a_generator_cannot_take_is_refused_on_load():
    """RL's batch seed is seed x 1,000,003 + step: a seed of 2**40 overflowed a torch generator
    deep inside RL; it is refused where the config is read."""
    with pytest.raises(NLAError, match=r"^config error: seed: Input should be less than"):
        load_config(None, TrialConfig, [f"seed={2**40}"])
    assert load_config(None, TrialConfig, [f"seed={2**32 - 1}"]).seed == 2**32 - 1


def test_missing_config_file(tmp_path):
    with pytest.raises(NLAError, match="does not exist"):
        load_config(tmp_path / "missing.yaml", PrepareConfig)


def test_a_config_states_only_what_it_changes_over_its_base(tmp_path):
    (tmp_path / "parent.yaml").write_text("name: parent\nseed: 3\ntrain: {av_sft: {steps: 7}}\n")
    (tmp_path / "child.yaml").write_text("base: parent.yaml\ntrain: {ar_sft: {steps: 5}}\n")
    cfg = load_config(tmp_path / "child.yaml", TrialConfig)
    assert (cfg.name, cfg.seed) == ("parent", 3)
    assert (cfg.train.av_sft.steps, cfg.train.ar_sft.steps) == (7, 5)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("base: missing.yaml\n", "base .*missing.yaml does not exist"),
        ("base: child.yaml\n", "includes itself"),
        ("base: [a, b]\n", "base must be a file path"),
    ],
)
def test_bad_bases_are_one_line_errors(tmp_path, text, message):
    (tmp_path / "child.yaml").write_text(text)
    with pytest.raises(NLAError, match=message) as info:
        load_config(tmp_path / "child.yaml", TrialConfig)
    assert info.value.fix


def test_a_sweep_config_keeps_its_own_base_key(tmp_path):
    """`base:` of a sweep names its base trial (a SweepConfig field), not a config to merge."""
    from nla_variants.sweeps.spec import load_sweep

    (tmp_path / "trial.yaml").write_text("name: t\nseed: 4\n")
    (tmp_path / "sweep.yaml").write_text(
        "name: s\nbase: trial.yaml\nn_trials: 1\nspace: {train.rl.kl_coef: {low: 0.01, high: 0.1}}\n"
    )
    sweep = load_sweep(tmp_path / "sweep.yaml")
    assert sweep.cfg.base == "trial.yaml" and sweep.base["seed"] == 4


@pytest.mark.parametrize("path", sorted(ABLATIONS.glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_sweep_config_loads(path):
    """The README's and the docs' sweep commands must not fail on their own configs."""
    from nla_variants.sweeps.spec import load_sweep

    assert load_sweep(path).cfg.name == path.stem


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("train_*.yaml")), ids=lambda p: p.name)
def test_every_shipped_trial_config_loads(path):
    assert load_config(path, TrialConfig).name
