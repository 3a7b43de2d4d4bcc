"""Sample sets: a folder of omics files of new samples (cell lines, organoids, tumours) without responses,
to be predicted by final models.

The format is a plug-in data set's (drp.sources.folder), without the response table:
- one file per omics view: ``<view>.csv`` / ``<view>.tsv`` (one row per sample, its id in the first column,
  one column per feature) or ``<view>.h5ad`` (obs_names = samples); ``files: {<view>: <file name>}`` names
  other files.
- optional annotations: ``samples.csv`` / ``.tsv`` (column ``sample``, optionally ``tissue``, any other
  annotation column kept) or ``cell_lines.csv`` / ``.tsv`` (column ``cell_line``), so that a plug-in data
  set folder is a sample set as it is (its ``response.csv`` and ``drugs.csv`` are ignored);
  ``files: {annotations: <file name>}`` names another file (its id column ``sample`` or ``cell_line``).
Every problem raises ``SampleSetError`` naming the file, the line, column or key, and what was expected;
the readers and their checks are folder.py's.

``transform_samples`` puts the raw views on a trained model's scale with the transform fitted on the
model's training cell lines (drp.features.apply_fitted_view): nothing is ever fitted on the samples, so a
sample's values do not depend on which other samples come with it.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd

from .dataset import UNKNOWN_TISSUE
from .features import apply_fitted_view
from .io import sha256sum
from .sources.folder import TABLE_SUFFIXES, DatasetFormatError, _examples, read_cell_lines, read_view, resolve_files

log = logging.getLogger(__name__)

ANNOTATION_TABLES = ("samples", "cell_lines")  # looked up by name; files.annotations names any other file
ID_COLUMNS = {"samples": ("sample", "cell_line"), "cell_lines": ("cell_line", "sample")}
IGNORED_TABLES = ("response", "drugs")  # a plug-in data set's tables, when its folder is used as a sample set
MISSING_FEATURES = ("refuse", "training_mean")


class SampleSetError(DatasetFormatError):
    """A sample-set file breaks the format, or does not fit the model; the message names the file, the line,
    column or key, and what was expected."""


@contextmanager
def _sample_set_errors():
    """folder.py's format errors, raised as SampleSetError with the same message."""
    try:
        yield
    except SampleSetError:
        raise
    except DatasetFormatError as error:
        raise SampleSetError(str(error)) from None


# ---------------------------------------------------------------------------------------------- files


def resolve_sample_files(spec: dict) -> dict[str, Path]:
    """The sample set's files: each view, and ``annotations`` when present.

    ``spec``: ``{"folder": str, "views": [...], "files": {...} optional}``; the rules and messages are
    drp.sources.folder.resolve_files', with ``samples`` / ``cell_lines`` as the optional tables.
    """
    folder = Path(spec["folder"])
    if not folder.is_dir():
        raise SampleSetError(f"{folder}: the sample set folder does not exist; expected a folder with one file per "
                             "view (<view>.csv, .tsv or .h5ad) and optionally samples.csv (relative to the working "
                             "directory)")
    views = list(spec.get("views") or [])
    if not views:
        raise SampleSetError(f"{folder}: no views given for the sample set; expected the model's views, e.g. "
                             "views: [expression]")
    reserved = [view for view in views if view in (*ANNOTATION_TABLES, "annotations", *IGNORED_TABLES)]
    if reserved:
        raise SampleSetError(f"{folder}: view name{'s' if len(reserved) > 1 else ''} {_examples(reserved)}: reserved "
                             "for tables of the folder; expected other view names")
    named = dict(spec.get("files") or {})
    given = [key for key in ("annotations", *ANNOTATION_TABLES) if key in named]
    if len(given) > 1:
        raise SampleSetError(f"{folder}: {' and '.join(f'files.{key}' for key in given)} each name an annotation "
                             f"file ({', '.join(repr(named[key]) for key in given)}); expected one")
    tables = ("annotations",) if "annotations" in given else ANNOTATION_TABLES
    with _sample_set_errors():
        found = resolve_files({**spec, "files": named}, tables=tables, required=(), label="sample set")
    candidates = [found.pop(table) for table in tables if table in found]
    if len(candidates) > 1:
        raise SampleSetError(f"{folder}: both {' and '.join(path.name for path in candidates)} exist; expected one "
                             "annotation file (remove one, or name the one to use under files.annotations)")
    if candidates:
        found["annotations"] = candidates[0]
    ignored = sorted(path.name for path in folder.iterdir()
                     if path.stem.lower() in IGNORED_TABLES and path.suffix.lower() in TABLE_SUFFIXES)
    if ignored:
        log.info("%s: %s ignored: a sample set is read for its views and annotations only (a plug-in data set "
                 "folder used as a sample set)", folder, ", ".join(ignored))
    return found


