"""Bad input that used to surface only after work was done, or never: a teacher that fails,
a corpus file that is not UTF-8, report and objective metrics no trial produces, sweep
directories used from another working directory or copied elsewhere, and a trial config given
where a sweep is expected. Each is one line with a fix and exit code 2; nothing is stored as if
it had worked. The Anthropic API is a fake on loopback: no network."""

from __future__ import annotations

import json
import socket
import sqlite3
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from nla_variants.cli import main

FAKE_KEY = "sk-fake-5d1c0b7e-SECRET-never-shown"


def files_under(root: Path) -> set[Path]:
    return set(root.rglob("*"))


def run_bad(argv: list[str], capsys, root: Path) -> str:
    """Run the CLI on bad input: exit 2, one line with a fix, nothing new under `root`."""
    before = files_under(root)
    try:
        code = main(argv)
    except SystemExit as e:  # argparse's own errors
        code = e.code
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert err.startswith("nla: error: ") and "\n" not in err and "(fix: " in err, err
    assert files_under(root) == before, sorted(map(str, files_under(root) - before))
    return err


def one_line_error(argv: list[str], capsys) -> str:
    """Run the CLI expecting exit 2 with one line and a fix (files may be written)."""
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert err.startswith("nla: error: ") and "\n" not in err and "(fix: " in err, err
    return err


# -- 1. a teacher that cannot answer ------------------------------------------------------------


class FakeAPI:
    """What the fake Anthropic API does: answer well, answer every request with `status`, or
    answer with text the teacher rejects (`malformed`)."""

    def __init__(self) -> None:
        self.status: int | None = None
        self.malformed = False
        self.paths: list[str] = []
        self.url = ""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Any

    def log_message(self, *args: Any) -> None:
        pass

    def _json(self, status: int, obj: Any) -> None:
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("retry-after-ms", "1")  # keeps the SDK's backoff out of test time
        self.end_headers()
        self.wfile.write(body)

    def _handle(self) -> None:
        api: FakeAPI = self.server.api
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        path = self.path.split("?")[0]
        api.paths.append(path)
        if api.status is not None:
            error = {"type": "api_error", "message": f"fake failure for key {FAKE_KEY}"}
            return self._json(api.status, {"type": "error", "error": error})
        if path == "/v1/models":
            model = {"type": "model", "id": "claude-sonnet-4-6", "display_name": "x"}
            model["created_at"] = "2026-01-01T00:00:00Z"
            page = {"data": [model], "has_more": False, "first_id": "a", "last_id": "a"}
            return self._json(200, page)
        if path == "/v1/messages":
            text = "only one feature" if api.malformed else "A short story\nIt ends mid-sentence"
            message = {
                "id": "msg_1",
                "type": "message",
                "role": "assistant",
                "model": body["model"],
                "content": [{"type": "text", "text": text}],
                "stop_reason": "end_turn",
                "stop_sequence": None,
                "usage": {"input_tokens": 10, "output_tokens": 10},
            }
            return self._json(200, message)
        return self._json(404, {"type": "error", "error": {"type": "not_found_error"}})

    do_GET = do_POST = _handle


@pytest.fixture
def fake_api(monkeypatch, tmp_path) -> Iterator[FakeAPI]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    server.api = FakeAPI()  # type: ignore[attr-defined]
    server.api.url = f"http://127.0.0.1:{server.server_address[1]}"  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    monkeypatch.setenv("ANTHROPIC_API_KEY", FAKE_KEY)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.delenv("ANTHROPIC_AUTH_TOKEN", raising=False)
    monkeypatch.setenv("NLA_CACHE_DIR", str(tmp_path / "cache"))
    yield server.api  # type: ignore[attr-defined]
    server.shutdown()
    server.server_close()


def _anthropic(url: str, mode: str = "sync") -> dict:
    return {"kind": "anthropic", "anthropic": {"base_url": url, "mode": mode, "max_retries": 1}}


def _cached_answers(tmp_path: Path) -> int:
    db = tmp_path / "cache" / "teachers" / "anthropic" / "anthropic_teacher.sqlite"
    with sqlite3.connect(db) as con:
        return con.execute("SELECT COUNT(*) FROM answers").fetchone()[0]


