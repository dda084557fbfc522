"""Every bad input is one line naming the problem and the fix, exit code 2, and nothing written:
undecodable files, non-object JSON lines, invalid `--set` values, unusable URLs and paths, NaN and
infinite numbers, missing checkpoints, unknown commands and options. Checked before any model,
dataset or MLflow run exists (the working directory is watched too)."""

from __future__ import annotations

import errno
import logging
import re
import shutil
from pathlib import Path

import pytest
import torch
import yaml

from nla_variants.checks import check_tracking_uri, saved_tracking_uri
from nla_variants.cli import build_parser, main
from nla_variants.common.errors import NLAError, one_line
from nla_variants.common.masking import MaskingFilter, mask, mask_tree
from nla_variants.config import TrialConfig, set_dotted
from nla_variants.training.preflight import preflight
from nla_variants.variants.testing import tiny_trial_config

SECRET = "pw-7f3a91c2-do-not-log"


def files_under(*roots: Path) -> set[Path]:
    return {p for root in roots for p in root.rglob("*")}


def run_bad(argv: list[str], capsys, *roots: Path) -> str:
    """Run the CLI on bad input: exit 2, one line with a fix, nothing new under any of `roots`."""
    before = files_under(*roots)
    try:
        code = main(argv)
    except SystemExit as e:  # argparse's own errors
        code = e.code
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert err.startswith("nla: error: ") and "\n" not in err and "(fix: " in err, err
    assert files_under(*roots) == before, sorted(map(str, files_under(*roots) - before))
    return err


@pytest.fixture
def inputs(tmp_path, tiny_model_dir, monkeypatch, trial_config):
    """A valid trial config (tiny model, files corpus) in tmp_path, which is also the cwd."""

    monkeypatch.chdir(tmp_path)
    trial_config(tmp_path, tiny_model_dir)
    data = yaml.safe_load((tmp_path / "trial.yaml").read_text())
    (tmp_path / "prepare.yaml").write_text(yaml.safe_dump(data["data"]))
    return tmp_path


def write(tmp: Path, name: str, data: dict) -> str:
    (tmp / name).write_text(yaml.safe_dump(data))
    return str(tmp / name)


def edited(tmp: Path, source: str, name: str, key: str, value) -> str:
    data = yaml.safe_load((tmp / source).read_text())
    set_dotted(data, key, value)
    return write(tmp, name, data)


# -- files that cannot be read ------------------------------------------------------------------


def test_a_config_that_is_not_utf8(inputs, capsys):
    (inputs / "latin1.yaml").write_bytes("name: caf\xe9\n".encode("latin-1"))
    err = run_bad(["prepare", str(inputs / "latin1.yaml")], capsys, inputs)
    assert "is not UTF-8 text" in err


def test_a_sweep_base_that_is_not_utf8(inputs, capsys):
    (inputs / "base.yaml").write_bytes(b"name: \xff\xfe\n")
    sweep = write(inputs, "sweep.yaml", {"name": "s", "base": "base.yaml", "n_trials": 1})
    err = run_bad(["sweep", sweep], capsys, inputs)
    assert "sweep base config" in err and "is not UTF-8 text" in err


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (b'{"text": "caf\xe9 au lait and more words"}\n', "is not UTF-8 text"),
        (b'{"text": "fine"}\n42\n', "c.jsonl:2 is a JSON int, not an object"),
        (b'["a", "list"]\n', "c.jsonl:1 is a JSON list, not an object"),
    ],
)
def test_a_jsonl_corpus_that_is_not_utf8_or_not_objects(inputs, capsys, content, needle):
    (inputs / "c.jsonl").write_bytes(content)
    err = run_bad(["prepare", str(inputs / "prepare.yaml")], capsys, inputs)
    assert needle in err


