"""`preflight(trial)`: the one entry point for everything a trial config can be checked for from
the config and the target's config.json alone. `nla train` runs it before any dataset or MLflow
run exists, and `nla sweep` runs it for every choice of its space before the first trial. It sits
in training because it reads the training strategy and the diffing spec as well as the target.
"""

from __future__ import annotations

from nla_variants.checks import check_device
from nla_variants.config import TrialConfig
from nla_variants.data.diffing import FINETUNE_SPEC_PREFIX
from nla_variants.target import check_layer, resolve_model
from nla_variants.training.strategy import check_strategy
from nla_variants.variants.registry import TargetDims


def preflight(cfg: TrialConfig) -> None:
    """Everything a trial config can be checked for from itself and the target's config.json
    (never its weights): devices, the training strategy, the extraction layer, a diffing
    model, and each variant's own limits (`ChecksTarget`: injection site, frozen blocks, AR
    depth, ...). `nla train` calls it before any dataset or MLflow run; a sweep for every
    choice of its space before the first trial."""
    check_device(cfg.train.device, "train.device")
    check_device(cfg.data.target.device, "data.target.device")
    check_strategy(cfg.train)
    target = cfg.data.target
    source = resolve_model(target.model, "data.target.model")
    check_layer(target.layer, source.num_layers, source.spec)
    if target.diff_model and not target.diff_model.startswith(FINETUNE_SPEC_PREFIX):
        resolve_model(target.diff_model, "data.target.diff_model")
    dims = TargetDims(source.num_layers, source.d_model, target.layer)
    cfg.av.check_target(dims)
    cfg.ar.check_target(dims)