@pytest.mark.parametrize("mode", ["sync", "batch"])
def test_a_teacher_answering_500_leaves_no_complete_dataset_and_a_rerun_explains(
    fake_api, tmp_path, tiny_model_dir, write_config, capsys, mode
):
    fake_api.status = 500
    path = write_config(tmp_path, tiny_model_dir, teacher=_anthropic(fake_api.url, mode))
    err = one_line_error(["prepare", str(path), "-q"], capsys)
    assert "teacher 'anthropic' got no answer for" in err and "500" in err, err
    assert "the dataset is not complete" in err and "base_url" in err
    assert FAKE_KEY not in err
    store = tmp_path / "datasets"
    assert not list(store.rglob("dataset.yaml")) and not list(store.rglob("*.parquet"))
    assert _cached_answers(tmp_path) == 0  # a failure is never cached as an answer

    fake_api.status = None  # the teacher works now: the same dataset is built, and explained
    assert main(["prepare", str(path), "-q", "--set", "teacher.anthropic.mode=sync"]) == 0
    (sidecar,) = store.rglob("dataset.yaml")
    counts = yaml.safe_load(sidecar.read_text())["counts"]
    assert counts["teacher_rows"] > 0 and counts["explained"] == counts["teacher_rows"]


def test_an_unreachable_teacher_fails_before_extraction(
    fake_api, tmp_path, tiny_model_dir, write_config, capsys
):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}"
    path = write_config(tmp_path, tiny_model_dir, teacher=_anthropic(closed))
    err = run_bad(["prepare", str(path), "-q"], capsys, tmp_path)
    assert "cannot reach the API at http://127.0.0.1:" in err and "base_url" in err
    assert FAKE_KEY not in err and not (tmp_path / "datasets").exists()


def test_a_teacher_that_explains_nothing_leaves_no_complete_dataset(
    fake_api, tmp_path, tiny_model_dir, write_config, capsys
):
    fake_api.malformed = True
    path = write_config(tmp_path, tiny_model_dir, teacher=_anthropic(fake_api.url))
    err = one_line_error(["prepare", str(path), "-q"], capsys)
    assert "explained none of the" in err and "malformed" in err, err
    assert not list((tmp_path / "datasets").rglob("dataset.yaml"))
    err = one_line_error(["prepare", str(path), "-q"], capsys)  # and never becomes complete
    assert "explained none of the" in err


def test_sync_teacher_stops_sending_when_every_request_fails(fake_api, tmp_path):
    from nla_variants.data.teachers.claude import GIVE_UP_AFTER, ClaudeTeacher

    fake_api.status = 503
    teacher = ClaudeTeacher(
        mode="sync", max_concurrency=1, max_retries=0, base_url=fake_api.url, cache_dir=tmp_path
    )
    try:
        out = teacher.explain([f"prefix number {i}" for i in range(3 * GIVE_UP_AFTER)])
    finally:
        teacher.close()
    assert out == [None] * (3 * GIVE_UP_AFTER) and teacher.unanswered == 3 * GIVE_UP_AFTER
    # GIVE_UP_AFTER failures in a row, and at most the one request already in flight then
    assert GIVE_UP_AFTER <= fake_api.paths.count("/v1/messages") <= GIVE_UP_AFTER + 1
    assert "503" in (teacher.last_error or "") and FAKE_KEY not in (teacher.last_error or "")


# -- 2. a .txt corpus file that is not UTF-8 ----------------------------------------------------


@pytest.fixture
def inputs(tmp_path, tiny_model_dir, monkeypatch, trial_config) -> Path:
    """A valid trial config (tiny model, files corpus) and its data section as prepare.yaml, in
    tmp_path, which is also the cwd."""
    monkeypatch.chdir(tmp_path)
    trial_config(tmp_path, tiny_model_dir)
    data = yaml.safe_load((tmp_path / "trial.yaml").read_text())
    (tmp_path / "prepare.yaml").write_text(yaml.safe_dump(data["data"]))
    return tmp_path


def test_a_txt_corpus_file_that_is_not_utf8(inputs, capsys):
    text = "Le café était fermé, alors nous avons marché jusqu'au port. " * 3
    (inputs / "latin1.txt").write_bytes(text.encode("latin-1"))
    data = yaml.safe_load((inputs / "prepare.yaml").read_text())
    data["corpus"]["paths"] += [str(inputs / "latin1.txt")]
    (inputs / "prepare.yaml").write_text(yaml.safe_dump(data))
    err = run_bad(["prepare", str(inputs / "prepare.yaml")], capsys, inputs)
    offset = text.encode("latin-1").index("é".encode("latin-1"))
    assert f"latin1.txt is not UTF-8 text (byte {offset})" in err and "save it as UTF-8" in err


# -- 3. report and objective metrics no trial produces ------------------------------------------


def _sweep(tmp: Path, base: Path, **top: Any) -> str:
    cfg = {
        "name": "metrics",
        "base": str(base),
        "space": {"train.av_sft.lr": {"low": 1e-4, "high": 1e-3, "log": True}},
        "n_trials": 1,
        "directory": str(tmp / "sweep"),
        **top,
    }
    (tmp / "sweep.yaml").write_text(yaml.safe_dump(cfg))
    return str(tmp / "sweep.yaml")