def test_a_set_value_that_is_not_yaml(inputs, capsys):
    err = run_bad(
        ["prepare", str(inputs / "prepare.yaml"), "--set", "target.layer=[12"], capsys, inputs
    )
    assert "--set target.layer: '[12' is not a valid YAML value" in err


# -- values -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "override", "needle"),
    [
        ("prepare", "sampling.splits.eval=.nan", "sampling.splits.eval"),
        ("train", "train.av_sft.lr=.inf", "train.av_sft.lr"),
        ("train", "train.rl.kl_coef=.inf", "train.rl.kl_coef"),
        ("train", "train.rl.ar_lr=-.inf", "train.rl.ar_lr"),
    ],
)
def test_nan_and_infinity_are_refused(inputs, capsys, command, override, needle):
    config = inputs / ("prepare.yaml" if command == "prepare" else "trial.yaml")
    err = run_bad([command, str(config), "--set", override], capsys, inputs)
    assert needle in err and "finite" in err


# -- places and URLs, checked before any model, dataset or MLflow run ----------------------------


def test_paths_under_a_regular_file(inputs, capsys, tiny_model_dir):
    blocker = inputs / "a-file"
    blocker.write_text("not a directory")
    err = run_bad(
        ["prepare", edited(inputs, "prepare.yaml", "p.yaml", "store.root", f"{blocker}/ds")],
        capsys,
        inputs,
    )
    assert f"store.root {blocker}/ds cannot be created: {blocker} is not a directory" in err
    err = run_bad(
        ["train", edited(inputs, "trial.yaml", "t.yaml", "output_dir", f"{blocker}/runs")],
        capsys,
        inputs,
    )
    assert "output_dir" in err and "is not a directory" in err
    assert not (inputs / "datasets").exists()  # failed before the dataset was built
    finetune = {
        "model": str(tiny_model_dir),
        "corpus": {"source": "files", "paths": [str(inputs / "c.jsonl")], "min_chars": 50},
        "genre": None,
        "root": f"{blocker}/finetuned",
    }
    err = run_bad(["finetune", write(inputs, "f.yaml", finetune)], capsys, inputs)
    assert f"root {blocker}/finetuned cannot be created" in err


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ("mlflow.tracking_uri=bogus-scheme://x", "MLflow cannot track to a 'bogus-scheme' URI"),
        (f"mlflow.tracking_uri=bogus://nla:{SECRET}@db/x", "bogus://nla:***@db/x"),
        ("train.av_sft.resume_from=/no/ckpt", "train.av_sft.resume_from: /no/ckpt is not a"),
        ("train.rl.resume_from=/no/rl", "train.rl.resume_from: /no/rl is not a checkpoint"),
        (
            "mlflow.tracking_uri=postgresql://nla:${NLA_TEST_UNSET_PASSWORD}@db/x",
            "uses ${NLA_TEST_UNSET_PASSWORD}, which is not set",
        ),
    ],
)
def test_urls_and_checkpoints_fail_before_any_stage(inputs, capsys, override, needle):
    err = run_bad(["train", str(inputs / "trial.yaml"), "--set", override], capsys, inputs)
    assert needle in err and SECRET not in err
    assert not (inputs / "datasets").exists() and not (inputs / "mlflow.db").exists()


def test_a_sweep_with_a_bad_tracking_uri_creates_nothing(inputs, capsys):
    sweep = write(
        inputs,
        "sweep.yaml",
        {
            "name": "s",
            "base": "trial.yaml",
            "n_trials": 1,
            "space": {"train.rl.kl_coef": {"low": 0.01, "high": 0.1}},
            "mlflow": {"tracking_uri": f"bogus://nla:{SECRET}@db"},
        },
    )
    err = run_bad(["sweep", sweep], capsys, inputs)
    assert "cannot track" in err and SECRET not in err


