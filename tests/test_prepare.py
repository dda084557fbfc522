"""`nla prepare` end to end on the tiny model: the store, cache hits, bad inputs, kill + resume."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from nla_variants.cli import main
from nla_variants.common.errors import NLAError
from nla_variants.config import PrepareConfig, load_config
from nla_variants.data.prepare import prepare
from nla_variants.data.store import StoredDataset
from nla_variants.data.teachers.predictions import prediction_line
from nla_variants.target import TargetModel
from nla_variants.variants.registry import BuildContext


def test_prepare_writes_a_complete_store_and_rerun_is_a_cache_hit(
    tmp_path, tiny_model_dir, write_config
):
    cfg = load_config(write_config(tmp_path, tiny_model_dir), PrepareConfig)
    first = prepare(cfg, progress=False)
    assert not first.cache_hit
    ds = StoredDataset.open(first.path)
    side = ds.sidecar
    assert side["d_model"] == 64 and side["layer"] == 2 and side["model"]["num_layers"] == 4
    assert side["corpus"]["documents"] == 24 and side["teacher"]["kind"] == "heuristic"
    assert side["counts"]["rows"] == 72 and side["counts"]["dropped"] == 0
    assert set(side["norms"]["all"]) >= {"mean", "std", "min", "max"}
    assert len(ds.shards) == 5

    table = ds.table()
    assert table.num_rows == 72
    assert table.schema.field("vector").type.list_size == 64
    rows = table.to_pylist()
    # documents never cross splits; explanations exist exactly on the teacher's splits
    split_of = {}
    for r in rows:
        assert split_of.setdefault(r["doc_id"], r["split"]) == r["split"]
        assert (r["explanation"] is not None) == (r["split"] in cfg.teacher.splits)
    # each vector is the residual at the prefix's last token
    target = TargetModel(str(tiny_model_dir), "fp32", "cpu")
    r = rows[5]
    ids = target.tokenize([r["prefix"]])[0]
    assert len(ids) == r["token_position"]
    again = target.residuals([ids], 2, [[len(ids) - 1]])[0][0]
    np.testing.assert_allclose(np.array(r["vector"], np.float32), again, atol=1e-4)
    # raw, not normalised
    assert not np.allclose(np.linalg.norm(ds.vectors(), axis=1), 1.0)

    second = prepare(cfg, progress=False)
    assert second.cache_hit and second.path == first.path

    # what a trial builds its variants with: the SFT vectors (av_sft then ar_sft), read once
    train = np.concatenate([ds.vectors("av_sft"), ds.vectors("ar_sft")])
    ctx = BuildContext.from_dataset(None, ds)
    assert (ctx.layer, ctx.d_model, ctx.data_norm) == (2, 64, side["norms"]["all"]["p50"])
    torch.testing.assert_close(ctx.data_mean, torch.from_numpy(train).mean(0), rtol=0, atol=0)
    torch.testing.assert_close(ctx.data_std, torch.from_numpy(train).std(0), rtol=0, atol=0)
    assert ds.training_vectors() is ds.training_vectors()


def test_address_changes_with_content_not_with_speed_settings(
    tmp_path, tiny_model_dir, write_config
):
    path = write_config(tmp_path, tiny_model_dir)
    base = prepare(load_config(path, PrepareConfig), progress=False).path
    faster = load_config(path, PrepareConfig, ["target.max_batch_tokens=1024"])
    assert prepare(faster, progress=False).cache_hit
    other = load_config(path, PrepareConfig, ["target.layer=3"])
    assert prepare(other, progress=False).path != base


def _run_cli(argv: list[str], capsys) -> tuple[int, str]:
    code = main(argv)
    return code, capsys.readouterr().err.strip()


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        (["target.lyer=2"], "target.lyer: unknown key"),
        (["target.layer=two"], "target.layer: Input should be a valid integer"),
        (["target.layer=4"], "target.layer 4 is outside 1..3"),
        (
            ["corpus.paths=[/no/such/corpus.jsonl]"],
            "corpus file /no/such/corpus.jsonl does not exist",
        ),
        (["teacher.kind=anthropic"], "ANTHROPIC_API_KEY"),
    ],
)
def test_cli_bad_input_is_one_line_exit_2_and_writes_nothing(
    tmp_path, tiny_model_dir, capsys, monkeypatch, overrides, match, write_config
):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    path = write_config(tmp_path, tiny_model_dir)
    argv = ["prepare", str(path), "-q"]
    for o in overrides:
        argv += ["--set", o]
    code, err = _run_cli(argv, capsys)
    assert code == 2
    assert err.startswith("nla: error: ") and match in err and "\n" not in err and "fix:" in err
    assert not (tmp_path / "datasets").exists()


def test_cli_prepare_prints_summary(tmp_path, tiny_model_dir, capsys, write_config):
    path = write_config(tmp_path, tiny_model_dir)
    assert main(["prepare", str(path), "-q"]) == 0
    assert "dataset built" in capsys.readouterr().out
    assert main(["prepare", str(path), "-q"]) == 0
    assert "cache hit" in capsys.readouterr().out


def _sorted_rows(directory: Path) -> list[dict]:
    table = pq.read_table(sorted(directory.glob("shard-*.parquet")))
    return sorted(table.to_pylist(), key=lambda r: r["example_id"])


@pytest.mark.integration
def test_kill_at_any_moment_then_resume_gives_exactly_the_uninterrupted_rows(
    tmp_path, tiny_model_dir, write_config
):
    """A real SIGKILL mid-run; the rerun ends with the same rows: none duplicated, none missing."""
    path = write_config(tmp_path, tiny_model_dir, n_docs=120, store={"shard_docs": 2})
    cmd = [sys.executable, "-m", "nla_variants.cli", "prepare", str(path), "-q"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    root = tmp_path / "datasets"

    victim = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    # no wall-clock deadline (a busy machine is slow, not wrong); pytest's timeout bounds a hang
    while victim.poll() is None and len(list(root.glob("*/shard-*.parquet"))) < 5:
        time.sleep(0.01)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    (directory,) = root.iterdir()
    done_before = len(list(directory.glob("shard-*.parquet")))
    assert not (directory / "dataset.yaml").exists(), "killed too late to test resumption"
    assert 5 <= done_before < 60

    resumed = subprocess.run(cmd[:-1], env=env, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming" in resumed.stderr
    assert not list(directory.glob(".*.tmp"))

    clean_cfg = path.read_text().replace(str(root), str(tmp_path / "clean"))
    (tmp_path / "clean.yaml").write_text(clean_cfg)
    clean = prepare(load_config(tmp_path / "clean.yaml", PrepareConfig), progress=False)
    got, want = _sorted_rows(directory), _sorted_rows(clean.path)
    assert len(got) == len(want) == 360
    assert len({r["example_id"] for r in got}) == 360
    for a, b in zip(got, want, strict=True):
        assert a["example_id"] == b["example_id"] and a["explanation"] == b["explanation"]
        np.testing.assert_array_equal(a["vector"], b["vector"])
    assert StoredDataset.open(directory).sidecar["counts"] == clean.sidecar["counts"]


def test_a_second_writer_fails_fast_or_waits_and_finds_the_finished_dataset(
    tmp_path, tiny_model_dir, write_config
):
    import fcntl
    import threading

    from nla_variants.common.errors import NLAError

    cfg = load_config(write_config(tmp_path, tiny_model_dir), PrepareConfig)
    first = prepare(cfg, progress=False)  # learn the directory, then make it incomplete again
    (first.path / "dataset.yaml").unlink()
    with open(first.path / ".lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(NLAError, match="another `nla prepare` is writing"):
            prepare(cfg, progress=False)
        result = {}
        waiter = threading.Thread(target=lambda: result.update(r=prepare(cfg, False, wait=True)))
        waiter.start()
        waiter.join(timeout=2)
        assert waiter.is_alive()  # blocked on the lock
        fcntl.flock(held, fcntl.LOCK_UN)
    waiter.join(timeout=120)
    assert result["r"].path == first.path and (first.path / "dataset.yaml").is_file()


def test_a_full_disk_is_one_line_and_a_rerun_keeps_every_finished_shard(
    tmp_path, tiny_model_dir, capsys, monkeypatch, write_config
):
    path = write_config(tmp_path, tiny_model_dir)  # 24 documents, 5 per shard: 5 shards
    real, calls = pq.write_table, []

    def write_table(table, where, *args, **kwargs):
        calls.append(where)
        if len(calls) == 3:  # the disk fills while the third shard is written
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(table, where, *args, **kwargs)

    monkeypatch.setattr(pq, "write_table", write_table)
    code, err = _run_cli(["prepare", str(path), "-q"], capsys)
    (directory,) = (tmp_path / "datasets").iterdir()
    assert code == 2 and "\n" not in err
    assert err.startswith(f"nla: error: no space left on the device while writing {directory}/")
    assert "shard-00002.parquet" in err and "rerun the same command" in err
    assert [p.name for p in sorted(directory.glob("shard-*"))] == [
        "shard-00000.parquet",
        "shard-00001.parquet",
    ]
    assert not list(directory.glob(".*.tmp")) and not (directory / "dataset.yaml").exists()

    monkeypatch.setattr(pq, "write_table", real)  # space freed
    assert main(["prepare", str(path), "-q"]) == 0
    clean = prepare(
        load_config(path, PrepareConfig, [f"store.root={tmp_path / 'clean'}"]), progress=False
    )
    got, want = _sorted_rows(directory), _sorted_rows(clean.path)
    assert len(got) == len(want) == 72
    for a, b in zip(got, want, strict=True):
        assert a["example_id"] == b["example_id"] and a["explanation"] == b["explanation"]
        np.testing.assert_array_equal(a["vector"], b["vector"])


def test_next_tokens_adds_the_models_own_guess_and_keeps_the_text_only_prompt(
    tmp_path, tiny_model_dir, write_config
):
    path = write_config(tmp_path, tiny_model_dir)
    plain = StoredDataset.open(prepare(load_config(path, PrepareConfig), progress=False).path)
    cfg = load_config(path, PrepareConfig, ["teacher.next_tokens=3"])
    ds = StoredDataset.open(prepare(cfg, progress=False).path)
    assert ds.path != plain.path and ds.sidecar["teacher"]["next_tokens"] == 3
    assert ds.has_column("prompt") and not plain.has_column("prompt")
    np.testing.assert_array_equal(ds.vectors(), plain.vectors())  # the same residuals
    target = TargetModel(str(tiny_model_dir), "fp32", "cpu")
    rows = ds.table().to_pylist()
    before = {r["example_id"]: r["explanation"] for r in plain.table().to_pylist()}
    explained = [r for r in rows if r["prompt"] is not None]
    assert len(explained) == sum(e is not None for e in before.values()) > 0
    for r in rows:
        assert r["prompt"] == before[r["example_id"]]  # the teacher's text, untouched
    checked = 0
    for r in explained[:12]:
        ids = target.tokenize([r["prefix"]])[0]
        with torch.inference_mode():
            logits = target.model(input_ids=torch.tensor([ids])).logits[0, -1]
        values, index = logits.topk(4)
        if (values[:-1] - values[1:]).min() < 1e-3:  # a near-tie: batched rounding may reorder
            continue
        top = [target.tokenizer.decode([t]) for t in index[:3].tolist()]
        assert r["explanation"] == f"{r['prompt']}\n{prediction_line(top)}"
        checked += 1
    assert checked >= 3, checked


def test_next_tokens_refuses_a_diff_dataset(tmp_path, tiny_model_dir, write_config):
    path = write_config(tmp_path, tiny_model_dir)
    with pytest.raises(NLAError, match="teacher.next_tokens reads one model"):
        load_config(path, PrepareConfig, ["teacher.next_tokens=3", f"target.diff_model={path}"])
