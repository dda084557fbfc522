"""`nla steer` on the tiny model: what is written where, both modes, every NLA kind, bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from nla_variants.cli import main
from nla_variants.core.text import wrap_explanation
from nla_variants.target import TargetModel, decoder_blocks
from nla_variants.tools.steer import ResidualWriter

TEXT = "The harbor was quiet at night, and the boats rocked slowly under a pale moon."
SAID = 'A story about a harbor\nThe phrase goes on with "moon"'


@pytest.fixture(scope="module")
def run(tmp_path_factory, tiny_model_dir, trained_run) -> Path:
    """A run every layout can hold (no system message, the release AR)."""
    tmp = tmp_path_factory.mktemp("steer-run")
    return trained_run(tmp, tiny_model_dir, **{"av.system": "", "ar": {"variant": "release"}})


@pytest.fixture
def av_says(monkeypatch):
    """The tiny AV rarely closes its tag: make its explanation SAID, closed."""

    def generate(av, vectors, *args, **kwargs):
        return [wrap_explanation(SAID)] * len(vectors), [[0]] * len(vectors)

    # the module steer reads
    monkeypatch.setattr("nla_variants.evaluation.rollouts.generate_all", generate)


def steer(run: Path, tmp: Path, *flags: str) -> dict:
    out = tmp / "steer.json"
    argv = ["steer", str(run), "--text", TEXT, "--precision", "fp32", "--out", str(out), "-q"]
    assert main([*argv, *flags]) == 0
    return json.loads(out.read_text())


@pytest.mark.parametrize("through", [False, True])
def test_the_writer_changes_the_layer_at_the_position_and_after_it_only_with_through(
    tiny_model_dir, through
):
    model = TargetModel(str(tiny_model_dir), "fp32", "cpu")
    ids = torch.tensor([model.tokenize([TEXT])[0]])
    layer, position = 2, 5
    blocks = decoder_blocks(model.model)
    seen = []

    def record(module, args, kwargs):  # what the next block reads: hidden_states[layer]
        seen.append((args[0] if args else kwargs["hidden_states"])[0].clone())

    probe = blocks[layer].register_forward_pre_hook(record, with_kwargs=True)
    with torch.no_grad():
        model.model(input_ids=ids)
        delta = torch.randn(seen[0].shape[-1])
        handle = blocks[layer - 1].register_forward_hook(ResidualWriter(delta, position, through))
        try:
            model.model(input_ids=ids)
        finally:
            handle.remove()
            probe.remove()
    plain, out = seen
    moved = out - plain
    torch.testing.assert_close(moved[:position], torch.zeros_like(moved[:position]))
    torch.testing.assert_close(moved[position], delta, atol=1e-5, rtol=1e-5)
    later = moved[position + 1 :]  # this layer's later states do not see its own position
    want = delta.expand_as(later) if through else torch.zeros_like(later)
    torch.testing.assert_close(later, want, atol=1e-5, rtol=1e-5)


def test_replace_writes_the_reconstruction_at_the_residuals_norm(run, tmp_path):
    r = steer(run, tmp_path, "--explanation", SAID, "--position", "4", "--new-tokens", "5")
    assert r["position"] == 4 and r["edited"] == SAID and r["mode"] == "replace"
    cos = r["cosine"]["edited_vs_residual"]  # |v - h| for a unit v at h's norm, from the cosine
    assert r["delta_norm"] == pytest.approx(r["residual_norm"] * (2 - 2 * cos) ** 0.5, rel=1e-3)
    assert len(r["next_token"]["before"]) == 10 and r["next_token"]["kl_after_before"] >= 0
    assert r["continuation"]["before"] != "" and r["continuation"]["after"] != ""


def test_an_add_of_zero_changes_nothing_and_an_edit_changes_the_text(run, tmp_path, av_says):
    r = steer(run, tmp_path, "--edit", "harbor=>forest", "--mode", "add", "--alpha", "0")
    assert r["explanation"] == SAID and r["edited"] == SAID.replace("harbor", "forest")
    assert r["delta_norm"] == 0 and r["continuation"]["after"] == r["continuation"]["before"]
    assert r["next_token"]["kl_after_before"] == pytest.approx(0, abs=1e-6)
    r = steer(run, tmp_path, "--edit", "harbor=>forest", "--mode", "add", "--through")
    assert r["delta_norm"] > 0 and r["through"]


def test_runs_and_both_export_layouts_steer_alike(run, tmp_path, capsys):
    public, own = tmp_path / "public", tmp_path / "own"
    assert main(["export", str(run), str(public), "--layout", "public", "-q"]) == 0
    assert main(["export", str(run), str(own), "-q"]) == 0
    flags = ("--explanation", SAID, "--new-tokens", "6", "--through")
    results = [steer(nla, tmp_path, *flags) for nla in (run, own, public)]
    for r in results[1:]:
        assert r["continuation"] == results[0]["continuation"]
        assert r["delta_norm"] == pytest.approx(results[0]["delta_norm"], rel=1e-3)
    page = tmp_path / "steer.html"
    assert (
        main(["steer", str(run), "--text", TEXT, "--explanation", SAID, "--html", str(page)]) == 0
    )
    assert (
        "Continuation after" in page.read_text() and "before and after" in capsys.readouterr().out
    )


def test_the_writer_takes_one_change_per_row(tiny_model_dir):
    model = TargetModel(str(tiny_model_dir), "fp32", "cpu")
    ids = torch.tensor([model.tokenize([TEXT])[0]] * 2)
    blocks, seen = decoder_blocks(model.model), []

    def record(module, args, kwargs):
        seen.append((args[0] if args else kwargs["hidden_states"]).clone())

    probe = blocks[2].register_forward_pre_hook(record, with_kwargs=True)
    deltas = torch.randn(2, 64)
    with torch.no_grad():
        model.model(input_ids=ids)
        handle = blocks[1].register_forward_hook(ResidualWriter(deltas, 3, False))
        try:
            model.model(input_ids=ids)
        finally:
            handle.remove()
            probe.remove()
    moved = seen[1] - seen[0]
    torch.testing.assert_close(moved[:, 3], deltas, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(moved[:, 4:], torch.zeros_like(moved[:, 4:]))


def test_the_unsteered_row_is_the_targets_own_continuation(run, tmp_path, tiny_model_dir):
    """Both continuations decode as one batch: the unsteered one must be what the target says
    alone, cut where it stops."""
    r = steer(run, tmp_path, "--explanation", SAID, "--position", "4", "--new-tokens", "8")
    model = TargetModel(str(tiny_model_dir), "fp32", "cpu")
    ids = torch.tensor([model.tokenize([TEXT])[0]])
    with torch.no_grad():
        out = model.model.generate(
            ids, attention_mask=torch.ones_like(ids), max_new_tokens=8, do_sample=False
        )
    assert r["continuation"]["before"] == model.tokenizer.decode(out[0, ids.shape[1] :])


def test_the_console_command_leaves_early_with_its_output_written(run, tmp_path):
    """`nla steer` skips the interpreter's teardown: the JSON and the printed table must be
    complete all the same."""
    out = tmp_path / "steer.json"
    argv = ["steer", str(run), "--text", TEXT, "--explanation", SAID, "--out", str(out)]
    done = subprocess.run(
        [sys.executable, "-m", "nla_variants.cli", *argv, "--new-tokens", "3"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "before and after" in done.stdout and json.loads(out.read_text())["edited"] == SAID
    bad = subprocess.run(
        [sys.executable, "-m", "nla_variants.cli", *argv, "--position", "999"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert bad.returncode == 2 and "outside the text" in bad.stderr