def test_a_full_disk_outside_the_atomic_writers_is_one_line(inputs, capsys, monkeypatch):
    """MLflow, Lightning or sqlite may hit the full disk themselves: still one line."""
    from nla_variants.data import prepare

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(inputs / "mlflow.db"))

    monkeypatch.setattr(prepare, "prepare", full)
    err = run_bad(["prepare", str(inputs / "prepare.yaml")], capsys, inputs)
    assert f"no space left on the device while writing {inputs}/mlflow.db" in err


# -- the command line itself --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["prep", "x.yaml"], "invalid choice: 'prep'"),
        (["prepare", "x.yaml", "--layer", "3"], "--set KEY=VALUE"),
        ([], "required: COMMAND"),
    ],
)
def test_unknown_commands_and_options(inputs, capsys, argv, needle):
    err = run_bad(argv, capsys, inputs)
    assert needle in err


# -- masking ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "want"),
    [
        (f"postgresql+psycopg://nla:{SECRET}@db:5432/x", "postgresql+psycopg://nla:***@db:5432/x"),
        (f"http://u:{SECRET}@h:5000", "http://u:***@h:5000"),
        (f"see redis://:{SECRET}@h/0 now", "see redis://:***@h/0 now"),
        (f"postgresql://u:a@b/c{SECRET}@h/db", "postgresql://u:***@h/db"),  # '@' in password
        (f"https://h/api?x=1&access_token={SECRET}", "https://h/api?x=1&access_token=***"),
        ("postgresql://u:${PGPASSWORD}@h/db", "postgresql://u:${PGPASSWORD}@h/db"),
        ("sqlite:///a/b.db and http://u@h/p", "sqlite:///a/b.db and http://u@h/p"),
    ],
)
def test_mask_hides_url_passwords_and_secret_query_values(text, want):
    assert mask(text) == want


def test_every_error_and_log_path_masks(caplog):
    url = f"postgresql://nla:{SECRET}@db/x"
    assert SECRET not in one_line(RuntimeError(f"cannot connect to {url}"))
    assert mask_tree({"a": [url, {"b": url}], "n": 3}) == {
        "a": [mask(url), {"b": mask(url)}],
        "n": 3,
    }
    with pytest.raises(NLAError) as err:
        check_tracking_uri(f"nope://nla:{SECRET}@db")
    assert SECRET not in str(err.value)
    logger = logging.getLogger("test-masking")
    logger.addFilter(MaskingFilter())
    with caplog.at_level(logging.INFO, "test-masking"):
        logger.info("connecting to %s", url)
    assert SECRET not in caplog.text and "nla:***@db" in caplog.text


# -- devices, prompts and values the target's config.json rules out (issue 22, item 4) ----------

TEXT = "The harbor lights came on one by one, and the boats turned for home."
NO_DEVICE = "cuda:99"  # no machine here has a 100th GPU (and most have none)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, tiny_model_dir, trained_run) -> Path:
    """A finished tiny run, outside each test's watched directory."""
    return trained_run(tmp_path_factory.mktemp("bad-input-run"), tiny_model_dir)


@pytest.mark.parametrize(
    ("command", "override", "needle"),
    [
        ("prepare", "target.device=tpu9", "target.device: 'tpu9' is not a device"),
        ("train", "train.device=tpu9", "train.device: 'tpu9' is not a device"),
        ("train", "data.target.device=tpu9", "data.target.device: 'tpu9' is not a device"),
        ("prepare", f"target.device={NO_DEVICE}", f"target.device {NO_DEVICE}: this machine has"),
        ("train", f"train.device={NO_DEVICE}", f"train.device {NO_DEVICE}: this machine has"),
    ],
)
def test_a_device_this_machine_lacks_is_one_line_before_anything_loads(
    inputs, capsys, command, override, needle
):
    config = inputs / ("prepare.yaml" if command == "prepare" else "trial.yaml")
    err = run_bad([command, str(config), "--set", override], capsys, inputs)
    assert needle in err and "use cpu" in err


