"""The composite names of rule inputs, built and parsed in one place.

Rules hand their scripts a mapping of named inputs; several rules need names made of parts (a view, a
fold, a model, a data set). The rules (``workflow/rules/*.smk``) build those names with the functions
below and the stage code parses them with the same module, so the two can never drift apart. Names of data
sets, models and views are refused by the config schema when they contain a double underscore
(``NAME_PATTERN``), the separator used here, so every composite name parses back unambiguously.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

SEPARATOR = "__"
#: data set, model and source names: letters, digits and single underscores, starting with a letter
NAME_PATTERN = r"[A-Za-z][A-Za-z0-9]*(?:_[A-Za-z0-9]+)*"
#: view names: the same, lower case
VIEW_PATTERN = r"[a-z][a-z0-9]*(?:_[a-z0-9]+)*"

_FEATURES = "features_"
_TARGET = "target" + SEPARATOR
_OMICS = "omics" + SEPARATOR
_FOLD = re.compile(rf"^fold(\d+){SEPARATOR}(.+)$")


def features(view: str) -> str:
    """A fold's preprocessed view: ``features_<view>``."""
    return _FEATURES + view


def views(paths: Mapping) -> dict[str, str]:
    """``{view: path}`` of the inputs named by ``features``."""
    return {key.removeprefix(_FEATURES): path for key, path in paths.items() if key.startswith(_FEATURES)}


def of_target(target: str, name: str) -> str:
    """A file of a cross-study target data set (``response``, ``cell_lines``, a view):
    ``target__<target>__<name>``."""
    return f"{_TARGET}{target}{SEPARATOR}{name}"


def target_inputs(paths: Mapping) -> dict[str, dict[str, str]]:
    """``{target: {name: path}}`` of the inputs named by ``of_target``."""
    found: dict[str, dict[str, str]] = {}
    for key, path in paths.items():
        if key.startswith(_TARGET):
            target, _, name = key.removeprefix(_TARGET).partition(SEPARATOR)
            found.setdefault(target, {})[name] = path
    return found


def omics(key: str) -> str:
    """A file of a data set's omics source (build rule): ``omics__<file key>``."""
    return _OMICS + key


def split_omics(paths: Mapping) -> tuple[dict, dict | None]:
    """The build rule's inputs as (the source's files, the omics source's files or None)."""
    files = {key: path for key, path in paths.items() if not key.startswith(_OMICS)}
    omics_files = {key.removeprefix(_OMICS): path for key, path in paths.items() if key.startswith(_OMICS)}
    return files, omics_files or None


def in_fold(fold: int, name: str) -> str:
    """An input of one outer fold in a rule over all folds: ``fold<k>__<name>`` (name may be any input name)."""
    return f"fold{int(fold)}{SEPARATOR}{name}"


def parse_in_fold(key: str) -> tuple[int, str] | None:
    """(fold, name) of a name built by ``in_fold``; None for an input shared by all folds."""
    match = _FOLD.match(key)
    return (int(match.group(1)), match.group(2)) if match else None


def of_fold(paths: Mapping, fold: int) -> dict:
    """The inputs of one fold, named as in a single-fold rule: ``fold<k>__<name>`` becomes ``<name>``; inputs
    without a fold keep their name (shared by all folds)."""
    shared, own = {}, {}
    for key, path in paths.items():
        parsed = parse_in_fold(key)
        if parsed is None:
            shared[key] = path
        elif parsed[0] == int(fold):
            own[parsed[1]] = path
    return {**shared, **own}


def study_pair(train: str, test: str) -> str:
    """A cross-study (trained on, tested on) pair: ``<train>__<test>``."""
    return f"{train}{SEPARATOR}{test}"


def parse_study_pair(key: str) -> tuple[str, str]:
    train, separator, test = key.partition(SEPARATOR)
    if not separator or not re.fullmatch(NAME_PATTERN, train) or not re.fullmatch(NAME_PATTERN, test):
        raise ValueError(f"{key!r} is not a cross-study pair name <train>{SEPARATOR}<test>")
    return train, test


def model_output(model: str, kind: str) -> str:
    """One of a model's outputs (``kind``: model, predictions, view_ablation, latent, ...): ``<model>__<kind>``;
    the kind is the part after the last separator, so the split is unambiguous."""
    return f"{model}{SEPARATOR}{kind}"


def model_fold_output(fold: int, model: str, kind: str) -> str:
    """A model's output of one fold in a rule over all folds: ``fold<k>__<model>__<kind>``."""
    return in_fold(fold, model_output(model, kind))


def model_outputs(paths: Mapping, kind: str) -> dict[str, dict[int, str]]:
    """``{model: {fold: path}}`` of the inputs named by ``model_fold_output`` with this ``kind``."""
    found: dict[str, dict[int, str]] = {}
    for key, path in paths.items():
        parsed = parse_in_fold(key)
        if parsed is None:
            continue
        model, separator, own_kind = parsed[1].rpartition(SEPARATOR)
        if separator and own_kind == kind:
            found.setdefault(model, {})[parsed[0]] = path
    return found
