"""What every source adapter shares: finding files, checking columns and options, assembling the data set.

An adapter reads its source into a ``ResponseTable`` (long responses keyed by the source's own cell-line
key, plus that source's cell-line table) and one ``OmicsView`` per requested view (a cell line x feature
matrix keyed by the key of the table it came from). ``assemble`` then matches every view's cell lines to the
response's (``harmonize.match_cell_lines``: ids first, names as a fallback), gives the lines their canonical
id (the normalized name), aggregates duplicate pairs, applies the data set's filters and returns the
canonical ``Dataset``.
"""

from __future__ import annotations

import fnmatch
import io
import logging
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..dataset import UNKNOWN_TISSUE, Dataset, aggregate_duplicates, make_view
from .harmonize import ID_COLUMNS, NAME, canonical_ids, match_cell_lines

log = logging.getLogger(__name__)

DATA_SUFFIXES = (".csv", ".tsv", ".txt", ".csv.gz", ".tsv.gz", ".txt.gz")


# ----------------------------------------------------------------------------------------------- inputs
def require_keys(files: dict, keys, source_type: str, purpose: str) -> None:
    """Raise naming the file keys of ``sources.<name>.files`` that the adapter needs and did not get."""
    missing = [key for key in keys if key not in files]
    if missing:
        raise ValueError(f"{source_type} source: file key(s) {missing} missing from sources.<name>.files "
                         f"(needed for {purpose}); given: {sorted(files)}")


def require_omics(omics_files: dict | None, source_type: str) -> dict:
    if omics_files is None:
        raise ValueError(f"{source_type} source: it has no omics of its own; set datasets.<name>.omics_source "
                         f"to a source of type depmap")
    return omics_files


def check_choice(value: str, offered, what: str, source_type: str) -> None:
    if value not in offered:
        raise ValueError(f"datasets: {what} {value!r} is not offered by the {source_type} source; "
                         f"expected one of {sorted(offered)}")


def check_views(views, offered, source_type: str, via: str = "") -> None:
    unknown = sorted(set(views) - set(offered))
    if unknown:
        raise ValueError(f"datasets: views {unknown} are not offered by the {source_type} source{via}; "
                         f"expected some of {sorted(offered)}")


def require_columns(table: pd.DataFrame, columns, where: str) -> None:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ValueError(f"{where}: missing column(s) {missing}; found {list(table.columns)[:25]}")


def _is_data_member(name: str) -> bool:
    base = name.rsplit("/", 1)[-1]
    return (not name.startswith("__MACOSX/") and not base.startswith(".")
            and base.lower().endswith(DATA_SUFFIXES))


def find_member(path: str | Path, pattern: str, key: str) -> tuple[Path, str | None]:
    """Locate the file named like ``pattern`` (fnmatch, on the base name) behind a file key.

    ``path`` may be the file itself, a zip archive (downloaded as is) or the folder it was extracted to
    (``extract: true``). Returns (path, member): member is the name inside the zip, or None.
    """
    path = Path(path)
    if path.is_dir():
        found = sorted(p for p in path.rglob("*") if p.is_file() and _is_data_member(str(p.relative_to(path)))
                       and fnmatch.fnmatch(p.name, pattern))
        candidates = [str(p.relative_to(path)) for p in path.rglob("*") if p.is_file()]
    elif zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            names = [n for n in archive.namelist() if not n.endswith("/")]
        found = sorted(n for n in names if _is_data_member(n) and fnmatch.fnmatch(n.rsplit("/", 1)[-1], pattern))
        candidates = names
    elif path.is_file():
        return path, None
    else:
        raise FileNotFoundError(f"file key {key!r}: {path} does not exist")
    if len(found) != 1:
        what = "no file" if not found else f"{len(found)} files ({[str(f) for f in found][:5]})"
        raise FileNotFoundError(f"file key {key!r}: {what} named like {pattern!r} in {path}; "
                                f"it holds {sorted(candidates)[:15]}")
    if path.is_dir():
        return found[0], None
    return path, found[0]