@pytest.mark.parametrize("command", ["explain", "evaluate"])
@pytest.mark.parametrize("device", ["tpu9", NO_DEVICE])
def test_a_device_flag_this_machine_lacks_is_one_line(inputs, capsys, run_dir, command, device):
    extra = ["--text", TEXT] if command == "explain" else []
    err = run_bad([command, str(run_dir), *extra, "--device", device], capsys, inputs, run_dir)
    assert err.startswith(f"nla: error: --device {device!r}" if device == "tpu9" else "nla: err")
    assert "is not a device" in err if device == "tpu9" else "this machine has" in err


def test_an_av_prompt_without_its_placeholder_is_refused_at_load(inputs, capsys):
    err = run_bad(
        ["train", str(inputs / "trial.yaml"), "--set", "av.prompt=Explain."], capsys, inputs
    )
    assert "av (baseline): prompt" in err and "{placeholder} exactly once" in err


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        (["av.injection.site=40"], "av.injection.site 40 is outside the target's 4 blocks"),
        (["av.injection.site=-2"], "injection.site: -2 is not a block"),
        (["av.injection.scale=-3"], "injection.scale: -3.0 must be positive"),
        (["av.frozen_blocks=30"], "av.frozen_blocks 30 leaves none of the target's 4 blocks"),
        (
            ["ar.variant=small", "ar.n_layers=25"],
            "ar.n_layers=25 is more than the extraction layer 2",
        ),
        (
            ["ar.variant=small", "ar.head=lowrank", "ar.head_rank=64"],
            "ar.head_rank=64 is not below d_model=64",
        ),
    ],
)
def test_values_the_target_rules_out_fail_before_any_dataset_or_run(
    inputs, capsys, overrides, needle
):
    """Known from the config and the target's config.json: refused before the dataset is built
    and before an MLflow run exists (they used to fail ~10 s in, or after the AV warm start)."""
    sets = [arg for o in overrides for arg in ("--set", o)]
    err = run_bad(["train", str(inputs / "trial.yaml"), *sets], capsys, inputs)
    assert needle in err
    assert not (inputs / "datasets").exists() and not (inputs / "mlflow.db").exists()


def test_preflight_is_the_one_check_of_a_trial_against_its_target(tmp_path, tiny_model_dir):
    """What `nla train` and sweeps call: each variant config's own check, the layer, devices."""
    good = tiny_trial_config(tmp_path, tiny_model_dir)
    preflight(TrialConfig.model_validate(good))
    for key, value, needle in [
        ("av.injection.site", 4, "av.injection.site 4"),
        ("data.target.layer", 4, "target.layer 4 is outside 1..3"),
        ("train.strategy", "fsdp", "train.strategy fsdp is not supported"),
    ]:
        bad = tiny_trial_config(tmp_path, tiny_model_dir, **{key: value})
        with pytest.raises(NLAError, match=re.escape(needle)):
            preflight(TrialConfig.model_validate(bad))


# -- sweeps: every choice is checked before the first trial ---------------------------------------


@pytest.mark.parametrize(
    ("space", "needle"),
    [
        (
            {"av.injection.site": {"choices": [1, 99]}},
            "search space av.injection.site=99: av.injection.site 99 is outside",
        ),
        (
            {"train.strategy": {"choices": ["auto", "fsdp"]}},
            "search space train.strategy='fsdp': train.strategy fsdp is not supported",
        ),
        (  # the bounds of a numeric range
            {"av.frozen_blocks": {"low": 0, "high": 8, "type": "int"}},
            "search space av.frozen_blocks=8: av.frozen_blocks 8 leaves none",
        ),
        (
            {"data.target.layer": {"choices": [2, 99]}},
            "search space data.target.layer=99: target.layer 99 is outside",
        ),
    ],
)
def test_a_sweep_choice_that_would_fail_every_trial_stops_the_sweep_first(
    tmp_path, tiny_model_dir, capsys, monkeypatch, sweep_yaml, space, needle
):
    monkeypatch.chdir(tmp_path)
    path = sweep_yaml(tmp_path, tiny_model_dir, space=space)
    err = run_bad(["sweep", str(path)], capsys, tmp_path)
    assert needle in err
    assert not (tmp_path / "sweep").exists() and not (tmp_path / "mlflow.db").exists()


