"""`nla explain` on the tiny model: a trained run read token by token (JSONL and HTML), the
shuffled control and the text-only baseline, positions and samples, activation diffing, the
MLflow record, and every promised bad input (one line, exit 2, nothing written)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import mlflow
import pytest
import torch

from nla_variants.artifacts.loading import locate
from nla_variants.cli import main
from nla_variants.common.errors import NLAError
from nla_variants.config import TrialConfig, load_config
from nla_variants.explain.explain import ExplainSettings, TextInput, explain, parse_positions

TEXT = "The harbor lights came on one by one, and the boats turned for home before the storm."
FAST = ["--max-new-tokens", "8", "--precision", "fp32", "--device", "cpu", "-q"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_model_dir, trained_run):
    """(tmp dir, config, run directory) of a finished tiny trial."""
    tmp = tmp_path_factory.mktemp("explain")
    run = trained_run(tmp, tiny_model_dir)
    return tmp, load_config(run / "config.yaml", TrialConfig), run


def settings(**kw) -> ExplainSettings:
    base = {"max_new_tokens": 8, "precision": "fp32", "device": "cpu"}
    return ExplainSettings(**{**base, **kw})


def run_cli(args: list[str], capsys) -> tuple[int, str, str]:
    code = main(args)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_explain_writes_one_record_per_token_with_scores_and_a_viewer(trained, tmp_path, capsys):
    _, _, run = trained
    out, page = tmp_path / "e.jsonl", tmp_path / "e.html"
    code, _, err = run_cli(
        ["explain", str(run), "--text", TEXT, "--out", str(out), "--html", str(page), *FAST],
        capsys,
    )
    assert code == 0, err
    records = [json.loads(line) for line in out.read_text().splitlines()]
    ids = json.loads(page.read_text().split('id="nla-data">')[1].split("</script>")[0])
    tokens = ids["documents"][0]["tokens"]
    assert "".join(tokens) == TEXT  # the pieces are the text, token by token
    assert [r["position"] for r in records] == list(range(len(tokens)))
    for r in records:
        assert r["token"] == tokens[r["position"]]
        assert len(r["explanations"]) == len(r["cos"]) == len(r["cos_shuffled"]) == 1
        assert -1 <= r["cos"][0] <= 1 and r["fve"][0] is not None
        assert r["baseline"]["source"] == "teacher:heuristic" and r["baseline"]["explanation"]
        assert r["norm"] > 0
    assert "real" in err and "shuffled" in err  # the summary table


def test_a_failed_extraction_scores_as_orthogonal(trained):
    _, _, run = trained
    result = explain(locate(run), [TextInput(TEXT, "--text")], settings(positions="-2:"), False)
    for r in result.records:
        for e, raw, cos in zip(r["explanations"], r["raw"], r["cos"], strict=True):
            assert (e is None) == (raw is not None)
            if e is None:
                assert cos == 0.0  # normalised MSE 2: orthogonal, as in evaluation and RL


def test_positions_samples_and_the_explained_vectors(trained, tiny_model_dir):
    _, cfg, run = trained
    ref = locate(run)
    result = explain(
        ref,
        [TextInput(TEXT, "--text"), TextInput("A second, shorter text.", "row 2", "r2")],
        settings(positions="0,-1", samples=2, temperature=1.0, baseline="none"),
        progress=False,
    )
    last = len(result.documents[0]["tokens"]) - 1
    assert [(r["text_index"], r["position"]) for r in result.records][:2] == [(0, 0), (0, last)]
    assert result.records[-1]["text_id"] == "r2"
    assert all(len(r["explanations"]) == 2 and "baseline" not in r for r in result.records)
    # the norm is the residual hidden_states[layer] at that token, as a dataset would store it
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    ids = tok(TEXT, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        hidden = model(torch.tensor([ids]), output_hidden_states=True).hidden_states
    want = float(hidden[cfg.data.target.layer][0, -1].norm())
    assert result.records[1]["norm"] == pytest.approx(want, rel=1e-4)


def test_parse_positions():
    assert parse_positions(None, 4, "t") == [0, 1, 2, 3]
    assert parse_positions("0, -1, 1:3", 10, "t") == [0, 1, 2, 9]
    assert parse_positions("::4", 10, "t") == [0, 4, 8]
    for bad in ("x", "20", "1:2:3:4", "5:5"):
        with pytest.raises(NLAError):
            parse_positions(bad, 10, "t")


def test_diff_model_explains_the_difference_of_two_models(trained, tmp_path, tiny_model_dir):
    from nla_variants.variants.testing import make_tiny_model

    _, cfg, run = trained
    second = make_tiny_model(tmp_path / "second", tokenizer=tiny_model_dir, seed=1)
    result = explain(
        locate(run),
        [TextInput(TEXT, "--text")],
        settings(positions="3", diff_model=str(second), baseline="none"),
        progress=False,
    )
    from transformers import AutoModelForCausalLM, AutoTokenizer

    ids = AutoTokenizer.from_pretrained(tiny_model_dir)(TEXT, add_special_tokens=False)
    states = []
    for path in (tiny_model_dir, second):
        model = AutoModelForCausalLM.from_pretrained(path)
        with torch.no_grad():
            out = model(torch.tensor([ids["input_ids"]]), output_hidden_states=True)
        states.append(out.hidden_states[cfg.data.target.layer][0, 3])
    assert result.summary["vectors"] == "diff"
    assert result.records[0]["norm"] == pytest.approx(float((states[1] - states[0]).norm()), 1e-4)


def test_explain_logs_its_outputs_to_the_run(trained, tmp_path, capsys):
    _, cfg, run = trained
    page = tmp_path / "viewer.html"
    code, out, err = run_cli(
        ["explain", str(run), "--text", TEXT, "--positions", "0", "--html", str(page)]
        + ["--log-to-run", *FAST],
        capsys,
    )
    assert code == 0, err
    client = mlflow.MlflowClient(cfg.mlflow.tracking_uri)
    names = {Path(a.path).name for a in client.list_artifacts(run.name, "explain")}
    assert names == {"explanations.jsonl", "viewer.html"}
    assert out == ""  # --html given: no JSONL on stdout


def test_jsonl_input_and_stdout_output(trained, tmp_path, capsys):
    _, _, run = trained
    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps({"id": "a", "body": TEXT}) + "\n\n" + json.dumps({"body": "Hi."}))
    code, out, err = run_cli(
        ["explain", str(run), "--jsonl", str(rows), "--column", "body", "--positions", "0"]
        + ["--baseline", "none", *FAST],
        capsys,
    )
    assert code == 0, err
    records = [json.loads(line) for line in out.splitlines()]
    assert [(r["text_index"], r["text_id"]) for r in records] == [(0, "a"), (1, "3")]


def _bad(trained, tmp_path, tiny_model_dir) -> dict[str, list[str]]:
    _, _, run = trained
    unfinished = tmp_path / "unfinished-run"
    unfinished.mkdir()
    shutil.copy(run / "config.yaml", unfinished / "config.yaml")
    words = " ".join(["harbor"] * 600)  # over the tiny model's 512-token context
    return {
        "unknown NLA path": [str(tmp_path / "nope"), "--text", TEXT],
        "run without a finished warm start": [str(unfinished), "--text", TEXT],
        "text longer than the context": [str(run), "--text", words],
        "empty text": [str(run), "--text", "  \n "],
        "bad positions": [str(run), "--text", TEXT, "--positions", "1-3"],
        "greedy samples": [str(run), "--text", TEXT, "--samples", "3"],
        "missing file": [str(run), "--file", str(tmp_path / "none.txt")],
        "not UTF-8": [str(run), "--file", str(tmp_path / "latin1.txt")],
        "two sources": [str(run), "--text", TEXT, "--file", str(tmp_path / "x.txt")],
        "a model directory that is no NLA": [str(tiny_model_dir), "--text", TEXT],
    }


@pytest.mark.parametrize(
    "case",
    [
        "unknown NLA path",
        "run without a finished warm start",
        "text longer than the context",
        "empty text",
        "bad positions",
        "greedy samples",
        "missing file",
        "not UTF-8",
        "two sources",
        "a model directory that is no NLA",
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(
    case, trained, tmp_path, tiny_model_dir, capsys
):
    (tmp_path / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    args = _bad(trained, tmp_path, tiny_model_dir)[case]
    out, page = tmp_path / "out" / "e.jsonl", tmp_path / "out" / "e.html"
    code, stdout, err = run_cli(
        ["explain", *args, "--out", str(out), "--html", str(page), *FAST], capsys
    )
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("nla: error: ") and "(fix: " in lines[0], err
    assert not (tmp_path / "out").exists() and stdout == ""


def test_errors_name_the_problem(trained, tmp_path, capsys):
    _, _, run = trained
    cases = {
        "does not exist": [str(tmp_path / "nope"), "--text", TEXT],
        "tokens, more than the target's context of 512": [str(run), "--text", "a " * 700],
        "the text is empty": [str(run), "--text", " "],
    }
    for needle, args in cases.items():
        code, _, err = run_cli(["explain", *args, *FAST], capsys)
        assert code == 2 and needle in err, err


def test_the_run_finds_its_cached_warm_start_through_its_record(trained):
    _, _, run = trained
    ref = locate(run)
    record = (run / "nla_run.yaml").read_text()
    assert str(ref.detail["av"]) in record and ref.detail["weights"].startswith("warm start")
    assert ref.layer == 2 and ref.target_fingerprint.startswith("local:")


def test_a_run_without_a_record_finds_its_warm_start_in_mlflow(trained, tmp_path):
    _, _, run = trained
    old = tmp_path / "copy" / run.name  # the same run id, without nla_run.yaml
    old.mkdir(parents=True)
    shutil.copy(run / "config.yaml", old / "config.yaml")
    assert locate(old).detail["av"] == locate(run).detail["av"]


def test_a_run_from_another_version_still_reads(trained, tmp_path):
    """Only the data and MLflow sections of a run's config are validated: training keys that
    an earlier or later nla_variants wrote do not make a finished run unreadable."""
    import yaml

    _, _, run = trained
    other = tmp_path / run.name
    shutil.copytree(run, other)
    cfg = yaml.safe_load((other / "config.yaml").read_text())
    cfg["train"]["ar_sft"]["a_key_from_another_version"] = 1
    (other / "config.yaml").write_text(yaml.safe_dump(cfg))
    assert locate(other).detail["av"] == locate(run).detail["av"]
