"""DepMap (Broad) omics, release 24Q2 on Figshare+ (article 25880521): an omics-only source.

It has no drug responses, so a data set names it as ``omics_source`` next to a response source (gdsc,
drevalpy, ctrpv2, prism); building a data set from it alone is refused. File keys (``sources.<name>.files``):
- ``models``: ``Model.csv`` (ModelID ACH-..., CellLineName, StrippedCellLineName, CCLEName, OncotreeLineage,
  RRID, SangerModelID, COSMICID). Always required: it carries the ids that match the response source's lines.
- ``expression``: ``OmicsExpressionProteinCodingGenesTPMLogp1.csv``, log2(TPM+1), ModelID x "SYMBOL (ENTREZ)".
- ``cnv``: ``OmicsCNGene.csv``, gene-level relative copy number (log2(ratio+1)), same layout.
- ``mutations``: ``OmicsSomaticMutations.csv``, one row per call (HugoSymbol, LikelyLoF, Hotspot, ModelID).
Views: ``expression``, ``cnv``, ``mutation`` (1 if the line has a likely loss-of-function or hotspot call
in the gene, else 0; lines absent from the file have no mutation data and so no view).
Gene columns "SYMBOL (ENTREZ)" become SYMBOL; symbols that repeat are averaged.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from .common import (OmicsView, assemble, check_choice, check_views, drop_duplicate_features, read_text_table,
                     require_columns, require_keys, require_omics, truthy)
from .harmonize import cell_line_table

SOURCE_TYPE = "depmap"
VIEW_FILES = {"expression": "expression", "cnv": "cnv", "mutation": "mutations"}
FILE_PATTERNS = {
    "models": "Model*.csv",
    "expression": "OmicsExpression*.csv",
    "cnv": "OmicsCNGene*.csv",
    "mutations": "OmicsSomaticMutations*.csv",
}
MODEL_COLUMNS = ["ModelID", "CellLineName", "StrippedCellLineName", "OncotreeLineage"]
MUTATION_COLUMNS = ["ModelID", "HugoSymbol", "LikelyLoF", "Hotspot"]
_GENE = re.compile(r"^(?P<symbol>[^ ]+) \((?P<entrez>[^)]*)\)$")
# Later releases add per-profile rows with these columns; we keep the model's default entry.
_PROFILE_COLUMNS = {"SequencingID", "ModelConditionID", "IsDefaultEntryForModel", "IsDefaultEntryForMC",
                    "ProfileID"}


def read_models(path) -> pd.DataFrame:
    """Model.csv as a harmonization table: index ACH id, ``name``, ids, ``tissue`` (OncotreeLineage)."""
    models = read_text_table(path, FILE_PATTERNS["models"], "models", dtype=str, keep_default_na=False,
                             na_values=[""])
    require_columns(models, MODEL_COLUMNS, f"depmap file key 'models' ({path})")
    models = models.drop_duplicates("ModelID")
    names = models["CellLineName"].fillna(models["StrippedCellLineName"])
    optional = {"COSMICID": "cosmic_id", "SangerModelID": "sanger_model_id", "RRID": "rrid",
                "CCLEName": "ccle_name", "OncotreePrimaryDisease": "primary_disease"}
    return cell_line_table(models["ModelID"], names, depmap_id=models["ModelID"], tissue=models["OncotreeLineage"],
                           **{new: models[old] for old, new in optional.items() if old in models})


def gene_symbol(column: str) -> str:
    """``"TP53 (7157)"`` -> ``"TP53"``; other column names are kept as they are."""
    found = _GENE.match(column)
    return found["symbol"] if found else column


def read_gene_matrix(path, key: str) -> pd.DataFrame:
    """A ModelID x gene matrix (float32) from DepMap's wide CSV layout."""
    header = read_text_table(path, FILE_PATTERNS[key], key, nrows=0)
    columns = list(header.columns)
    gene_columns = [c for c in columns if _GENE.match(c)]
    if not gene_columns:
        raise ValueError(f"depmap file key {key!r} ({path}): no gene column like 'TP53 (7157)' among "
                         f"{columns[:10]}")
    dtypes = {c: np.float32 for c in gene_columns}
    table = read_text_table(path, FILE_PATTERNS[key], key, dtype={**dtypes, **{c: str for c in columns
                                                                              if c not in dtypes}})
    if "ModelID" in table.columns:  # per-profile layout (25Q2 on): one row per sequencing, flagged default
        if "IsDefaultEntryForModel" in table.columns:
            table = table[truthy(table["IsDefaultEntryForModel"])]
        index = table["ModelID"]
    else:  # 24Q2: the first, unnamed column holds the ModelID
        index = table[columns[0]]
    matrix = table[gene_columns].set_axis(pd.Index(index.astype(str), name="key"))
    matrix = matrix[~matrix.index.duplicated()]
    matrix.columns = [gene_symbol(c) for c in gene_columns]
    matrix, _ = drop_duplicate_features(matrix)
    return matrix