def test_a_sweep_whose_base_the_target_rules_out_names_the_base(
    tmp_path, tiny_model_dir, capsys, monkeypatch, sweep_yaml, trial_config
):
    monkeypatch.chdir(tmp_path)
    path = sweep_yaml(tmp_path, tiny_model_dir)
    trial_config(tmp_path, tiny_model_dir, **{"av.frozen_blocks": 9})  # the sweep's base
    err = run_bad(["sweep", str(path)], capsys, tmp_path)
    assert "sweep base trial: av.frozen_blocks 9 leaves none" in err


# -- explain --log-to-run and the run's tracking URI ----------------------------------------------


def _copy_run(run_dir: Path, tmp: Path, tracking_uri: str) -> Path:
    """The run under `tmp` (same id) with its config.yaml recording `tracking_uri`."""
    copy = tmp / "runs" / run_dir.name
    shutil.copytree(run_dir, copy)
    cfg = yaml.safe_load((copy / "config.yaml").read_text())
    cfg["mlflow"]["tracking_uri"] = tracking_uri
    (copy / "config.yaml").write_text(yaml.safe_dump(cfg))
    return copy


@pytest.mark.parametrize(
    ("uri", "needle", "fix"),
    [
        (  # what a run trained with a literal password records: the password is gone
            "postgresql://nla:***@127.0.0.1:1/mlflow",
            "was written with its password masked",
            "write the password as ${VAR} in mlflow.tracking_uri",
        ),
        (
            "postgresql://nla:${NLA_TEST_UNSET_PASSWORD}@127.0.0.1:1/mlflow",
            "uses ${NLA_TEST_UNSET_PASSWORD}, which is not set",
            "export NLA_TEST_UNSET_PASSWORD",
        ),
    ],
)
def test_log_to_run_with_an_unusable_tracking_uri_fails_before_any_work(
    inputs, capsys, run_dir, monkeypatch, uri, needle, fix
):
    """It used to explain everything first and then fail to authenticate (a long traceback)."""
    monkeypatch.delenv("NLA_TEST_UNSET_PASSWORD", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    run = _copy_run(run_dir, inputs, uri)
    out = inputs / "out.jsonl"
    argv = ["explain", str(run), "--text", TEXT, "--out", str(out), "--log-to-run"]
    err = run_bad([*argv, "--device", "cpu", "-q"], capsys, inputs, run_dir)
    assert needle in err and f"(fix: {fix}" in err
    assert not out.exists()


def test_a_saved_uri_with_a_masked_password_is_usable_only_from_the_environment(monkeypatch):
    saved = mask(f"postgresql://nla:{SECRET}@db/x")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"postgresql://nla:{SECRET}@db/x")
    assert saved_tracking_uri(saved, "uri") == f"postgresql://nla:{SECRET}@db/x"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"postgresql://other:{SECRET}@db/x")
    with pytest.raises(NLAError, match="masked") as err:
        saved_tracking_uri(saved, "uri")
    assert SECRET not in str(err.value)
    monkeypatch.setenv("NLA_TEST_PASSWORD", SECRET)
    assert saved_tracking_uri("postgresql://nla:${NLA_TEST_PASSWORD}@db/x", "uri") == (
        f"postgresql://nla:{SECRET}@db/x"
    )


