"""The one interface that every model implements, baselines and VAEs alike.

A model is fitted on a ``TrainingData`` that holds only training cell lines (the test cell lines of a
fold are not in it, not even their omics), and predicts for (cell line, drug) pairs of any cell lines
whose preprocessed omics it is handed. It saves itself as JSON plus numpy arrays, never as a pickle.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..io import atomic_path, write_json, write_table

if TYPE_CHECKING:  # anndata is imported by whoever builds the views, not here
    import anndata as ad


@dataclass
class CellLineData:
    """Preprocessed omics views and tissue labels for a set of cell lines, and the structure features
    (fingerprints) of the data set's drugs, which models that describe drugs by structure use."""

    views: dict[str, ad.AnnData]
    tissue: pd.Series  # cell_line -> tissue
    drug_features: ad.AnnData | None = None  # obs_names = drug

    def subset(self, cell_lines) -> "CellLineData":
        cell_lines = pd.Index(cell_lines)
        return CellLineData({name: view[cell_lines].copy() for name, view in self.views.items()},
                            self.tissue.loc[cell_lines], self.drug_features)

    def matrix(self, view_names: list[str], cell_lines) -> np.ndarray:
        """Views concatenated along features for ``cell_lines`` (in that order)."""
        return np.hstack([np.asarray(self.views[name][pd.Index(cell_lines)].X) for name in view_names])

    @property
    def cell_lines(self) -> pd.Index:
        return next(iter(self.views.values())).obs_names


@dataclass
class TrainingData:
    """What a model may see during fit: training pairs, validation pairs, and their cell lines only."""

    cells: CellLineData
    train: pd.DataFrame  # cell_line, drug, response
    validation: pd.DataFrame
    drugs: pd.DataFrame
    lower_is_sensitive: bool
    seed: int = 0
    checkpoint_dir: Path | None = None  # where neural models keep resumable checkpoints
    perturbations: dict | None = None  # optional (control x1, treated x2, drug) pairs, e.g. from LINCS
    #: shared by the grid candidates of one fold (same cells and pairs): what a model builds from the data
    #: alone, whatever the candidate's parameters, it may keep here under a key naming those inputs
    shared: dict = field(default_factory=dict)
    #: optional cell lines without responses (models.<name>.unlabelled_cell_lines, drp.unlabelled): omics only,
    #: transformed with the fold's fitted statistics, for the unsupervised terms of models that have them
    unlabelled: CellLineData | None = None

    def __post_init__(self):
        seen = set(self.train.cell_line) | set(self.validation.cell_line)
        extra = set(self.cells.cell_lines) - seen
        if extra:
            raise ValueError(f"TrainingData holds {len(extra)} cell lines without training pairs, e.g. {sorted(extra)[:3]}")
        if self.unlabelled is not None:  # labelled cell lines must not enter a second time, without responses
            labelled = seen | set(self.cells.cell_lines)
            both = sorted(labelled & set(self.unlabelled.cell_lines))
            if both:
                raise ValueError(f"TrainingData: {len(both)} unlabelled cell lines have pairs, e.g. {both[:3]}")

    @property
    def train_and_validation(self) -> pd.DataFrame:
        return pd.concat([self.train, self.validation], ignore_index=True)


class TissueColumns:
    """The cell line's tissue as one-hot columns next to the omics, for per-drug linear models: the per-drug
    tissue effect that the mean-effects baseline models and a model on omics alone must otherwise rediscover
    (on weak omics, such as a few hundred mutation calls, it cannot). Tissues are those of the training cell
    lines; each column is scaled so that it weighs like an average omics feature (values 0 or ``scale``,
    scale^2 the features' mean variance). An unseen tissue is all zeros."""

    def __init__(self, tissues: list[str] | None = None, scale: float = 1.0):
        self.tissues, self.scale = list(tissues or []), scale

    def fit(self, cells: CellLineData, omics: np.ndarray) -> "TissueColumns":
        self.tissues = sorted(cells.tissue.loc[cells.cell_lines].astype(str).unique())
        self.scale = float(np.sqrt(np.mean(np.var(omics, axis=0)) or 1.0))
        return self

    def append(self, omics: np.ndarray, cells: CellLineData, cell_lines) -> np.ndarray:
        tissue = cells.tissue.reindex(pd.Index(cell_lines)).astype(str).to_numpy()
        one_hot = (tissue[:, None] == np.asarray(self.tissues, dtype=object)[None, :]).astype(omics.dtype)
        return np.hstack([omics, one_hot * omics.dtype.type(self.scale)])


