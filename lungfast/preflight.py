"""What `lungfast run` checks about an experiment before it reads any data or writes anything: every mistake
that can be found from the experiment alone stops the run with one line, before hours of training."""

from __future__ import annotations

import logging

from lungfast import protocols
from lungfast.config import ExperimentConfig
from lungfast.errors import LungfastError
from lungfast.train import backbones

log = logging.getLogger("lungfast")


def check(cfg: ExperimentConfig) -> None:
    check_backbones(cfg)
    check_weights(cfg)
    check_installed(cfg)


def check_installed(cfg: ExperimentConfig) -> None:
    """A protocol that imports an optional extra finds it installed, or the run stops before reading data."""
    import importlib.util

    for p in map(protocols.get, cfg.protocols):
        if p.needs and importlib.util.find_spec(p.needs[0]) is None:
            raise LungfastError(
                f"protocols: {p.name} needs {p.needs[0]}, which is not installed; pip install 'lungfast[{p.needs[1]}]' "
                f"(a checkout: make, which installs every extra)"
            )


def check_classes(cfg: ExperimentConfig, classes: list[str]) -> None:
    """benign_classes against the data set's classes, once they are known and before any training: a name given
    that is no class is an error; a pair that does not split the classes is said now, not after the runs."""
    from lungfast.config import ExperimentConfig as Defaults

    unknown = [c for c in cfg.benign_classes if c not in classes]
    if unknown and cfg.benign_classes != Defaults("", "", []).benign_classes:
        raise LungfastError(
            f"benign_classes: {', '.join(unknown)} is not a class of data_dir {cfg.data_dir} ({', '.join(classes)}); "
            f"name the benign class(es) among them, or benign_classes = [] for none"
        )
    if not 0 < len(set(cfg.benign_classes) & set(classes)) < len(classes):
        log.warning(
            "note: benign_classes (%s) does not split the classes (%s) into benign and cancer: cancer sensitivity and "
            "benign specificity will not be computed; set benign_classes = [...] to have them",
            ", ".join(cfg.benign_classes) or "none",
            ", ".join(classes),
        )


def check_backbones(cfg: ExperimentConfig) -> None:
    """Every backbone is a registry name or a feature ensemble of them, and an ensemble meets frozen protocols only."""
    trained = [p for p in cfg.protocols if not protocols.get(p).frozen]
    for b in backbones.check_names(cfg.backbones):
        if b.parts and trained:
            frozen = ", ".join(p for p in protocols.names() if protocols.get(p).frozen)
            raise LungfastError(
                f"backbones: {b.name} is a feature ensemble: it runs the frozen-embedding protocols ({frozen}), "
                f"not {trained[0]}; list its parts as backbones to fine-tune them, or set protocols to frozen ones"
            )


def check_weights(cfg: ExperimentConfig) -> None:
    """Every `weights.NAME = FILE` names a registry backbone that has pretrained weights, and a real weights file."""
    from lungfast.train import weights

    for name, path in cfg.weights.items():
        b = backbones.get(name)
        if not b.has_weights:
            raise LungfastError(
                f"weights.{name}: {name} always trains from scratch, so no weights file is loaded; "
                f"remove weights.{name}"
            )
        if cfg.pretrained and name in cfg.backbones:
            weights.check_file(name, path)
