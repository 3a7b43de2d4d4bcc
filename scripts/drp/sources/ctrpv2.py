"""CTRPv2 (Broad, CTD2 2015 expanded data set): area under the dose-response curve, omics from DepMap.

File key ``data`` (required): ``CTRPv2.0_2015_ctd2_ExpandedDataset.zip``, extracted (``extract: true``) or
as is. Tab-separated files inside it:
- ``v20.data.curves_post_qc.txt``: experiment_id, master_cpd_id, area_under_curve;
- ``v20.meta.per_experiment.txt``: experiment_id -> master_ccl_id (several rows per experiment);
- ``v20.meta.per_cell_line.txt``: master_ccl_id, ccl_name, ccle_primary_site (the tissue);
- ``v20.meta.per_compound.txt``: master_cpd_id, cpd_name (the drug id), broad_cpd_id, cpd_smiles.

``response``: ``AUC``, the area under the fitted viability curve over the tested doses; lower is more
sensitive. Curves repeated for one (line, compound) are averaged. CTRP identifies lines by name only, so
``omics_source`` (a depmap source) is required and lines are matched to DepMap's Model.csv by normalized
name, with collision checks (see ``harmonize``). Views: those of the depmap source.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from . import depmap
from .common import ResponseTable, read_text_table, require_columns
from .harmonize import cell_line_table

SOURCE_TYPE = "ctrpv2"
MEASURES = {"AUC": (True, "mean")}
FILES = {
    "curves": ("*curves_post_qc.txt", ["experiment_id", "master_cpd_id", "area_under_curve"]),
    "experiments": ("*meta.per_experiment.txt", ["experiment_id", "master_ccl_id"]),
    "cell_lines": ("*meta.per_cell_line.txt", ["master_ccl_id", "ccl_name"]),
    "compounds": ("*meta.per_compound.txt", ["master_cpd_id", "cpd_name", "cpd_smiles"]),
}


def _read(path, part: str) -> pd.DataFrame:
    pattern, columns = FILES[part]
    table = read_text_table(path, pattern, "data", sep="\t", dtype=str)
    require_columns(table, columns, f"ctrpv2 file key 'data' ({path}), file {pattern}")
    return table


def read_response(path) -> ResponseTable:
    curves = _read(path, "curves")
    experiments = _read(path, "experiments")[["experiment_id", "master_ccl_id"]].drop_duplicates()
    if experiments["experiment_id"].duplicated().any():
        bad = sorted(set(experiments.loc[experiments["experiment_id"].duplicated(), "experiment_id"]))[:3]
        raise ValueError(f"ctrpv2 file key 'data' ({path}): experiments {bad} name more than one master_ccl_id")
    lines = _read(path, "cell_lines").drop_duplicates("master_ccl_id")
    compounds = _read(path, "compounds").drop_duplicates("master_cpd_id")

    curves = curves.merge(experiments, on="experiment_id", how="inner")
    curves = curves.merge(compounds[["master_cpd_id", "cpd_name"]], on="master_cpd_id", how="inner")
    auc = pd.to_numeric(curves["area_under_curve"], errors="coerce")
    pairs = pd.DataFrame({"key": curves["master_ccl_id"].values, "drug": curves["cpd_name"].str.strip().values,
                          "response": auc.values})
    pairs = pairs[np.isfinite(pairs["response"])].reset_index(drop=True)

    tissue = lines["ccle_primary_site"] if "ccle_primary_site" in lines else None
    cells = cell_line_table(lines["master_ccl_id"], lines["ccl_name"],
                            **({"tissue": tissue.values} if tissue is not None else {}))
    drugs = pd.DataFrame({"drug": compounds["cpd_name"].str.strip().values,
                          "smiles": compounds["cpd_smiles"].fillna("").values,
                          "broad_id": compounds.get("broad_cpd_id", pd.Series("", index=compounds.index)).values})
    drugs = drugs.drop_duplicates("drug")
    facts = {"file": str(path), "curves": int(len(curves)), "measure": "AUC", "aggregation": "mean"}
    return ResponseTable(pairs=pairs, cell_lines=cells, drugs=drugs, measure="AUC", lower_is_sensitive=True,
                         aggregation="mean", facts=facts)


def build_from_files(files: dict, spec: dict, omics_files: dict | None = None):
    """The source-registry entry point (``drp.sources.BUILDERS``)."""
    return depmap.build_response_with_depmap_omics(files, spec, omics_files, SOURCE_TYPE, MEASURES, "data",
                                                   read_response)