def arrays_under(arrays: dict[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    """The arrays whose names start with ``prefix``, without it: a wrapped model's part of a saved state."""
    return {key.removeprefix(prefix): value for key, value in arrays.items() if key.startswith(prefix)}


def member_state(model: "DrugResponseModel", prefix: str) -> tuple[dict, dict[str, np.ndarray]]:
    """A wrapped model's part of its wrapper's saved state: (its class, params and state, its arrays named
    ``prefix`` + name); ``load_member`` rebuilds it."""
    meta, arrays = model.state()
    return ({"class": f"{type(model).__module__}:{type(model).__qualname__}", "params": model.params, "state": meta},
            {f"{prefix}{key}": value for key, value in arrays.items()})


def load_member(saved: dict, arrays: dict[str, np.ndarray], prefix: str) -> "DrugResponseModel":
    """The wrapped model saved by ``member_state``."""
    from . import resolve

    model = resolve(saved["class"])(**saved["params"])
    model.load_state(saved["state"], arrays_under(arrays, prefix))
    return model


def per_drug_linear_predictions(pairs: pd.DataFrame, matrix_of, coef: np.ndarray, intercept: np.ndarray,
                                drugs: list[str], fallback: float) -> pd.DataFrame:
    """``pairs`` with y_pred of per-drug linear models: row d of ``coef`` and ``intercept[d]`` for ``drugs[d]``,
    applied to ``matrix_of(cell_index)`` (cells x features, for the pairs' sorted cell lines); a drug without
    a model gets ``fallback``."""
    cell_index = pd.Index(sorted(pairs.cell_line.unique()))
    grid = matrix_of(cell_index) @ coef.T + intercept  # cells x drugs
    drug_pos = pd.Series(np.arange(len(drugs)), index=drugs).reindex(pairs.drug).to_numpy()
    known = ~np.isnan(drug_pos)
    y_pred = np.full(len(pairs), fallback)
    y_pred[known] = grid[cell_index.get_indexer(pairs.cell_line[known]), drug_pos[known].astype(int)]
    return pairs.assign(y_pred=y_pred)


class DrugResponseModel(ABC):
    """Subclasses set ``fit`` and ``predict`` and describe their fitted state for saving."""

    #: whether the model uses the validation pairs for early stopping or selection; if not, the
    #: training scripts hand it train + validation as its training set.
    uses_validation: bool = False
    #: whether the model predicts for drugs it never saw in training (from drug features); only such
    #: models run under drug-blind (LDO) splits
    handles_unseen_drugs: bool = False
    #: the best validation score reached in fit (lower is better); models that use validation set it
    validation_score: float = float("nan")

    def __init__(self, **params):
        self.params = params

    @abstractmethod
    def fit(self, data: TrainingData) -> None: ...

    def refit_params(self) -> dict:
        """Parameters to refit this fitted model on training + validation pairs, without validation pairs:
        the same, unless the model chose something on the validation pairs (early stopping) that it must
        now be told."""
        return dict(self.params)

    @abstractmethod
    def predict(self, pairs: pd.DataFrame, cells: CellLineData) -> pd.DataFrame:
        """Return ``pairs`` with ``y_pred`` (and ``p_sensitive`` if the model has a classifier)."""

    @abstractmethod
    def state(self) -> tuple[dict, dict[str, np.ndarray]]:
        """The fitted state as (JSON-serialisable dict, named numpy arrays)."""

    @abstractmethod
    def load_state(self, meta: dict, arrays: dict[str, np.ndarray]) -> None: ...

    def save(self, directory: str | Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        meta, arrays = self.state()
        with atomic_path(directory / "arrays.npz") as tmp:
            with open(tmp, "wb") as handle:
                np.savez_compressed(handle, **arrays)
        for table in ("history", "selection"):  # training history, grid search record
            frame = getattr(self, table, None)
            if frame is not None and len(frame):
                write_table(directory / f"{table}.tsv", frame)
        write_json(directory / "model.json", {"class": f"{type(self).__module__}:{type(self).__qualname__}",
                                              "params": self.params, "state": meta})

    @classmethod
    def load(cls, directory: str | Path) -> "DrugResponseModel":
        """The saved model, as the class it was saved as: ``cls`` or a subclass, or a model wrapped in the
        mean-effects offset (``drp.models.offset``)."""
        from . import resolve

        directory = Path(directory)
        saved = json.loads((directory / "model.json").read_text())
        saved_class = resolve(saved["class"])
        if not (issubclass(saved_class, cls) or getattr(saved_class, "wraps_models", False)):
            raise ValueError(f"{directory}: holds a {saved['class']} model, not a {cls.__name__}")
        model = saved_class(**saved["params"])
        with np.load(directory / "arrays.npz", allow_pickle=False) as arrays:
            model.load_state(saved["state"], {key: arrays[key] for key in arrays.files})
        return model
