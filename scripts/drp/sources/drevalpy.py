"""drevalpy's harmonized data sets on Zenodo (GDSC1, GDSC2, CCLE, CTRPv2, ...), one pinned record.

File key ``data`` (required): one data set zip (``GDSC2.zip``, ...), extracted (``extract: true``) or as is.
Its layout, as drevalpy writes it:
- ``<DS>/<DS>.csv``: one row per (cell line, drug): cell_line_name, cellosaurus_id (RRID), pubchem_id
  (kept as text), tissue, and the measures LN_IC50, AUC, IC50, EC50, pEC50, each also as *_curvecurator
  (drevalpy's CurveCurator refit);
- ``<DS>/drug_smiles.csv``: pubchem_id, canonical_smiles; optionally ``<DS>/drug_names.csv``: pubchem_id,
  drug_name;
- omics tables ``<DS>/<table>.csv`` with cell_line_name (and cellosaurus_id) and one column per feature.

``response``: any measure above. Lower is more sensitive except for pEC50 (-log10 EC50). Duplicate pairs are
averaged (LN_IC50 on the linear scale). The drug id is ``CID<pubchem_id>``: a bare number would be read
back as an integer from drugs.tsv, and CID is PubChem's own prefix; the raw id stays in the drug table.
Views: ``expression`` (gene_expression.csv), ``mutation`` (mutations.csv, booleans as 0/1), ``cnv``
(copy_number_variation_gistic.csv), ``methylation``, ``proteomics``; or those of a depmap ``omics_source``
(lines matched by RRID, then by name).
"""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from . import depmap
from .common import (OmicsView, ResponseTable, assemble, check_choice, find_member,
                     read_text_table, require_columns, require_keys)
from .harmonize import cell_line_table

SOURCE_TYPE = "drevalpy"
_BASE_MEASURES = {"LN_IC50": (True, "log_mean_exp"), "AUC": (True, "mean"), "IC50": (True, "mean"),
                  "EC50": (True, "mean"), "pEC50": (False, "mean")}
MEASURES = {**_BASE_MEASURES, **{f"{m}_curvecurator": v for m, v in _BASE_MEASURES.items()}}
VIEW_TABLES = {"expression": "gene_expression", "mutation": "mutations", "cnv": "copy_number_variation_gistic",
               "methylation": "methylation", "proteomics": "proteomics"}
ID_COLUMNS_IN_TABLES = {"cell_line_name", "cellosaurus_id", "tissue"}


def dataset_name(path) -> str:
    """The data set in the zip: the one ``<DS>/<DS>.csv`` it holds."""
    path = Path(path)
    if path.is_dir():
        names = [str(p.relative_to(path)) for p in path.rglob("*.csv")]
    else:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    found = sorted({m[1] for m in (re.search(r"(?:^|/)([^/]+)/\1\.csv$", n) for n in names) if m})
    if len(found) != 1:
        raise ValueError(f"drevalpy file key 'data' ({path}): expected exactly one <DS>/<DS>.csv, found "
                         f"{found or 'none'} among {sorted(names)[:10]}")
    return found[0]


def _pubchem_ids(values: pd.Series) -> pd.Series:
    text = values.fillna("").astype(str).str.strip()
    return text.str.replace(r"^(\d+)\.0+$", r"\1", regex=True)


def _drug_ids(pubchem: pd.Series) -> pd.Series:
    return pubchem.where(~pubchem.str.fullmatch(r"\d+"), "CID" + pubchem)


