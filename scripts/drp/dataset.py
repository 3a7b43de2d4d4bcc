"""The canonical data set that every stage after ``build_dataset`` reads.

On disk (``results/<dataset>/data/``):
- ``<view>.h5ad``: one AnnData per omics view; obs_names = cell-line id, ``obs["tissue"]``,
  var_names = feature ids, dense float32 X.
- ``response.parquet``: ``cell_line, drug, response``, one row per pair.
- ``drugs.tsv``: ``drug, smiles`` (SMILES empty when unknown).
- ``cell_lines.tsv``: ``cell_line, tissue`` and any other annotation (the views' obs).
- ``dataset.json``: the response measure, its direction, and provenance and counts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from .io import write_h5ad, write_json, write_table

if TYPE_CHECKING:  # anndata is imported where views are read or made: jobs that read tables skip it
    import anndata as ad

UNKNOWN_TISSUE = "unknown"


@dataclass
class Dataset:
    views: dict[str, ad.AnnData]
    response: pd.DataFrame
    drugs: pd.DataFrame
    measure: str
    lower_is_sensitive: bool
    provenance: dict = field(default_factory=dict)

    @property
    def cell_lines(self) -> pd.Index:
        return next(iter(self.views.values())).obs_names

    @property
    def tissue(self) -> pd.Series:
        return next(iter(self.views.values())).obs["tissue"].astype(str)

    def summary(self) -> dict:
        n_cells, n_drugs = self.response.cell_line.nunique(), self.response.drug.nunique()
        return {
            "cell_lines": int(n_cells),
            "drugs": int(n_drugs),
            "pairs": int(len(self.response)),
            "density": round(len(self.response) / (n_cells * n_drugs), 4),
            "features": {name: int(view.n_vars) for name, view in self.views.items()},
            "tissues": int(self.tissue.nunique()),
        }

    def validate(self) -> None:
        """Check the contract; raise ValueError naming what is wrong."""
        if not self.views:
            raise ValueError("a data set needs at least one omics view")
        reference = self.cell_lines
        for name, view in self.views.items():
            if not view.obs_names.equals(reference):
                raise ValueError(f"view {name!r}: cell lines differ from the other views (same ids, same order)")
            if view.obs_names.has_duplicates or view.var_names.has_duplicates:
                raise ValueError(f"view {name!r}: duplicate cell-line or feature ids")
            if "tissue" not in view.obs:
                raise ValueError(f"view {name!r}: obs has no 'tissue' column")
            if not np.isfinite(view.X).all():
                raise ValueError(f"view {name!r}: X contains NaN or inf")
        if list(self.response.columns[:3]) != ["cell_line", "drug", "response"]:
            raise ValueError(f"response table: expected columns cell_line, drug, response, got {list(self.response.columns)}")
        if self.response.duplicated(["cell_line", "drug"]).any():
            raise ValueError("response table: duplicate (cell_line, drug) pairs; aggregate them first")
        if not np.isfinite(self.response.response).all():
            raise ValueError("response table: non-finite responses")
        unknown_cells = set(self.response.cell_line) - set(reference)
        if unknown_cells:
            raise ValueError(f"response table: {len(unknown_cells)} cell lines have no omics, e.g. {sorted(unknown_cells)[:3]}")
        unknown_drugs = set(self.response.drug) - set(self.drugs.drug)
        if unknown_drugs:
            raise ValueError(f"response table: drugs missing from the drug table: {sorted(unknown_drugs)[:3]}")

    def write(self, directory: str | Path) -> None:
        self.validate()
        directory = Path(directory)
        for name, view in self.views.items():
            write_h5ad(directory / f"{name}.h5ad", view)
        write_table(directory / "response.parquet", self.response)
        write_table(directory / "drugs.tsv", self.drugs)
        write_table(directory / "cell_lines.tsv", next(iter(self.views.values())).obs.reset_index())
        write_json(directory / "dataset.json", {
            "measure": self.measure,
            "lower_is_sensitive": self.lower_is_sensitive,
            "views": sorted(self.views),
            "summary": self.summary(),
            "provenance": self.provenance,
        })

    @classmethod
    def read(cls, directory: str | Path, views: list[str] | None = None) -> "Dataset":
        directory = Path(directory)
        meta = read_meta(directory / "dataset.json")
        return cls(
            views={name: read_view(directory / f"{name}.h5ad") for name in (views or meta["views"])},
            response=read_response(directory / "response.parquet"),
            drugs=read_drugs(directory / "drugs.tsv"),
            measure=meta["measure"],
            lower_is_sensitive=meta["lower_is_sensitive"],
            provenance=meta.get("provenance", {}),
        )


# Readers of the canonical files, one per file kind: every stage reads a built data set through these.
def read_meta(path: str | Path) -> dict:
    """``dataset.json``: measure, direction (``lower_is_sensitive``), views, counts, provenance."""
    return json.loads(Path(path).read_text())


def read_response(path: str | Path) -> pd.DataFrame:
    """``response.parquet``: one row per (cell_line, drug) with its response; ids as strings."""
    return pd.read_parquet(path)


def read_drugs(path: str | Path) -> pd.DataFrame:
    """``drugs.tsv``: drug, smiles (empty when unknown); every value as text (a drug may be named NA)."""
    return pd.read_csv(path, sep="\t", keep_default_na=False, dtype=str)


def read_cell_lines(path: str | Path) -> pd.DataFrame:
    """``cell_lines.tsv``: the cell-line annotations, indexed by cell line."""
    table = pd.read_csv(path, sep="\t", keep_default_na=False, dtype=str)
    return table.set_index("cell_line")


def read_view(path: str | Path) -> "ad.AnnData":
    """An omics view (``<view>.h5ad``), raw or preprocessed per fold."""
    import anndata as ad

    return ad.read_h5ad(path)


def aggregate_duplicates(response: pd.DataFrame, how: str) -> pd.DataFrame:
    """One row per (cell_line, drug).

    ``how="log_mean_exp"`` suits log-scale measures such as LN_IC50: the mean is taken on the linear
    scale (the geometric-mean IC50 of replicate screens, as drevalpy does); ``how="mean"`` suits AUC.
    """
    if how not in ("log_mean_exp", "mean"):
        raise ValueError(f"unknown aggregation {how!r} (expected 'log_mean_exp' or 'mean')")
    values = np.exp(response["response"]) if how == "log_mean_exp" else response["response"]
    means = values.groupby([response["cell_line"], response["drug"]], sort=True).mean()
    if how == "log_mean_exp":
        means = np.log(means)
    return means.rename("response").reset_index()


def make_view(matrix: np.ndarray, cell_lines, features, obs: pd.DataFrame) -> "ad.AnnData":
    """A view in the canonical form: dense float32 X, string ids, tissue in obs."""
    import anndata as ad

    view = ad.AnnData(
        X=np.ascontiguousarray(matrix, dtype=np.float32),
        obs=obs.loc[list(cell_lines)].copy(),
        var=pd.DataFrame(index=pd.Index(list(features), name="feature")),
    )
    view.obs.index.name = "cell_line"
    return view