def test_log_to_run_reuses_a_tracking_uri_written_as_an_env_reference(
    inputs, capsys, run_dir, monkeypatch
):
    """A URI written with `${VAR}` is kept as written and expanded only where it is used."""
    monkeypatch.setenv("NLA_TEST_MLFLOW_DIR", str(run_dir.parent.parent))
    run = _copy_run(run_dir, inputs, "sqlite:///${NLA_TEST_MLFLOW_DIR}/mlflow.db")
    argv = ["explain", str(run), "--text", TEXT, "--positions", "0", "--log-to-run"]
    assert main([*argv, "--max-new-tokens", "8", "--device", "cpu", "-q"]) == 0
    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{run_dir.parent.parent}/mlflow.db")
    assert [Path(a.path).name for a in client.list_artifacts(run.name, "explain")] == [
        "explanations.jsonl"
    ]


# -- messages that name the right thing ------------------------------------------------------------


def test_a_missing_diff_model_is_named_as_such(inputs, capsys, run_dir):
    err = run_bad(
        ["explain", str(run_dir), "--text", TEXT, "--diff-model", str(inputs / "no-model")],
        capsys,
        inputs,
        run_dir,
    )
    assert f"--diff-model '{inputs / 'no-model'}' does not exist" in err
    assert "target.model" not in err
    config = edited(inputs, "prepare.yaml", "p.yaml", "target.diff_model", "/no/such/model")
    err = run_bad(["prepare", config], capsys, inputs)
    assert "target.diff_model '/no/such/model' does not exist" in err
    assert "target.model '" not in err


def test_a_config_path_that_is_a_directory_says_so(inputs, capsys):
    (inputs / "configs").mkdir()
    for command in ("prepare", "train", "finetune", "sweep"):
        err = run_bad([command, str(inputs / "configs")], capsys, inputs)
        assert f"{inputs / 'configs'} is a directory" in err and "YAML file" in err
    sweep = write(inputs, "sweep.yaml", {"name": "s", "base": "configs", "n_trials": 1})
    err = run_bad(["sweep", sweep], capsys, inputs)
    assert f"sweep base config {inputs / 'configs'} is a directory" in err


# -- every command has its bad input ----------------------------------------------------------------


def test_compare_of_something_that_is_no_sweep(inputs, capsys):
    err = run_bad(["compare", str(inputs / "no-sweep")], capsys, inputs)
    assert "no-sweep is neither a sweep config nor a sweep directory" in err


def test_export_refuses_contradicting_flags_before_loading(inputs, capsys, run_dir, monkeypatch):
    from nla_variants.artifacts import loading

    monkeypatch.setattr(loading, "load", lambda *a, **k: pytest.fail("weights were loaded"))
    out = inputs / "export"
    argv = ["export", str(run_dir), str(out), "--layout", "public", "--lora", "adapter"]
    err = run_bad(argv, capsys, inputs, run_dir)
    assert "--lora adapter with --layout public" in err and not out.exists()


def test_evaluate_with_too_few_samples(inputs, capsys, run_dir):
    err = run_bad(["evaluate", str(run_dir), "--samples", "1"], capsys, inputs, run_dir)
    assert "--samples 1 is below 2" in err


@pytest.mark.parametrize(
    ("flags", "needle"),
    [
        (["--query", "  "], "--query is empty"),
        (["--query", "code", "--k", "0"], "--k 0 is below 1"),
        (["--query", "code", "--split", "nope"], "--split nope is not a split"),
        (["--query", "code", "--no-vectors"], "holds no vectors"),
    ],
)
def test_search_bad_input(inputs, capsys, run_dir, flags, needle):
    import pyarrow.parquet as pq

    from nla_variants.training.runs import read_run_record

    dataset = Path(read_run_record(run_dir).dataset)
    if "--no-vectors" in flags:  # a copy of the dataset whose shards lost their vectors
        flags = [f for f in flags if f != "--no-vectors"]
        copy = inputs / "no-vectors"
        shutil.copytree(dataset, copy)
        for shard in copy.glob("*.parquet"):
            pq.write_table(pq.read_table(shard).drop_columns(["vector"]), shard)
        dataset = copy
    argv = ["search", str(run_dir), "--dataset", str(dataset), *flags]
    assert needle in run_bad(argv, capsys, inputs, run_dir)


