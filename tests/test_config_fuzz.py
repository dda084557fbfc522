"""A seeded, bounded fuzz pass over config loading: random mutations of every shipped config
(wrong types, out-of-range and non-finite numbers, missing and extra keys, wrong nesting, broken
YAML and bytes that are not UTF-8) run through the real `nla` command up to its first expensive
stage. Every outcome is either a valid config or exit code 2 with one line; never a traceback.

Hypothesis runs derandomized (a fixed seed) with a fixed number of examples and no example
database, so the pass is the same on every machine and bounded in time."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nla_variants.cli import main

ROOT = Path(__file__).parent.parent
CONFIGS = ROOT / "configs"
SHIPPED = sorted(CONFIGS.glob("*.yaml")) + sorted((ROOT / "ablations").glob("*.yaml"))


class Reached(Exception):
    """The command got past loading and checking its config (where real work would start)."""


def command_of(path: Path) -> str:
    if path.parent.name == "ablations":
        return "sweep"
    return {"train": "train", "finetune": "finetune"}.get(path.stem.split("_")[0], "prepare")


def stub_expensive_stages(mp: pytest.MonkeyPatch) -> None:
    """Everything after config loading and the cheap input checks raises Reached."""
    from nla_variants.data import prepare
    from nla_variants.sweeps import runner as sweep
    from nla_variants.training import experiment, finetune

    def reached(*args: Any, **kwargs: Any) -> None:
        raise Reached

    def trial(cfg: Any, *args: Any, **kwargs: Any) -> None:
        experiment.check_trial_inputs(cfg)
        raise Reached

    mp.setattr(prepare, "resolve_model", reached)  # after the store root check
    mp.setattr(finetune, "resolve_model", reached)  # after the output root check
    mp.setattr(experiment, "run_trial", trial)
    mp.setattr(sweep.SweepRunner, "run", reached)


def paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    """Every key path of a YAML tree (mapping keys and list indices)."""
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for k, v in node.items():
            out += paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += paths(v, (*prefix, i))
    return out


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=12),
    st.sampled_from(["", "-1", "0", ".nan", "embedded", "baseline", "/", "a/b/c.yaml"]),
)
values = st.one_of(
    scalars,
    st.lists(scalars, max_size=3),
    st.dictionaries(st.text(max_size=6), scalars, max_size=2),
)


@st.composite
def mutated(draw: st.DrawFn, data: dict) -> bytes:
    """The config with 1-3 mutations, serialised; sometimes corrupted as text or bytes."""
    import copy

    data = copy.deepcopy(data)
    for _ in range(draw(st.integers(1, 3))):
        where = paths(data)
        if not where:
            break
        path = draw(st.sampled_from(where))
        *parents, leaf = path
        node = data
        for p in parents:
            node = node[p]
        op = draw(st.sampled_from(["replace", "delete", "extra", "wrap_list", "wrap_dict"]))
        if op == "replace":
            node[leaf] = draw(values)
        elif op == "delete" and isinstance(node, dict):
            del node[leaf]
        elif op == "extra" and isinstance(node, dict):
            node[draw(st.text(min_size=1, max_size=8))] = draw(values)
        elif op == "wrap_list":
            node[leaf] = [node[leaf]]
        elif op == "wrap_dict":
            node[leaf] = {"value": node[leaf]}
    text = yaml.safe_dump(data, allow_unicode=True).encode()
    corruption = draw(st.sampled_from(["none"] * 8 + ["truncate", "bytes"]))
    if corruption == "truncate":
        text = text[: draw(st.integers(0, len(text)))]
    elif corruption == "bytes":
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(st.binary(min_size=1, max_size=4)) + text[at:]
    return text


def load_shipped(path: Path) -> dict:
    data = yaml.safe_load(path.read_text())
    if isinstance(data.get("base"), str):  # the mutated copy lives elsewhere
        data["base"] = str((path.parent / data["base"]).resolve())
    return data


@pytest.mark.parametrize("shipped", SHIPPED, ids=lambda p: str(p.relative_to(ROOT)))
def test_mutated_shipped_configs_load_or_fail_in_one_line(shipped, tmp_path_factory):
    command = command_of(shipped)
    workdir = tmp_path_factory.mktemp("fuzz")
    target = workdir / shipped.name

    @settings(
        max_examples=50,
        derandomize=True,  # a fixed seed: the same examples on every run
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(mutated(load_shipped(shipped)))
    def check(text: bytes) -> None:
        target.write_bytes(text)
        err = io.StringIO()
        with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stderr(err):
            stub_expensive_stages(mp)
            mp.chdir(workdir)
            try:
                code = main([command, str(target), "-q"])
            except Reached:
                return  # a valid config
            except SystemExit as e:
                code = e.code
        lines = err.getvalue().strip().splitlines()
        assert code == 2 and len(lines) == 1, (code, lines)
        assert lines[0].startswith("nla: error: ") and "(fix: " in lines[0], lines

    check()
