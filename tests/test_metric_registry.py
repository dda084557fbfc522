"""The metric registry: every built-in evaluation metric registered once with its direction, the
names and directions as before the registry, and the documented plugin metric
(docs/examples/last_word_metric.py, one file) reported by a tiny evaluation, accepted as a sweep
objective and given intervals over rows by `nla compare`'s definitions."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import numpy as np
import pytest
import torch

import nla_variants.evaluation.metrics as registry
from nla_variants.core.text import extract_explanation, wrap_explanation
from nla_variants.data.store import SplitRows
from nla_variants.evaluation.evaluation import evaluate, metric_names
from nla_variants.evaluation.metrics import metrics
from nla_variants.sweeps import confidence as C
from nla_variants.sweeps.report import higher_is_better
from nla_variants.target import resolve_model
from nla_variants.variants.registry import BuildContext, build

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "docs" / "examples" / "last_word_metric.py"
GUIDE = ROOT / "docs" / "adding_a_variant.md"

# The names `evaluate` reported before the registry, in their order (a sweep's messages list them).
BEFORE = [
    *("eval_rows", "ar_empty_fve"),
    *("roundtrip_fve", "roundtrip_shuffled_fve", "roundtrip_gap", "roundtrip_fve_raw"),
    *("tag_failure_rate", "schema_violation_rate", "quote_rate", "length_mean"),
]
BEFORE_TEACHER = [
    *("ar_teacher_fve", "ar_teacher_shuffled_fve", "ar_teacher_gap", "ar_teacher_fve_raw"),
    *("prompt_fve", "beats_prompt", "beats_prompt_low", "beats_prompt_high"),
    *("av_nll_real", "av_nll_shuffled", "av_nll_gap", "av_nll_gap_per_explanation"),
    "av_nll_win_rate",
]
# The report's rule for which direction is better, before the registry held the directions.
OLD_RULE = re.compile(
    r"contradict|tag_failure|schema_violation|quote_rate|wall_s$|shuffled_fve$|^eval/ar_empty_fve$"
)


def test_the_builtin_names_are_as_before_the_registry():
    assert metric_names(False) == BEFORE
    assert metric_names(True, ["faithful_mean"]) == [*BEFORE, *BEFORE_TEACHER, "faithful_mean"]
    assert list(metrics()) == [*BEFORE, *BEFORE_TEACHER]
    assert all(m.description and m.compute is None for m in metrics().values())


def test_the_registered_directions_are_the_reports_rule_as_before():
    for name in metrics():
        logged = f"eval/{name}"
        assert higher_is_better(logged) == (not OLD_RULE.search(logged)), logged
    others = ["eval/contradict_mean", "eval/faithful_mean", "trial/wall_s", "rl/steps"]
    others += ["rl/tag_failure_rate", "rl/quote_rate", "av_sft/val_nll_gap"]  # RL's, a stage's
    for other in others:
        assert higher_is_better(other) == (not OLD_RULE.search(other)), other


def test_compares_row_definitions_are_as_before_the_registry():
    columns = ["roundtrip_mse", "roundtrip_shuffled_mse", "base_mse", "teacher_mse"]
    columns += ["prompt_mse", "nll_real", "nll_shuffled", "nll_tokens", "tag_failure"]
    specs = C.metric_specs(columns)
    assert list(specs) == [
        f"eval/{n}"
        for n in ("roundtrip_fve", "roundtrip_shuffled_fve", "roundtrip_gap", "tag_failure_rate")
        + ("ar_teacher_fve", "prompt_fve", "beats_prompt", "av_nll_gap")
    ]
    assert specs["eval/roundtrip_fve"] == C.MetricSpec(
        1.0, (C.Ratio(-1.0, "roundtrip_mse", "base_mse"),)
    )
    assert specs["eval/tag_failure_rate"] == C.MetricSpec(
        0.0, (C.Ratio(1.0, "tag_failure", "one"),), higher=False
    )
    assert list(C.metric_specs(["roundtrip_mse"])) == []


@pytest.fixture
def example():
    """Import docs/examples/last_word_metric.py from its path (as a third party's module would
    be): it registers `last_word_rate` until the test ends."""
    before = metrics()
    spec = importlib.util.spec_from_file_location("nla_example_last_word_metric", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    yield module
    registry._REGISTRY.clear()
    registry._REGISTRY.update(before)


class _SaysHarbor(torch.nn.Module):
    """An AV that explains every vector alike: 'A story about a harbor' (the first row's tag
    never closes)."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.calls = 0

    def generate(self, vectors, max_new_tokens=96, temperature=1.0, num_samples=1, seeds=None):
        n = len(vectors) * num_samples
        texts = [wrap_explanation("A story about a harbor")] * n
        if self.calls == 0:
            texts[0] = "<explanation>\nA story about a harbor"
        self.calls += 1
        return texts, [[1]] * n

    def extract(self, text):
        return extract_explanation(text)

    def render_target(self, text):
        return text

    def encode_responses(self, explanations):
        return [[1, 2]] * len(explanations)

    def response_logprobs(self, vectors, responses):
        shape = (len(responses), 2)
        return torch.full(shape, -1.0), torch.ones(shape)