def read_text_table(path: str | Path, pattern: str, key: str, **read_csv) -> pd.DataFrame:
    """``pandas.read_csv`` on the file ``find_member`` locates; the error names the file on failure."""
    location, member = find_member(path, pattern, key)
    where = f"{location}!{member}" if member else str(location)
    try:
        if member is None:
            return pd.read_csv(location, **read_csv)
        with zipfile.ZipFile(location) as archive, archive.open(member) as handle:
            compression = "gzip" if member.endswith(".gz") else None
            return pd.read_csv(io.BufferedReader(handle), compression=compression, **read_csv)
    except (ValueError, pd.errors.ParserError) as error:
        raise ValueError(f"file key {key!r}: cannot read {where}: {error}") from error


def truthy(values: pd.Series) -> pd.Series:
    """Booleans from columns written as True/False, TRUE/FALSE, 1/0 or yes/no (CSV exports differ)."""
    text = values.astype(str).str.strip().str.lower()
    return text.isin(["true", "1", "1.0", "yes", "y", "t"])


# ----------------------------------------------------------------------------------------------- tables
@dataclass
class ResponseTable:
    """Responses keyed by the source's cell-line key, before harmonization and aggregation.

    ``pairs``: columns ``key, drug, response`` (duplicates allowed). ``cell_lines``: one row per key with
    ``name``, any id columns, ``tissue`` when the source has it, and other annotations. ``drugs``: ``drug,
    smiles`` and any other columns (one row per drug).
    """

    pairs: pd.DataFrame
    cell_lines: pd.DataFrame
    drugs: pd.DataFrame
    measure: str
    lower_is_sensitive: bool
    aggregation: str
    facts: dict = field(default_factory=dict)


@dataclass
class OmicsView:
    """One view: ``matrix`` (index = ``cell_lines`` keys, columns = features) and where it came from."""

    matrix: pd.DataFrame
    cell_lines: pd.DataFrame
    label: str


