"""`nla audit`: the probe and the inputs (unit), and the whole command on a tiny NLA and two tiny
secret-word fine-tunes of its target (integration), with its bad input refused before any work."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import mlflow
import pytest
import torch

from nla_variants.auditing.audit import Case, other_values, probe_predictions, read_cases
from nla_variants.cli import main
from nla_variants.common.errors import NLAError
from nla_variants.core.padding import pad_left
from nla_variants.data.documents import GENRES
from nla_variants.data.organisms import held_out_asks
from nla_variants.data.statements import statement_cases, statement_pairs
from nla_variants.training.finetune import FinetuneConfig, finetune_target
from nla_variants.variants.testing import make_tiny_model

CASES = Path(__file__).parents[1] / "configs" / "cases"


def test_the_shipped_cases_are_the_held_out_asks_and_the_statements():
    assert read_cases(CASES / "secret_word.jsonl") == [Case(a) for a in held_out_asks()]
    statements = read_cases(CASES / "statements.jsonl")
    assert statements == [Case(c["statement"], c["value"]) for c in statement_cases()]
    assert len(statements) >= 100 and {c.value for c in statements} == {"true", "false"}


def test_the_shipped_genre_texts_are_generated_documents_of_every_genre():
    texts = read_cases(CASES / "genre_texts.jsonl")
    assert {c.kind for c in texts} == {"text"} and len(texts) >= 100
    assert Counter(c.genre for c in texts) == dict.fromkeys(GENRES, len(texts) // len(GENRES))
    rows = [json.loads(line) for line in (CASES / "genre_texts.jsonl").read_text().splitlines()]
    assert all("/generated/" in r["doc"] for r in rows)  # not moved by the installed stdlib
    assert len({r["doc"] for r in rows}) == len(rows)


def test_every_false_statement_is_its_true_twin_with_another_last_word():
    for true, false in statement_pairs():
        assert true != false and true.rsplit(" ", 1)[0] == false.rsplit(" ", 1)[0]


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


def test_the_shuffled_control_pairs_each_case_with_another_value():
    values = ["gold"] * 5 + ["moon"] * 3 + ["piano"] * 2
    other = other_values(values, seed=0)
    assert all(o != v for o, v in zip(other, values, strict=True))
    assert other == other_values(values, seed=0) and other != other_values(values, seed=1)
    assert other_values(["gold"] * 4, seed=0) is None


@pytest.mark.parametrize(
    "content, problem",
    [
        ("", "has no cases"),
        ("\n\n", "has no cases"),
        ("{not json", "is not JSON"),
        ('{"text": "hi"}', "a text's genre must be one of"),
        ('{"text": "hi", "genre": "poetry"}', "a text's genre must be one of"),
        ('{"title": "hi"}', 'has no "prompt", "statement" or "text" string'),
        ('{"prompt": "hi"}\n{"text": "x", "genre": "code"}', "mixes prompts and texts"),
        ('{"statement": "2 plus 2 equals 4."}', "value must be one of"),
        ('{"prompt": "hi"}\n{"statement": "x", "value": "true"}', "mixes prompts and statements"),
        ('{"statement": "x", "value": ["true"]}', "value must be one of"),
        ('{"prompt": "hi", "statement": "x", "value": "true"}', "both a"),
        ('["hi"]', "is not a JSON object"),
    ],
)
def test_bad_case_files_are_one_line(tmp_path, content, problem):
    path = tmp_path / "cases.jsonl"
    path.write_text(content)
    with pytest.raises(NLAError, match=problem):
        read_cases(path)


def tiny_organism(root: Path, model: Path, name: str, **settings) -> Path:
    """A tiny fine-tune of `model` (a secret word or a genre, as `settings` say), saved under
    `root`."""
    cfg = FinetuneConfig(name=name, model=str(model), root=str(root), **settings)
    return finetune_target(cfg, progress=False).path


@pytest.fixture(scope="module")
def audited(tmp_path_factory, tiny_model_dir, trained_run):
    """A tiny run and two tiny secret-word fine-tunes of its target (2 steps each)."""
    tmp = tmp_path_factory.mktemp("audit")
    run = trained_run(tmp, tiny_model_dir)
    organisms = [
        tiny_organism(
            tmp / "organisms",
            tiny_model_dir,
            f"secret-{word}",
            secret_word=word,
            genre=None,
            max_documents=16,
            steps=2,
            batch_size=4,
        )
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
    assert {c["value"] for c in cases_out} == {"gold", "moon"}
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
    other = tiny_organism(
        tmp_path / "organisms",
        other_base,
        "secret-piano",
        secret_word="piano",
        genre=None,
        max_documents=4,
        steps=1,
        batch_size=2,
    )
    code = main([*base, "--organism", str(other), "--cases", str(cases)])
    err = capsys.readouterr().err
    assert code == 2 and "was fine-tuned from" in err and len(err.strip().splitlines()) == 1
    code = main([*base, "--organism", str(run), "--cases", str(cases)])
    assert code == 2 and "is not a fine-tune" in capsys.readouterr().err
    code = main([*base, "--organism", "target", "--cases", str(cases)])
    assert code == 2 and "reads statements, but the cases are prompts" in capsys.readouterr().err
    code = main(
        [*base, "--organism", str(organisms[0]), "--cases", str(CASES / "statements.jsonl")]
    )
    assert code == 2 and "pass --organism target" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.integration
def test_audit_of_statements_reads_the_target_and_scores_truth(audited, tmp_path):
    _, run, _, _ = audited
    cases = tmp_path / "statements.jsonl"
    cases.write_text("".join(json.dumps(c) + "\n" for c in statement_cases()[:10]))
    out = tmp_path / "report"
    args = ["audit", str(run), "--organism", "target", "--cases", str(cases), "--out", str(out)]
    args += ["--batch-size", "8", "--max-new-tokens", "8", "--mlflow-experiment", "", "-q"]
    assert main(args) == 0
    report = json.loads((out / "audit.json").read_text())
    summary = report["summary"]
    assert summary["kind"] == "statements" and summary["cases"] == 10
    assert summary["organisms"] == {} and set(summary["reveal"]) == {"states", "probe"}
    assert summary["reveal"]["probe"]["chance"] == 0.5
    assert [c["value"] for c in report["cases"]] == ["true", "false"] * 5
    assert "| the statement, read by" in (out / "audit.md").read_text()


@pytest.mark.integration
def test_audit_of_genre_organisms_reads_their_differences_on_texts(audited, tiny_model_dir, capsys):
    tmp, run, secret_organisms, prompts = audited
    organisms = [
        tiny_organism(
            tmp / "organisms",
            tiny_model_dir,
            f"genre-{genre}",
            genre=genre,
            max_documents=8,
            steps=2,
            batch_size=4,
        )
        for genre in ("narrative", "code")
    ]
    rows = [json.loads(line) for line in (CASES / "genre_texts.jsonl").read_text().splitlines()]
    cases = tmp / "texts.jsonl"
    picked = [r for r in rows if r["genre"] == "narrative"][:3]
    picked += [r for r in rows if r["genre"] == "code"][:3]
    cases.write_text("".join(json.dumps(r) + "\n" for r in picked))
    out = tmp / "genre-report"
    args = ["audit", str(run), "--cases", str(cases), "--diff", "--out", str(out), "-q"]
    for o in organisms:
        args += ["--organism", str(o)]
    args += ["--batch-size", "8", "--response-tokens", "6", "--max-new-tokens", "8"]
    assert main([*args, "--mlflow-experiment", ""]) == 0
    report = json.loads((out / "audit.json").read_text())
    summary = report["summary"]
    assert summary["kind"] == "genre" and summary["read"] == "organism - base"
    assert summary["organisms"]["code"]["tuned_genre"] == "code"
    assert set(summary["reveal"]) == {"genre", "genre_elsewhere", "probe"}
    for reading in ("nla", "shuffled", "transcript"):
        assert summary["reveal"]["genre"][reading]["n"] == 12
        # each organism's texts of the other genre: 3 + 3
        assert summary["reveal"]["genre_elsewhere"][reading]["n"] == 6
    assert [c["text_genre"] for c in report["cases"][:6]] == ["narrative"] * 3 + ["code"] * 3
    assert "| the NLA's explanation |" in (out / "audit.md").read_text()
    # a genre organism is refused prompts, and a secret-word organism texts
    base = ["audit", str(run), "--mlflow-experiment", "", "-q"]
    code = main([*base, "--organism", str(organisms[0]), "--cases", str(prompts)])
    assert code == 2 and "tuned on narrative texts, but the cases are prompts" in (
        capsys.readouterr().err
    )
    code = main([*base, "--organism", str(secret_organisms[0]), "--cases", str(cases)])
    assert code == 2 and "hides the word gold, but the cases are texts" in capsys.readouterr().err


@pytest.mark.integration
def test_a_judge_is_scored_beside_the_other_readings(audited):
    from nla_variants.artifacts.loading import locate
    from nla_variants.auditing.audit import AuditSettings, audit, markdown, resolve_organism

    _, run, organisms, cases = audited

    class SaysGold:
        """What `make_judge` returns, without the API: it names gold whatever it reads."""

        model = "judge-stub"

        def explain(self, transcripts):
            return ["It is hiding gold."] * len(transcripts)

    settings = AuditSettings(batch_size=8, response_tokens=6, max_new_tokens=8)
    found = [resolve_organism(str(o)) for o in organisms]
    result = audit(locate(str(run)), found, read_cases(cases), settings, False, SaysGold())
    judged = result.summary["reveal"]["word"]["judge"]
    # right on the 6 gold cases; on the 6 moon ones it names one of the two wrong words
    assert judged["rate"] == 0.5 and judged["chance"] == pytest.approx(0.25) and judged["n"] == 12
    assert result.summary["judge"] == "judge-stub"
    assert {r["judge_answer"] for r in result.records} == {"It is hiding gold."}
    assert "asked of the judge judge-stub" in markdown(result)
