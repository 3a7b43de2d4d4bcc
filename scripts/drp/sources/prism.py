"""PRISM Repurposing secondary screen (19Q4, Figshare article 9393293), omics from DepMap.

File key ``response`` (required): ``secondary-screen-dose-response-curve-parameters.csv`` (broad_id,
depmap_id, ccle_name, screen_id, auc, name, smiles, passed_str_profiling, ...).

``response``: ``AUC``, the area under the fitted viability curve; lower is more sensitive. Rules:
- only curves with ``passed_str_profiling`` true (the line's identity was confirmed);
- per (line, broad_id) the curve of the preferred screen only: MTS010 > MTS006 > MTS005 > HTS002 (later MTS
  screens supersede earlier ones; HTS002 is the high-throughput pilot); other screen ids rank last;
- the drug is ``name`` (``broad_id`` where the name is empty), so batches of one compound are averaged;
- SMILES from the file (the first one where several are listed, comma-separated).
PRISM has no omics: ``omics_source`` (a depmap source) is required; lines match Model.csv by ACH id.
The tissue is DepMap's OncotreeLineage. Views: those of the depmap source.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from . import depmap
from .common import ResponseTable, read_text_table, require_columns, truthy
from .harmonize import cell_line_table

SOURCE_TYPE = "prism"
MEASURES = {"AUC": (True, "mean")}
SCREEN_PREFERENCE = ["MTS010", "MTS006", "MTS005", "HTS002"]
COLUMNS = ["broad_id", "depmap_id", "ccle_name", "screen_id", "auc", "name", "smiles", "passed_str_profiling"]


def read_response(path) -> ResponseTable:
    curves = read_text_table(path, "*.csv", "response", usecols=lambda c: c in COLUMNS, dtype=str)
    require_columns(curves, COLUMNS, f"prism file key 'response' ({path})")
    rows = len(curves)
    curves = curves[truthy(curves["passed_str_profiling"]) & curves["depmap_id"].notna() & curves["broad_id"].notna()]
    curves = curves.assign(auc=pd.to_numeric(curves["auc"], errors="coerce"))
    curves = curves[np.isfinite(curves["auc"])]
    rank = curves["screen_id"].map({s: i for i, s in enumerate(SCREEN_PREFERENCE)}).fillna(len(SCREEN_PREFERENCE))
    curves = curves.assign(rank=rank.values)
    best = curves.groupby(["depmap_id", "broad_id"])["rank"].transform("min")
    kept = curves[curves["rank"] == best]
    kept = kept.assign(drug=kept["name"].fillna(kept["broad_id"]).str.strip())

    pairs = pd.DataFrame({"key": kept["depmap_id"].values, "drug": kept["drug"].values,
                          "response": kept["auc"].values}).reset_index(drop=True)
    lines = kept.drop_duplicates("depmap_id")
    # The stripped name is the part of the CCLE name before the first underscore (A549_LUNG -> A549).
    names = lines["ccle_name"].str.split("_", n=1).str[0]
    cells = cell_line_table(lines["depmap_id"], names, depmap_id=lines["depmap_id"], ccle_name=lines["ccle_name"])
    first_smiles = kept["smiles"].fillna("").str.split(",").str[0].str.strip()
    drugs = (kept.assign(smiles=first_smiles.values)
             .groupby("drug")
             .agg(smiles=("smiles", "first"), broad_ids=("broad_id", lambda v: ";".join(sorted(set(v)))))
             .reset_index())
    facts = {"file": str(path), "rows": int(rows), "curves_kept": int(len(kept)),
             "screens_kept": {str(k): int(v) for k, v in kept["screen_id"].value_counts().items()},
             "measure": "AUC", "aggregation": "mean"}
    return ResponseTable(pairs=pairs, cell_lines=cells, drugs=drugs, measure="AUC", lower_is_sensitive=True,
                         aggregation="mean", facts=facts)


def build_from_files(files: dict, spec: dict, omics_files: dict | None = None):
    """The source-registry entry point (``drp.sources.BUILDERS``)."""
    return depmap.build_response_with_depmap_omics(files, spec, omics_files, SOURCE_TYPE, MEASURES, "response",
                                                   read_response)