@pytest.mark.parametrize(
    ("top", "needles"),
    [
        (
            {"report": ["eval/roundtrip_fve", "eval/roundtrip_fev"]},
            [
                "report metric 'eval/roundtrip_fev' is not produced by any trial",
                "did you mean eval/roundtrip_fve",
            ],
        ),
        (  # RL is off in the base and in the space: no trial has RL figures
            {"objectives": [{"metric": "rl/wall_s", "direction": "minimize"}]},
            ["objective metric 'rl/wall_s' is not produced by any trial", "eval/roundtrip_fve"],
        ),
        (  # the dataset's teacher does not explain the eval split: no AR-on-teacher score
            {
                "trial": {"data": {"teacher": {"splits": ["av_sft", "ar_sft"]}}},
                "report": ["eval/ar_teacher_fve"],
            },
            ["report metric 'eval/ar_teacher_fve' is not produced by any trial"],
        ),
        (  # RL only in some trials: an RL figure cannot be every trial's objective
            {
                "space": {"train.rl.steps": {"choices": [0, 2]}},
                "objectives": [{"metric": "rl/steps", "direction": "maximize"}],
            },
            [
                "objective metric 'rl/steps' is not produced by every trial",
                "(not by one with train.rl.steps=0)",
            ],
        ),
    ],
)
def test_a_metric_no_trial_produces_is_refused_before_the_first_trial(inputs, capsys, top, needles):
    err = run_bad(["sweep", _sweep(inputs, inputs / "trial.yaml", **top)], capsys, inputs)
    for needle in needles:
        assert needle in err, err


def test_metrics_some_trial_produces_pass_the_check(inputs):
    from nla_variants.sweeps.metrics import check_sweep_metrics
    from nla_variants.sweeps.spec import load_sweep

    top = {
        "space": {"train.rl.steps": {"choices": [0, 2]}},
        "report": ["rl/wall_s", "eval/faithful_mean", "eval/faithful_in_quote", "trial/wall_s"],
        "objectives": [{"metric": "eval/roundtrip_fve"}, {"metric": "eval/contradict_mean"}],
        "pruner": {"kind": "none"},
    }
    check_sweep_metrics(load_sweep(_sweep(inputs, inputs / "trial.yaml", **top)))
    # the default report names eval/prompt_fve and eval/beats_prompt: columns such a sweep
    # (no teacher text on eval) leaves empty
    top = {"trial": {"data": {"teacher": {"splits": ["av_sft", "ar_sft"]}}}}
    check_sweep_metrics(load_sweep(_sweep(inputs, inputs / "trial.yaml", **top)))


# -- a finished sweep, run in its own directory with relative paths -----------------------------


@pytest.fixture(scope="module")
def finished_sweep(tmp_path_factory, tiny_model_dir, trial_config) -> Iterator[Path]:
    """One finished trial of a sweep run from its own directory (the returned one), whose runs,
    sweep directory and MLflow store are relative to it. The trial uses the optional stages
    (RL with evaluations, the AV's held-out check, the AR's ridge readout and AV text) so its
    metric names cover them."""
    import mlflow

    work = tmp_path_factory.mktemp("sweep-work")
    overrides = {
        "output_dir": "runs",
        "mlflow.tracking_uri": "sqlite:///mlflow.db",
        "train.rl.steps": 2,
        "train.rl.batch_size": 2,
        "train.rl.group_size": 2,
        "train.rl.eval_every": 1,
        "train.rl.eval_samples": 4,
        "train.rl.max_response_tokens": 8,
        "train.av_sft.eval_every": 2,
        "train.av_sft.eval_samples": 4,
        "train.av_sft.keep_best": True,
        "train.ar_sft.ridge": 1.0,
        "train.ar_sft.ridge_rows": 8,
        "train.ar_sft.av_text": 0.5,
        "train.ar_sft.av_text_rows": 4,
        "mlflow.log_checkpoints": False,
    }
    trial_config(work, tiny_model_dir, **overrides)
    sweep = {
        "name": "moved",
        "base": "trial.yaml",
        "space": {"train.rl.kl_coef": {"choices": [0.05]}},
        "n_trials": 1,
        "sampler": {"kind": "random", "seed": 0},
        "pruner": {"kind": "none"},
        "directory": "sweep",
    }
    (work / "sweep.yaml").write_text(yaml.safe_dump(sweep))
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(work)
        assert main(["sweep", "sweep.yaml", "-q"]) == 0
    mlflow.set_tracking_uri(f"sqlite:///{work / 'mlflow.db'}")  # not relative to later cwds
    yield work


