"""Every bad input is one line naming the problem and the fix, exit code 2, and nothing written:
undecodable files, non-object JSON lines, invalid `--set` values, unusable URLs and paths, NaN and
infinite numbers, missing checkpoints, unknown commands and options. Checked before any model,
dataset or MLflow run exists (the working directory is watched too)."""

from __future__ import annotations

import errno
import logging
from pathlib import Path

import pytest
import yaml

from nla_variants.checks import check_tracking_uri
from nla_variants.cli import main
from nla_variants.config import set_dotted
from nla_variants.errors import NLAError, one_line
from nla_variants.masking import MaskingFilter, mask, mask_tree

SECRET = "pw-7f3a91c2-do-not-log"


def files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*")}


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
