"""Find and load a trained NLA from any of the places one lives.

`locate(path)` accepts
- a run directory (`.nla/runs/RUN_ID`): the final RL checkpoint when it was kept, else the
  run's warm starts (found through the run record, `nla_variants.training.runs`);
- a sweep (its directory or its config): the run of its best trial (first seed);
- an exported NLA (`nla export`, `nla.yaml`), or the public NLA release layout (directories
  with `nla_meta.yaml`, see `nla_variants.artifacts.public_layout`);
and checks what can be checked without weights. `load(ref)` then builds the AV and the AR.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from nla_variants.common.errors import NLAError, format_validation_error
from nla_variants.common.schema import (
    CheckpointSidecar,
    DatasetSidecar,
    ExportSidecar,
    ReleaseSidecar,
    RunRecord,
)
from nla_variants.common.tracking import tracking_store_exists
from nla_variants.config import (
    MLflowConfig,
    PrepareConfig,
    read_yaml_mapping,
)
from nla_variants.target import resolve_model
from nla_variants.training.checkpoint import SIDECAR, load_component
from nla_variants.training.runs import read_run_record
from nla_variants.variants.pair import NLA, NLARef
from nla_variants.variants.registry import BuildContext

log = logging.getLogger(__name__)

WHAT = "a run directory (.nla/runs/RUN_ID), a sweep directory or config, or an exported NLA"
EXPORT_SIDECAR = ExportSidecar.FILE
PUBLIC_SIDECAR = ReleaseSidecar.FILE


def locate(path: str | Path, target: str | None = None) -> NLARef:
    """Where the NLA at `path` is and what it reads; `target` overrides the recorded target
    model (e.g. a local copy of a public NLA's base model)."""
    p = Path(path)
    if not p.exists():
        raise NLAError(f"NLA {path} does not exist", f"pass {WHAT}")
    if p.is_dir() and (p / EXPORT_SIDECAR).is_file():
        from nla_variants.artifacts.export import locate_export

        ref = locate_export(p)
    elif p.is_dir() and _is_public(p):
        from nla_variants.artifacts.public_layout import locate_public

        ref = locate_public(p)
    elif p.is_dir() and (p / "config.yaml").is_file():
        ref = locate_run(p)
    elif _is_sweep(p):
        ref = locate_run(_best_run_dir(p))
    else:
        raise NLAError(f"{path} is not an NLA", f"pass {WHAT}")
    if target is not None:
        ref = _with_target(ref, target)
    return ref


def load(ref: NLARef, device: torch.device | str = "cpu") -> NLA:
    """Build the AV and the AR of a located NLA (eval mode, on `device`)."""
    if ref.kind == "export":
        from nla_variants.artifacts.export import load_export

        nla = load_export(ref)
    elif ref.kind == "public":
        from nla_variants.artifacts.public_layout import load_public

        nla = load_public(ref)
    else:
        nla = load_run(ref)
    nla.av.to(device).eval()
    if nla.ar is not None:
        nla.ar.to(device).eval()
    return nla


def _with_target(ref: NLARef, target: str) -> NLARef:
    from dataclasses import replace

    source = resolve_model(target)
    if ref.target_fingerprint and source.fingerprint != ref.target_fingerprint:
        raise NLAError(
            f"--target {target} is not the model this NLA was trained on ({ref.target})",
            "leave out --target, or pass a copy of that same model",
        )
    return replace(ref, target=target)


def _is_public(p: Path) -> bool:
    return (p / PUBLIC_SIDECAR).is_file() or any(
        (c / PUBLIC_SIDECAR).is_file() for c in p.iterdir() if c.is_dir()
    )


def _is_sweep(p: Path) -> bool:
    from nla_variants.sweeps.runner import STATE_FILE

    if p.is_dir():
        return (p / STATE_FILE).is_file()
    if p.suffix in (".yaml", ".yml"):
        return "space" in read_yaml_mapping(p, "sweep config")
    return False


def _best_run_dir(sweep: Path) -> Path:
    """The run directory of the sweep's best trial (its first seed's run)."""
    from nla_variants.sweeps.report import open_sweep
    from nla_variants.sweeps.runner import best_trial

    study, sweep_dir, _ = open_sweep(str(sweep))
    top = best_trial(study)
    if top is None:
        raise NLAError(f"sweep {sweep} has no finished trial yet", "let `nla sweep` finish one")
    run_ids = list(top.user_attrs.get("mlflow_run_ids", []))[1:]  # [0] is the trial's parent
    best = sweep_dir / "best.yaml"
    if not run_ids or not best.is_file():
        raise NLAError(
            f"sweep {sweep}: trial {top.number} left no run to read", "rerun `nla sweep`"
        )
    output_dir = Path(read_yaml_mapping(best, "best config").get("output_dir", ".nla/runs"))
    run_dir = output_dir.expanduser() / run_ids[0]
    if not run_dir.is_absolute() and not run_dir.is_dir():
        # an older best.yaml: output_dir relative to where the sweep ran, which is usually a
        # directory above the sweep's own (.nla/sweeps/NAME)
        found = (base / run_dir for base in sweep_dir.resolve().parents)
        run_dir = next((d for d in found if d.is_dir()), run_dir)
    if not run_dir.is_dir():
        raise NLAError(
            f"sweep {sweep}: the run of its best trial ({run_dir}) is not there",
            "run this from the directory the sweep ran in, or copy that run directory there",
        )
    log.info("sweep %s: best trial %d, run %s", study.study_name, top.number, run_ids[0])
    return run_dir


# -- runs ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunConfig:
    """What reading a run needs from its config.yaml. Only the data and MLflow sections are
    validated, so a run written by an earlier or later nla_variants, whose training keys differ,
    still reads; the rest is kept as written (the model card's recipe)."""

    data: PrepareConfig
    mlflow: MLflowConfig
    raw: dict[str, Any]

    @property
    def rl_steps(self) -> int:
        rl = (self.raw.get("train") or {}).get("rl") or {}
        return int(rl.get("steps") or 0) if isinstance(rl, dict) else 0


def _run_config(run_dir: Path) -> RunConfig:
    from pydantic import ValidationError

    raw = read_yaml_mapping(run_dir / "config.yaml", "run config")
    try:
        data = PrepareConfig.model_validate(raw.get("data") or {})
        tracking = MLflowConfig.model_validate(raw.get("mlflow") or {})
    except ValidationError as e:
        raise NLAError(
            f"{run_dir}/config.yaml is not a trial config ({format_validation_error(e)})",
            f"pass {WHAT}",
        ) from None
    return RunConfig(data, tracking, raw)


def _finished(directory: Path | None) -> bool:
    return directory is not None and (directory / SIDECAR).is_file()


def _cache_tags(run_id: str, cfg: RunConfig) -> dict[str, Path]:
    """Warm starts of a run written before run records existed: its MLflow cache tags."""
    import os

    import mlflow

    uri = os.path.expandvars(cfg.mlflow.tracking_uri or "") or mlflow.get_tracking_uri()
    try:
        if not tracking_store_exists(uri):
            return {}
        tags = mlflow.MlflowClient(uri).get_run(run_id).data.tags
    except Exception:  # no store, no run: nothing recorded there
        return {}
    found = {}
    for kind, split in (("av", "av_sft"), ("ar", "ar_sft")):
        value = tags.get(f"{split}.cache", "")
        if value.startswith(("hit ", "stored ")):
            found[f"{kind}_checkpoint"] = Path(value.split(" ", 1)[1])
    return found


def run_checkpoints(run_dir: Path, cfg: RunConfig) -> tuple[Path, Path, str]:
    """(AV dir, AR dir, which weights) of a run: after RL if kept, else the warm starts."""
    record = read_run_record(run_dir) or RunRecord()
    found = {k: Path(v) for k, v in record.checkpoints.items()}
    rl = found.get("rl_checkpoint", run_dir / "rl_checkpoint")
    if _finished(rl / "av") and _finished(rl / "ar"):
        return rl / "av", rl / "ar", "after RL"
    for kind in ("av", "ar"):
        found.setdefault(f"{kind}_checkpoint", run_dir / f"{kind}_checkpoint")
    if not all(_finished(found[f"{k}_checkpoint"]) for k in ("av", "ar")):
        found.update(_cache_tags(run_dir.name, cfg))
    av, ar = found["av_checkpoint"], found["ar_checkpoint"]
    if not (_finished(av) and _finished(ar)):
        raise NLAError(
            f"run {run_dir} has no finished warm start (no AV and AR checkpoints)",
            "let `nla train` finish the warm start, or pass another run",
        )
    rl_steps = cfg.rl_steps
    return av, ar, "warm start" + (" (the RL weights were not kept)" if rl_steps else "")


def _dataset_adds_bos(run_dir: Path) -> bool:
    """Whether the run's activations were taken with BOS first (its dataset says; a dataset
    from before the BOS rule, or one that is gone, was not)."""
    dataset = (read_run_record(run_dir) or RunRecord()).dataset
    if not dataset or not (Path(dataset) / DatasetSidecar.FILE).is_file():
        return False
    return DatasetSidecar.read(dataset).add_bos


def locate_run(run_dir: Path) -> NLARef:
    if not (run_dir / "config.yaml").is_file():
        raise NLAError(f"{run_dir} is not a run directory (no config.yaml)", f"pass {WHAT}")
    cfg = _run_config(run_dir)
    av, ar, weights = run_checkpoints(run_dir, cfg)
    target = cfg.data.target
    return NLARef(
        "run",
        run_dir,
        target.model,
        target.layer,
        diff_model=target.diff_model,
        add_bos=_dataset_adds_bos(run_dir),
        target_fingerprint=CheckpointSidecar.read(av).model_fingerprint,
        detail={"config": cfg, "av": av, "ar": ar, "weights": weights},
    )


def _provenance(path: Path) -> dict[str, Any]:
    """What the model card says about the dataset, from its sidecar alone."""
    keep = ("name", "model", "layer", "vectors", "corpus", "sampling", "teacher", "splits")
    return DatasetSidecar.read(path).as_written(*keep)


def load_run(ref: NLARef) -> NLA:
    from nla_variants.data.store import StoredDataset

    cfg: RunConfig = ref.detail["config"]
    source = resolve_model(ref.target)
    ctx = BuildContext(source, ref.layer, source.d_model)
    av, _ = load_component(ref.detail["av"], ctx)
    ar, _ = load_component(ref.detail["ar"], ctx)
    record = read_run_record(ref.path) or RunRecord()
    dataset = Path(record.dataset) if record.dataset else None
    if dataset is None or not (dataset / DatasetSidecar.FILE).is_file():
        log.warning("the run's dataset is gone: scores are cosines only (no FVE)")
        dataset = None
    return NLA(
        av,
        ar,
        ref,
        # the FVE baseline, read only when a score needs it
        mean=(lambda: StoredDataset.open(dataset).training_mean()) if dataset else None,
        teacher={**cfg.data.teacher.model_dump(mode="json"), "seed": cfg.data.seed},
        metrics=dict(record.metrics),
        data=_provenance(dataset) if dataset else {},
        note=ref.detail["weights"],
    )