def _study(sweep_dir: Path):
    import optuna

    return optuna.load_study(study_name="moved", storage=f"sqlite:///{sweep_dir / 'optuna.db'}")


def test_trial_metric_names_cover_every_metric_a_trial_reports(finished_sweep, monkeypatch):
    from nla_variants.sweeps.spec import load_sweep
    from nla_variants.training.experiment import metric_names

    monkeypatch.chdir(finished_sweep)
    sweep = load_sweep("sweep.yaml")
    (trial,) = _study(finished_sweep / "sweep").trials
    (reported,) = trial.user_attrs["seed_metrics"].values()
    names = set(metric_names(sweep.trial_config(trial.params)))
    assert set(reported) - names == set()
    for stage in ("rl/steps", "av_sft/val_nll_gap", "av_sft/best_nll_gap", "ar_sft/ridge_rows"):
        assert stage in reported, stage  # the optional stages did run
    assert {"ar_sft/av_text_rows", "eval/roundtrip_fve", "eval/faithful_mean"} <= set(reported)


# -- 4. a sweep directory read from another working directory -----------------------------------


def test_explain_and_export_a_sweep_from_another_directory(finished_sweep, tmp_path, monkeypatch):
    sweep_dir = finished_sweep / "sweep"
    best = yaml.safe_load((sweep_dir / "best.yaml").read_text())
    assert Path(best["output_dir"]) == finished_sweep / "runs"  # absolute
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "explained.jsonl"
    argv = ["explain", str(sweep_dir), "--text", "The cat sat on the", "--positions", "-1"]
    assert main([*argv, "--max-new-tokens", "8", "--out", str(out), "-q"]) == 0
    assert out.read_text().strip()
    assert main(["export", str(sweep_dir), str(tmp_path / "export"), "-q"]) == 0
    assert (tmp_path / "export" / "nla.yaml").is_file()


def test_an_older_best_yaml_with_a_relative_output_dir_still_reads(
    finished_sweep, tmp_path, monkeypatch
):
    from nla_variants.artifacts.loading import locate

    best = finished_sweep / "sweep" / "best.yaml"
    original = best.read_text()
    data = yaml.safe_load(original)
    data["output_dir"] = "runs"  # as a sweep wrote it before: relative to where it ran
    best.write_text(yaml.safe_dump(data))
    try:
        monkeypatch.chdir(tmp_path)
        ref = locate(finished_sweep / "sweep")
    finally:
        best.write_text(original)
    assert ref.path.parent == finished_sweep / "runs"


# -- 5. compare on a copied sweep directory -----------------------------------------------------


def test_compare_on_a_copied_sweep_creates_no_tracking_store(
    finished_sweep, tmp_path, monkeypatch, capsys, caplog
):
    import shutil

    import mlflow

    copy = tmp_path / "copy"
    shutil.copytree(finished_sweep / "sweep", copy)
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    caplog.set_level("WARNING")
    assert main(["compare", str(copy)]) == 0, capsys.readouterr().err
    assert list((tmp_path / "elsewhere").iterdir()) == []  # no stray mlflow.db
    assert (copy / "report" / "comparison.csv").is_file()  # the table, from the study on disk
    assert "trial" in capsys.readouterr().out
    warning = caplog.text
    assert "the report is in files only" in warning and "sqlite:///mlflow.db" in warning
    assert "--tracking-uri" in warning

    # with the store the sweep logged to, the report is logged to its parent run
    store = f"sqlite:///{finished_sweep / 'mlflow.db'}"
    assert main(["compare", str(copy), "--tracking-uri", store, "-q"]) == 0
    parent = yaml.safe_load((copy / "sweep.yaml").read_text())["parent_run_id"]
    logged = mlflow.MlflowClient(store).list_artifacts(parent, "compare")
    assert "compare/comparison.csv" in {a.path for a in logged}
    assert list((tmp_path / "elsewhere").iterdir()) == []


# -- 6. a trial config given where a sweep is expected -----------------------------------------


def test_compare_on_a_trial_config_says_it_is_not_a_sweep(inputs, capsys):
    err = run_bad(["compare", str(inputs / "trial.yaml")], capsys, inputs)
    assert "trial.yaml is a trial config, not a sweep config" in err
    assert "sweep directory" in err and "nla train" in err and "unknown key" not in err
    err = run_bad(["compare", str(inputs / "prepare.yaml")], capsys, inputs)
    assert "prepare.yaml is a prepare config, not a sweep config" in err