# ---------------------------------------------------------------------------------------------- read


def read_sample_set(spec: dict, files: dict | None = None) -> tuple[dict[str, ad.AnnData], pd.Series, dict]:
    """(views, tissue, provenance) of a sample set; ``files`` as ``resolve_sample_files(spec)`` gives them.

    views: view -> AnnData (obs_names = sample ids, sorted, the same in every view; var_names = features;
    float64 X with the values of the file; obs ``tissue`` and the annotation columns). Only samples with a
    row in every view are kept; the others are counted (warning, ``provenance["samples_without_view"]``).
    tissue: sample -> tissue, ``unknown`` where the annotations give none. provenance: folder, files
    (name, sha256), n_samples, samples_without_view, samples_without_tissue, annotations_without_sample.
    Without ``spec["views"]``, the views are the keys of ``files`` other than ``annotations``.
    """
    files = resolve_sample_files(spec) if files is None else {key: Path(path) for key, path in files.items()}
    views = list(spec.get("views") or [key for key in files if key != "annotations"])
    absent = [view for view in views if view not in files]
    if absent:
        raise SampleSetError(f"{spec['folder']}: no file for the view{'s' if len(absent) > 1 else ''} "
                             f"{_examples(absent)}; expected a file for every view (resolve_sample_files)")
    with _sample_set_errors():
        annotations = None
        if "annotations" in files:
            path = files["annotations"]
            annotations = read_cell_lines(path, ID_COLUMNS.get(path.stem.lower(), ID_COLUMNS["samples"]))
            annotations.index = annotations.index.rename("sample")
        raw = {view: read_view(files[view], unit="sample") for view in views}

    provenance = {"folder": str(Path(spec["folder"]).resolve()),
                  "files": {key: {"name": path.name, "sha256": sha256sum(path)} for key, path in files.items()}}
    samples = _in_every_view(raw, annotations, files, provenance)

    obs = pd.DataFrame(index=pd.Index(samples, name="sample"))
    tissue = pd.Series(UNKNOWN_TISSUE, index=obs.index, name="tissue", dtype=object)
    if annotations is not None:
        _warn_unmatched_annotations(annotations, raw, files, provenance)
        obs = obs.join(annotations.drop(columns=["tissue", "line"], errors="ignore")).fillna("")
        if "tissue" in annotations:
            given = annotations["tissue"][annotations["tissue"] != ""]
            tissue = given.reindex(obs.index).fillna(UNKNOWN_TISSUE).astype(object).rename("tissue")
    else:
        provenance["annotations_without_sample"] = 0
    obs.insert(0, "tissue", tissue.to_numpy())
    provenance["n_samples"] = len(samples)
    provenance["samples_without_tissue"] = int((tissue == UNKNOWN_TISSUE).sum())

    out = {}
    for view, (matrix, ids, features) in raw.items():
        out[view] = ad.AnnData(X=np.ascontiguousarray(matrix[ids.get_indexer(samples)], dtype=np.float64),
                               obs=obs.copy(), var=pd.DataFrame(index=pd.Index(features, name="feature")))
    log.info("read the sample set in %s: %d samples, features %s", spec["folder"], len(samples),
             {view: int(adata.n_vars) for view, adata in out.items()})
    return out, tissue, provenance