def read_response(path, measure: str) -> ResponseTable:
    name = dataset_name(path)
    raw = read_text_table(path, f"{name}.csv", "data", dtype={"pubchem_id": str, "cell_line_name": str,
                                                              "cellosaurus_id": str})
    require_columns(raw, ["cell_line_name", "pubchem_id", measure], f"drevalpy file key 'data' ({path}), {name}.csv")
    pubchem = _pubchem_ids(raw["pubchem_id"])
    table = pd.DataFrame({"key": raw["cell_line_name"].astype(str).values, "drug": _drug_ids(pubchem).values,
                          "response": pd.to_numeric(raw[measure], errors="coerce").values})
    usable = np.isfinite(table["response"]) & (pubchem.values != "") & raw["cell_line_name"].notna().values
    table = table[usable].reset_index(drop=True)

    lines = raw[usable.values].drop_duplicates("cell_line_name")
    extra = {"rrid": lines["cellosaurus_id"]} if "cellosaurus_id" in lines else {}
    if "tissue" in lines:
        extra["tissue"] = lines["tissue"]
    cells = cell_line_table(lines["cell_line_name"], lines["cell_line_name"], **extra)

    smiles = read_text_table(path, "drug_smiles.csv", "data", dtype=str)
    require_columns(smiles, ["pubchem_id", "canonical_smiles"], f"drevalpy file key 'data' ({path}), drug_smiles.csv")
    smiles_by_id = smiles.assign(pubchem_id=_pubchem_ids(smiles["pubchem_id"])).drop_duplicates("pubchem_id")
    smiles_by_id = smiles_by_id.set_index("pubchem_id")["canonical_smiles"]
    ids = sorted(set(pubchem[usable.values]))
    drugs = pd.DataFrame({"drug": _drug_ids(pd.Series(ids)).values, "pubchem_id": ids,
                          "smiles": smiles_by_id.reindex(ids).fillna("").values})
    names = _drug_names(path, raw)
    if names is not None:
        drugs["name"] = drugs["pubchem_id"].map(names).fillna("")
    lower, how = MEASURES[measure]
    facts = {"file": str(path), "dataset": name, "rows": int(len(raw)), "rows_without_value": int((~usable).sum()),
             "measure": measure, "aggregation": how}
    return ResponseTable(pairs=table, cell_lines=cells, drugs=drugs, measure=measure, lower_is_sensitive=lower,
                         aggregation=how, facts=facts)


def _drug_names(path, raw: pd.DataFrame) -> pd.Series | None:
    """pubchem_id -> drug name, from the response table or drug_names.csv when either has one."""
    if "drug_name" in raw:
        table = raw
    else:
        try:
            find_member(path, "drug_names.csv", "data")
        except FileNotFoundError:
            return None
        table = read_text_table(path, "drug_names.csv", "data", dtype=str)
        if not {"pubchem_id", "drug_name"} <= set(table.columns):
            return None
    table = table.assign(pubchem_id=_pubchem_ids(table["pubchem_id"])).drop_duplicates("pubchem_id")
    return table.set_index("pubchem_id")["drug_name"]


def _numeric(column: pd.Series) -> pd.Series:
    """Mutation tables hold True/False (object dtype where a value is missing); others are numbers."""
    if column.dtype == bool:
        return column.astype(np.float32)
    if column.dtype == object:
        flags = column.map({True: 1.0, False: 0.0, "True": 1.0, "False": 0.0})
        return flags.fillna(pd.to_numeric(column.where(flags.isna()), errors="coerce"))
    return column


def read_view(path, view: str) -> OmicsView:
    table_name = VIEW_TABLES[view]
    table = read_text_table(path, f"{table_name}.csv", "data", low_memory=False)
    require_columns(table, ["cell_line_name"], f"drevalpy file key 'data' ({path}), {table_name}.csv")
    table["cell_line_name"] = table["cell_line_name"].astype(str)
    features = [c for c in table.columns if c not in ID_COLUMNS_IN_TABLES and not c.startswith("Unnamed:")]
    values = table[features].apply(_numeric).astype(np.float32)
    # drevalpy averages rows that repeat a cell line; so do we.
    matrix = values.groupby(table["cell_line_name"].values).mean()
    matrix.index.name = "key"
    lines = table.drop_duplicates("cell_line_name").set_index("cell_line_name").reindex(matrix.index)
    extra = {"rrid": lines["cellosaurus_id"].values} if "cellosaurus_id" in lines else {}
    return OmicsView(matrix=matrix, cell_lines=cell_line_table(matrix.index, matrix.index, **extra),
                     label=f"drevalpy:{table_name}")


def build_from_files(files: dict, spec: dict, omics_files: dict | None = None):
    """The source-registry entry point (``drp.sources.BUILDERS``)."""
    measure, views = spec["response"], spec["views"]
    check_choice(measure, MEASURES, "response", SOURCE_TYPE)
    depmap.check_own_or_depmap_views(views, VIEW_TABLES, SOURCE_TYPE, omics_files)
    require_keys(files, ["data"], SOURCE_TYPE, "responses")
    response = read_response(files["data"], measure)
    if omics_files is None:
        omics = {view: read_view(files["data"], view) for view in views}
    else:
        omics = depmap.omics_source_views(omics_files, spec)
    return assemble(response, omics, spec, SOURCE_TYPE,
                    {"source_type": SOURCE_TYPE, "response": measure, "drevalpy_dataset": response.facts["dataset"]})