@pytest.mark.parametrize(
    ("flags", "needle"),
    [
        (["--edit", "moon=>sun"], "'moon' is not in the AV's explanation"),
        (["--edit", "no arrow"], "has no '=>'"),
        (["--explanation", "x", "--position", "999"], "--position 999 is outside the text's"),
        (["--explanation", "x", "--zero"], "reconstruction of the edited explanation has zero"),
        (["--explanation", "x", "--new-tokens", "-1"], "--new-tokens -1 is below 0"),
    ],
)
def test_steer_bad_input(inputs, capsys, run_dir, monkeypatch, flags, needle):
    from nla_variants.core.text import wrap_explanation

    said = wrap_explanation("A story about a harbor")
    # by name: the module steer imports from, whatever another test did to sys.modules
    generate = lambda av, v, *a, **k: ([said] * len(v), [[0]])  # noqa: E731
    monkeypatch.setattr("nla_variants.evaluation.rollouts.generate_all", generate)
    if "--zero" in flags:
        flags = [f for f in flags if f != "--zero"]
        zero = lambda ar, texts, *a: torch.zeros(len(texts), 64)  # noqa: E731
        monkeypatch.setattr("nla_variants.evaluation.rollouts.ar_predict", zero)
    argv = ["steer", str(run_dir), "--text", "A harbor at night.", *flags]
    assert needle in run_bad(argv, capsys, inputs, run_dir)


@pytest.mark.parametrize(
    "flags, cases, needle",
    [
        ([], "", "has no cases"),
        ([], '{"prompt": "hi", "statement": "x"}', 'has both a "prompt" and a "statement"'),
        (["--max-new-tokens", "4"], '{"prompt": "hi"}', "--max-new-tokens must be at least 8"),
        (["--batch-size", "0"], '{"prompt": "hi"}', "must be at least 1"),
        (["--organism", "nowhere/organism.yaml"], '{"prompt": "hi"}', "nowhere/organism.yaml"),
        (
            ["--judge", "claude-x"],
            '{"prompt": "hi"}',
            "--judge claude-x needs the ANTHROPIC_API_KEY",
        ),
    ],
)
def test_audit_bad_input(tmp_path, capsys, monkeypatch, flags, cases, needle):
    """Checked before any model loads: the case file, the flags, the organism, the judge's key."""
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    path = tmp_path / "cases.jsonl"
    path.write_text(cases)
    out = tmp_path / "report"
    organism = [] if "--organism" in flags else ["--organism", "target"]
    argv = ["audit", str(tmp_path / "no-nla"), "--cases", str(path), "--out", str(out)]
    code = main([*argv, *organism, *flags, "--mlflow-experiment", ""])
    err = capsys.readouterr().err
    assert code == 2 and needle in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists()


# one bad-input test through `main([...])` per command (one line, exit 2, nothing written)
BAD_INPUT_TEST_OF = {
    "prepare": test_a_config_that_is_not_utf8,
    "train": test_values_the_target_rules_out_fail_before_any_dataset_or_run,
    "finetune": test_paths_under_a_regular_file,
    "sweep": test_a_sweep_choice_that_would_fail_every_trial_stops_the_sweep_first,
    "compare": test_compare_of_something_that_is_no_sweep,
    "explain": test_a_missing_diff_model_is_named_as_such,
    "evaluate": test_evaluate_with_too_few_samples,
    "export": test_export_refuses_contradicting_flags_before_loading,
    "search": test_search_bad_input,
    "steer": test_steer_bad_input,
    "audit": test_audit_bad_input,
}


def test_every_command_has_a_bad_input_test():
    """A new `nla` subcommand needs its bad-input test here (and an entry above)."""
    (sub,) = [a for a in build_parser()._actions if a.dest == "command"]
    assert set(sub.choices) == set(BAD_INPUT_TEST_OF)