def _in_every_view(raw: dict, annotations: pd.DataFrame | None, files: dict, provenance: dict) -> list[str]:
    """The samples (sorted) with a row in every view. A view given transposed (the samples of the other views
    or of the annotations as its columns), or sharing no sample with the other views, is an error."""
    ids = {view: set(index) for view, (_, index, _) in raw.items()}
    columns = {view: set(features) for view, (_, _, features) in raw.items()}
    annotated = set(annotations.index) if annotations is not None else set()

    def others(view):
        sources = [(files[other].name, ids[other]) for other in raw if other != view]
        return sources + ([(files["annotations"].name, annotated)] if annotations is not None else [])

    transposed = [view for view in raw
                  if not ids[view] & set().union(*(s for _, s in others(view)))
                  and columns[view] & set().union(*(s for _, s in others(view)))]
    if len(transposed) == 1 or (transposed and annotations is not None):
        view = transposed[0]
        name, found = next((name, found) for name, found in others(view) if found & columns[view])
        raise SampleSetError(f"{files[view]}: the samples of {name} are its columns, e.g. "
                             f"{_examples(sorted(found & columns[view])[:3])}; expected one row per sample, its id "
                             "in the first column (transpose the table)")
    if transposed:
        first, second = transposed[:2]
        raise SampleSetError(f"{files[first]} and {files[second]}: no sample in common, and the row ids of each are "
                             f"columns of the other (e.g. {_examples(sorted(columns[first] & ids[second])[:3])}); "
                             "expected one row per sample in every view: one of them is given transposed (samples "
                             "as columns); transpose it (an annotation file, samples.csv, tells which)")
    for view in raw:
        rest = [other for other in raw if other != view]
        if rest and not ids[view] & set().union(*(ids[other] for other in rest)):
            shown = "; ".join(f"{files[other].name} e.g. {_examples(sorted(ids[other])[:3])}" for other in rest)
            raise SampleSetError(f"{files[view]}: no sample in common with {', '.join(files[o].name for o in rest)}; "
                                 f"expected the same sample ids in every view (the view has e.g. "
                                 f"{_examples(sorted(ids[view])[:3])}; {shown})")

    every = set().union(*ids.values())
    keep = every.intersection(*ids.values())
    if not keep:
        raise SampleSetError(f"{Path(files[next(iter(raw))]).parent}: no sample has a row in every view "
                             f"({', '.join(files[view].name for view in raw)}); expected at least one sample in all "
                             "of them")
    provenance["samples_without_view"] = {}
    for view in raw:
        without = every - ids[view]
        provenance["samples_without_view"][view] = len(without)
        if without:
            log.warning("%s: %d of the %d samples of the sample set have no row in it and are dropped, e.g. %s",
                        files[view], len(without), len(every), _examples(sorted(without)))
    return sorted(keep)


def _warn_unmatched_annotations(annotations: pd.DataFrame, raw: dict, files: dict, provenance: dict) -> None:
    every = set().union(*(set(index) for _, index, _ in raw.values()))
    unmatched = annotations[~annotations.index.isin(every)]
    provenance["annotations_without_sample"] = len(unmatched)
    if len(unmatched):
        log.warning("%s: %d of the %d annotated ids match no sample of the views and are ignored, e.g. %s (%s)",
                    files["annotations"], len(unmatched), len(annotations), _examples(unmatched.index),
                    ", ".join(f"line {line}" for line in unmatched["line"][:3]))


# ---------------------------------------------------------------------------------------------- transform