def read_mutations(path) -> pd.DataFrame:
    """Binary ModelID x gene: 1 where the line has a LikelyLoF or Hotspot call in the gene."""
    calls = read_text_table(path, FILE_PATTERNS["mutations"], "mutations", usecols=lambda c: c in MUTATION_COLUMNS,
                            dtype=str)
    require_columns(calls, MUTATION_COLUMNS, f"depmap file key 'mutations' ({path})")
    calls = calls.dropna(subset=["ModelID"])
    lines = sorted(set(calls["ModelID"]))
    damaging = calls[(truthy(calls["LikelyLoF"]) | truthy(calls["Hotspot"])) & calls["HugoSymbol"].notna()]
    matrix = pd.crosstab(damaging["ModelID"], damaging["HugoSymbol"]).clip(upper=1)
    # Lines with calls but none damaging are real zeros, not missing data.
    matrix = matrix.reindex(lines, fill_value=0).astype(np.float32)
    matrix.index = pd.Index(matrix.index.astype(str), name="key")
    matrix.columns.name = None
    return matrix


def omics_views(files: dict, views, label: str = "depmap") -> dict[str, OmicsView]:
    """The requested views, each keyed by ACH id, with Model.csv as their cell-line table."""
    check_views(views, VIEW_FILES, SOURCE_TYPE, via=" (as omics_source)")
    require_keys(files, ["models", *[VIEW_FILES[v] for v in views]], SOURCE_TYPE, f"views {list(views)}")
    models = read_models(files["models"])
    out = {}
    for view in views:
        key = VIEW_FILES[view]
        matrix = read_mutations(files[key]) if view == "mutation" else read_gene_matrix(files[key], key)
        out[view] = OmicsView(matrix=matrix, cell_lines=models, label=f"{label}:{key}")
    return out


def check_omics_source_views(views, source_type: str) -> None:
    """The views a data set of ``source_type`` asks of the DepMap files of its ``omics_source``."""
    check_views(views, VIEW_FILES, source_type, via=" through its depmap omics_source")


def check_own_or_depmap_views(views, own_views, source_type: str, omics_files: dict | None) -> None:
    """A source with omics of its own that a data set may replace by DepMap's (``omics_source``)."""
    if omics_files is None:
        check_views(views, own_views, source_type)
    else:
        check_omics_source_views(views, source_type)


def omics_source_views(omics_files: dict, spec: dict) -> dict[str, OmicsView]:
    """The data set's views read from the DepMap files of its ``omics_source``."""
    return omics_views(omics_files, spec["views"], label=f"omics_source {spec.get('omics_source', 'depmap')}")


def build_response_with_depmap_omics(files: dict, spec: dict, omics_files: dict | None, source_type: str,
                                     measures: dict, response_key: str, read_response):
    """A response-only source (CTRPv2, PRISM) joined to DepMap omics named by the data set's omics_source."""
    check_choice(spec["response"], measures, "response", source_type)
    omics_files = require_omics(omics_files, source_type)
    check_omics_source_views(spec["views"], source_type)
    require_keys(files, [response_key], source_type, "responses")
    response = read_response(files[response_key])
    return assemble(response, omics_source_views(omics_files, spec), spec, source_type, {"source_type": source_type, "response": spec["response"]})


def build_from_files(files: dict, spec: dict, omics_files: dict | None = None):
    """DepMap has no responses: a data set uses it through ``omics_source``, never as its ``source``."""
    raise ValueError("depmap source: it has omics but no drug responses; use it as datasets.<name>.omics_source "
                     "of a data set whose source is gdsc, drevalpy, ctrpv2 or prism")