SOURCES = [
    "They sailed into the harbor",
    "The boats left the Harbor",
    "The cat sat on the mat",
    "A storm came over the harbor",
]


def test_the_example_metric_is_evaluated_compared_and_an_objective(
    example, tiny_model_dir, tmp_path, sweep_yaml
):
    assert metrics()["last_word_rate"].compute is example.last_word_rate
    assert metric_names(False)[-1] == "last_word_rate"

    ctx = BuildContext(resolve_model(str(tiny_model_dir)), layer=3, d_model=64, data_norm=12.0)
    ar = build("ar", {"variant": "baseline"}, ctx).eval()
    vectors = torch.randn(4, 64, generator=torch.Generator().manual_seed(0)) * 12
    rows = SplitRows(vectors.numpy(), [None] * 4, SOURCES, ["a", "b", "c", "d"])
    m, _, per_row = evaluate(_SaysHarbor(), ar, rows, torch.zeros(64), max_new_tokens=8)
    # row a's tag never closed (states nothing), b and d name "harbor", c ends with "mat"
    assert m["last_word_rate"] == pytest.approx(0.5)
    assert {"roundtrip_fve", "quote_rate", "eval_rows"} <= set(m)  # the built-ins, as before
    table = per_row.table().to_pydict()
    assert table["last_word_rate"] == [0.0, 1.0, 0.0, 1.0]

    # `nla compare`: a definition over rows, bootstrapped like the built-ins
    spec = C.metric_specs(list(table))["eval/last_word_rate"]
    estimate = C.row_estimate(spec, [C.row_arrays(table)], resamples=200)
    assert estimate.mean == pytest.approx(0.5) and np.isfinite(estimate.half_width())
    assert higher_is_better("eval/last_word_rate")

    # a sweep may report and optimise it: every trial produces it
    from nla_variants.sweeps.metrics import check_sweep_metrics
    from nla_variants.sweeps.spec import load_sweep

    objectives = [{"metric": "eval/last_word_rate", "direction": "maximize"}]
    path = sweep_yaml(
        tmp_path, tiny_model_dir, objectives=objectives, report=["eval/last_word_rate"]
    )
    check_sweep_metrics(load_sweep(path))


def test_a_name_registers_once(example):
    with pytest.raises(ValueError, match="already registered"):
        registry.register_metric("last_word_rate", higher=True, description="again")(len)


def test_the_guide_shows_the_example_metric_verbatim():
    blocks = re.findall(r"```python\n(.*?)```", GUIDE.read_text(), flags=re.S)
    assert EXAMPLE.read_text() in blocks


def test_the_guide_lists_every_field_a_metric_gets():
    from dataclasses import fields

    from nla_variants.evaluation.metrics import EvalData

    listed = set(re.findall(r"`ev\.(\w+)`", GUIDE.read_text()))
    assert {f.name for f in fields(EvalData)} <= listed