def transform_samples(views: dict[str, ad.AnnData], fitted: dict[str, ad.AnnData], missing: str = "refuse",
                      max_missing_fraction: float = 0.2, source: dict[str, Path] | None = None,
                      ) -> tuple[dict[str, ad.AnnData], pd.DataFrame]:
    """The raw sample views on a trained model's scale, with the transform fitted on its training cell lines.

    ``fitted[view]``: the model's preprocessed view (``var``: ``train_mean``, ``train_std``; ``uns["clip"]``).
    Trained features the samples lack: ``missing="refuse"`` is an error; ``"training_mean"`` gives them the
    training mean (0 after scaling) unless more than ``max_missing_fraction`` of the view's features are
    missing. Features the model was not trained on are ignored. ``source``: the view files, for messages.
    Returns the views (obs ``in_training`` False and ``tissue``) and a report: view, features_used,
    features_missing, features_imputed, samples.
    """
    if missing not in MISSING_FEATURES:
        raise SampleSetError(f"missing_features: {missing!r}; expected one of {', '.join(MISSING_FEATURES)}")
    if not 0 <= max_missing_fraction <= 1:
        raise SampleSetError(f"max_missing_fraction: {max_missing_fraction!r}; expected a fraction between 0 and 1")
    source = source or {}
    absent = [view for view in fitted if view not in views]
    if absent:
        raise SampleSetError(f"the sample set has no view {_examples(absent)}; expected a file for every view the "
                             f"model was trained on ({', '.join(fitted)})")
    out, rows = {}, []
    for view, model in fitted.items():
        for column in ("train_mean", "train_std"):
            if column not in model.var:
                raise ValueError(f"the fitted view {view!r} has no var[{column!r}]; expected a view preprocessed by "
                                 "drp.features.fit_transform_view")
        where = str(source[view]) if view in source else f"view {view!r}"
        samples = views[view]
        trained = model.var_names
        lacking = trained[~trained.isin(samples.var_names)]
        if len(lacking) and missing == "refuse":
            raise SampleSetError(
                f"{where}: the samples lack {len(lacking)} of the {len(trained)} features the model was trained on "
                f"for the view {view!r}: {_examples(lacking)}; expected every trained feature (add them to the file, "
                "or set missing_features: training_mean to give the missing ones the training mean, i.e. 0 after "
                f"scaling, when at most {max_missing_fraction:.0%} of a view's features are missing)")
        if len(lacking) / len(trained) > max_missing_fraction:
            raise SampleSetError(
                f"{where}: the samples lack {len(lacking)} of the {len(trained)} features "
                f"({len(lacking) / len(trained):.0%}) the model was trained on for the view {view!r}: "
                f"{_examples(lacking)}; expected at most {max_missing_fraction:.0%} missing (max_missing_fraction) "
                "for missing_features: training_mean: add the features to the file")
        extra = samples.n_vars - int(samples.var_names.isin(trained).sum())
        if extra:
            log.info("%s: %d features the model was not trained on are ignored", where, extra)
        if len(lacking):
            log.warning("%s: %d of the %d trained features are missing; they take the training mean "
                        "(missing_features: training_mean), e.g. %s", where, len(lacking), len(trained),
                        _examples(lacking))
            X = np.tile(model.var["train_mean"].to_numpy(dtype=np.float64), (samples.n_obs, 1))
            present = ~trained.isin(lacking)
            X[:, present] = np.asarray(samples[:, trained[present]].X, dtype=np.float64)
            samples = ad.AnnData(X=X, obs=samples.obs.copy(), var=pd.DataFrame(index=trained))
        transformed = apply_fitted_view(samples, model)
        if "tissue" not in transformed.obs:
            transformed.obs["tissue"] = UNKNOWN_TISSUE
        out[view] = transformed
        rows.append({"view": view, "features_used": len(trained) - len(lacking), "features_missing": len(lacking),
                     "features_imputed": len(lacking), "samples": int(transformed.n_obs)})
    return out, pd.DataFrame(rows, columns=["view", "features_used", "features_missing", "features_imputed",
                                            "samples"])
