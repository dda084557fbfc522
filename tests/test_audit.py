"""`nla audit`: the probe and the inputs (unit), and the whole command on a tiny NLA and two tiny
secret-word fine-tunes of its target (integration), with its bad input refused before any work."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pytest
import torch

from nla_variants.auditing.audit import probe_predictions, read_cases
from nla_variants.cli import main
from nla_variants.common.errors import NLAError
from nla_variants.core.padding import pad_left
from nla_variants.data.organisms import held_out_asks
from nla_variants.training.finetune import FinetuneConfig, finetune_target
from nla_variants.variants.testing import make_tiny_model

CASES = Path(__file__).parents[1] / "configs" / "cases" / "secret_word.jsonl"


def test_the_shipped_cases_are_the_held_out_asks():
    assert read_cases(CASES) == held_out_asks()


def test_left_padding_ends_every_row_at_its_last_token():
    ids, mask = pad_left([[1, 2, 3], [4]], 0)
    assert ids.tolist() == [[1, 2, 3], [0, 0, 4]]
    assert mask.tolist() == [[1, 1, 1], [0, 0, 1]]


def test_the_probe_reads_a_value_the_vectors_hold_and_not_one_they_do_not():
    g = torch.Generator().manual_seed(0)
    values = ["gold", "moon", "piano"] * 40
    centres = {v: torch.randn(32, generator=g) * 3 for v in set(values)}
    held = torch.stack([centres[v] + torch.randn(32, generator=g) for v in values])
    predicted = probe_predictions(held, values, seed=0)
    assert sum(p == v for p, v in zip(predicted, values, strict=True)) / len(values) > 0.95
    noise = torch.randn(len(values), 32, generator=g)
    predicted = probe_predictions(noise, values, seed=0)
    assert sum(p == v for p, v in zip(predicted, values, strict=True)) / len(values) < 0.6


@pytest.mark.parametrize(
    "content, problem",
    [
        ("", "has no cases"),
        ("\n\n", "has no cases"),
        ("{not json", "is not JSON"),
        ('{"text": "hi"}', 'has no "prompt" string'),
    ],
)
def test_bad_case_files_are_one_line(tmp_path, content, problem):
    path = tmp_path / "cases.jsonl"
    path.write_text(content)
    with pytest.raises(NLAError, match=problem):
        read_cases(path)


@pytest.fixture(scope="module")
def audited(tmp_path_factory, tiny_model_dir, trained_run):
    """A tiny run and two tiny secret-word fine-tunes of its target (2 steps each)."""
    tmp = tmp_path_factory.mktemp("audit")
    run = trained_run(tmp, tiny_model_dir)
    organisms = [
        finetune_target(
            FinetuneConfig(
                name=f"secret-{word}",
                model=str(tiny_model_dir),
                secret_word=word,
                genre=None,
                max_documents=16,
                steps=2,
                batch_size=4,
                root=str(tmp / "organisms"),
            ),
            progress=False,
        ).path
        for word in ("gold", "moon")
    ]
    cases = tmp / "cases.jsonl"
    cases.write_text("".join(json.dumps({"prompt": a}) + "\n" for a in held_out_asks(6)))
    return tmp, run, organisms, cases


@pytest.mark.integration
def test_audit_scores_every_reading_with_intervals_and_logs_them(audited, monkeypatch, capsys):
    tmp, run, organisms, cases = audited
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp}/mlflow.db")
    out = tmp / "report"
    args = ["audit", str(run), "--cases", str(cases), "--out", str(out), "-q"]
    for o in organisms:
        args += ["--organism", str(o)]
    args += ["--batch-size", "8", "--response-tokens", "6", "--max-new-tokens", "8"]
    args += ["--mlflow-experiment", "audit-test"]
    assert main(args) == 0
    report = json.loads((out / "audit.json").read_text())
    summary, cases_out = report["summary"], report["cases"]
    assert summary["cases"] == 12 and len(cases_out) == 12
    assert {c["secret"] for c in cases_out} == {"gold", "moon"}
    for score in ("word", "word_or_hint"):
        for reading in ("nla", "shuffled", "transcript"):
            r = summary["reveal"][score][reading]
            assert 0 <= r["low"] <= r["rate"] <= r["high"] <= 1 and r["n"] == 12
            assert 0 <= r["chance"] <= 1
    probe = summary["reveal"]["probe"]
    assert probe["n"] == 12 and probe["chance"] == 0.5
    for word in ("gold", "moon"):
        verified = summary["organisms"][word]
        assert verified["hint"]["n"] == 6 and 0 <= verified["says_word"]["rate"] <= 1
    markdown = (out / "audit.md").read_text()
    assert "| the NLA's explanation |" in markdown and "linear probe" in markdown
    assert "| the NLA's explanation |" in capsys.readouterr().out
    assert not list(out.glob("*.tmp"))
    runs = mlflow.search_runs(experiment_names=["audit-test"], output_format="list")
    assert len(runs) == 1
    assert runs[0].data.metrics["audit/word/nla"] == summary["reveal"]["word"]["nla"]["rate"]


@pytest.mark.integration
def test_audit_refuses_bad_input_before_any_work(audited, embedded_dir, tmp_path, capsys):
    _, run, organisms, cases = audited
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    out = tmp_path / "never"
    base = ["audit", str(run), "--out", str(out), "--mlflow-experiment", "", "-q"]
    code = main([*base, "--organism", str(organisms[0]), "--cases", str(empty)])
    assert code == 2 and "has no cases" in capsys.readouterr().err
    # an organism fine-tuned from another model than the NLA's target (other random weights)
    other_base = make_tiny_model(tmp_path / "other-base", tokenizer=embedded_dir, seed=1)
    other = finetune_target(
        FinetuneConfig(
            name="secret-piano",
            model=str(other_base),
            secret_word="piano",
            genre=None,
            max_documents=4,
            steps=1,
            batch_size=2,
            root=str(tmp_path / "organisms"),
        ),
        progress=False,
    ).path
    code = main([*base, "--organism", str(other), "--cases", str(cases)])
    err = capsys.readouterr().err
    assert code == 2 and "was fine-tuned from" in err and len(err.strip().splitlines()) == 1
    code = main([*base, "--organism", str(run), "--cases", str(cases)])
    assert code == 2 and "is not a fine-tune" in capsys.readouterr().err
    assert not out.exists()