def drop_duplicate_features(matrix: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Average columns that share a feature id (one symbol, several probes or Entrez ids)."""
    duplicated = int(matrix.columns.duplicated().sum())
    if duplicated:
        matrix = matrix.T.groupby(level=0, sort=False).mean().T
    return matrix, duplicated


# ----------------------------------------------------------------------------------------------- assembly
def _fill_annotations(cells: pd.DataFrame, other: pd.DataFrame, right_of: pd.Series,
                      tissue: bool) -> pd.DataFrame:
    """Fill the name, ids (and, with ``tissue``, the tissue) that the response side lacks from a matched
    omics-side table. ``right_of`` maps response keys to ``other``'s keys.

    A PRISM line without a CCLE name still gets DepMap's name this way, and a CTRP line its DepMap id. The
    tissue is filled only where the response side has no tissue at all: mixing two vocabularies in one
    data set ("Large Intestine" and "Bowel") would split one tissue in two for tissue-blind splits.
    """
    cells = cells.copy()
    for column in [NAME, *ID_COLUMNS, *(["tissue"] if tissue else [])]:
        if column not in other:
            continue
        values = pd.Series(other[column].reindex(right_of.values).values, index=right_of.index).reindex(cells.index)
        current = cells[column] if column in cells else pd.Series(np.nan, index=cells.index, dtype="object")
        text = current.astype(str)
        current = current.where(current.notna() & (text != "") & (text != UNKNOWN_TISSUE), np.nan)
        cells[column] = current.fillna(values)
    return cells


def assemble(response: ResponseTable, views: dict[str, OmicsView], spec: dict, source_type: str,
             provenance: dict) -> Dataset:
    """The canonical data set from a source's responses and omics views (see the module docstring)."""
    cells = response.cell_lines
    provenance = {**provenance, "views": {}}
    matrices, filled = {}, cells
    for name, view in views.items():
        match = match_cell_lines(cells, view.cell_lines, left_label="responses", right_label=view.label)
        rights = match.right_of()
        rights = rights[rights.isin(view.matrix.index)]
        matrix = view.matrix.loc[rights.values]
        matrix.index = rights.index
        matrices[name] = matrix
        filled = _fill_annotations(filled, view.cell_lines, rights, tissue="tissue" not in cells)
        provenance["views"][name] = {"source": view.label, "cell_line_matching": match.report}
    cells = filled
    canonical, collisions = canonical_ids(cells)
    provenance["cell_line_name_collisions_dropped"] = collisions

    keys = set(canonical.index) & set(response.pairs["key"])
    for matrix in matrices.values():
        keys &= set(matrix.index)
    pairs = response.pairs[response.pairs["key"].isin(keys)]
    pairs = pd.DataFrame({"cell_line": canonical.reindex(pairs["key"]).values, "drug": pairs["drug"].values,
                          "response": pairs["response"].values})
    provenance["duplicate_pairs_aggregated"] = int(pairs.duplicated(["cell_line", "drug"]).sum())
    pairs = aggregate_duplicates(pairs, response.aggregation)

    smiles = response.drugs.set_index("drug")["smiles"].fillna("").astype(str)
    if spec.get("drugs_require_smiles", True):
        with_smiles = set(smiles.index[smiles.str.len() > 0])
        provenance["drugs_without_smiles_dropped"] = int(pairs.loc[~pairs.drug.isin(with_smiles), "drug"].nunique())
        pairs = pairs[pairs.drug.isin(with_smiles)]
    counts = pairs.groupby("drug")["cell_line"].nunique()
    pairs = pairs[pairs.drug.isin(counts.index[counts >= spec.get("min_cell_lines_per_drug", 1)])]
    if pairs.empty:
        raise ValueError(f"{source_type} source: no (cell line, drug) pair is left after matching the omics views "
                         f"{sorted(views)} and the filters drugs_require_smiles / min_cell_lines_per_drug; "
                         f"see the matching report: {provenance['views']}")
    cell_lines = sorted(pairs.cell_line.unique())
    key_of = pd.Series(canonical.index, index=canonical.values)[cell_lines]

    obs = cells.loc[key_of.values].copy()
    obs.index = pd.Index(cell_lines, name="cell_line")
    obs = obs.rename(columns={NAME: "cell_line_name"})
    obs["tissue"] = obs["tissue"].fillna(UNKNOWN_TISSUE).astype(str) if "tissue" in obs else UNKNOWN_TISSUE
    obs = obs.astype(object).where(obs.notna(), "").astype(str)
    provenance["cell_lines_without_tissue"] = int((obs["tissue"] == UNKNOWN_TISSUE).sum())

    out_views = {}
    for name, matrix in matrices.items():
        values = matrix.loc[key_of.values].astype(np.float32)
        complete = np.isfinite(values.to_numpy()).all(axis=0)
        # Imputing would need statistics of the data; dropping incomplete features keeps the build leak-free.
        provenance["views"][name]["features_dropped_incomplete"] = int((~complete).sum())
        values = values.loc[:, complete]
        out_views[name] = make_view(values.to_numpy(), cell_lines, [str(c) for c in values.columns], obs)

    drugs = sorted(pairs.drug.unique())
    drug_table = response.drugs.drop_duplicates("drug").set_index("drug").loc[drugs].reset_index()
    drug_table["smiles"] = drug_table["smiles"].fillna("").astype(str)
    drug_table = drug_table.astype(object).where(drug_table.notna(), "")
    dataset = Dataset(views=out_views, response=pairs.reset_index(drop=True), drugs=drug_table,
                      measure=response.measure, lower_is_sensitive=response.lower_is_sensitive,
                      provenance={**provenance, "response_file": response.facts})
    dataset.validate()
    log.info("built a %s data set: %s", source_type, dataset.summary())
    return dataset
