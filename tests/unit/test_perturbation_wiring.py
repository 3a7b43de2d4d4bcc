"""LINCS pairs reach Dr.VAE's training through the DAG, for training cell lines only.

The GCTX and sig_info/inst_info/gene_info files here are SYNTHETIC, written in the real formats.
"""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import yaml
from test_lincs import INST_COLUMNS, inst, write_synthetic_gctx

from drp.config import ConfigError, validate_config
from drp.models.drvae import DrVAE, DrVAEModule
from drp.stages.prepare import build_perturbations
from drp.stages.train import perturbation_arrays

REPO = Path(__file__).resolve().parents[2]
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"


@pytest.fixture
def synthetic_lincs(tmp_path):
    genes = pd.DataFrame({"pr_gene_id": ["1", "2", "3", "4"], "pr_gene_symbol": ["GA", "GB", "GC", "GD"],
                          "pr_is_lm": [1, 1, 1, 0]})
    sigs = pd.DataFrame({
        "sig_id": ["t1", "t2", "t3", "c1", "c2", "c3", "t4"],
        "pert_iname": ["drug1", "Drug2", "drug1", "DMSO", "DMSO", "DMSO", "drug1"],
        "pert_type": ["trt_cp", "trt_cp", "trt_cp", "ctl_vehicle", "ctl_vehicle", "ctl_vehicle", "trt_cp"],
        "cell_id": ["MCF-7", "MCF7", "A549", "MCF7", "MCF7", "A549", "MCF7"],
        "pert_dose": [10, 10, 10, -666, -666, -666, 10],
        "pert_time": [6, 6, 6, 6, 6, 6, 24],
    })
    values = pd.DataFrame(np.arange(28, dtype=np.float32).reshape(4, 7), index=genes.pr_gene_id, columns=sigs.sig_id)
    paths = {"gctx": write_synthetic_gctx(tmp_path / "level5.gctx", values),
             "sig_info": tmp_path / "sig_info.txt", "gene_info": tmp_path / "gene_info.txt",
             "cell_lines": tmp_path / "cell_lines.tsv", "drugs": tmp_path / "drugs.tsv"}
    sigs.to_csv(paths["sig_info"], sep="\t", index=False)
    genes.to_csv(paths["gene_info"], sep="\t", index=False)
    pd.DataFrame({"cell_line": ["MCF7", "A549"], "tissue": ["breast", "lung_NSCLC"]}).to_csv(paths["cell_lines"], sep="\t", index=False)
    pd.DataFrame({"drug": ["Drug1", "Drug2"], "smiles": ["C", "CC"]}).to_csv(paths["drugs"], sep="\t", index=False)
    return paths, values


def test_pairs_are_built_and_mapped_onto_the_fold_features(synthetic_lincs, tmp_path):
    paths, values = synthetic_lincs
    out = tmp_path / "perturbations.h5ad"
    build_perturbations(paths, {"pert_time": 6}, out)  # the rule's stage; only sig_info given: level 5
    pairs = ad.read_h5ad(out)
    assert pairs.uns["lincs"]["level"] == 5 and pairs.uns["lincs"]["scale"] == "zscore"
    assert sorted(pairs.obs_names) == ["t1", "t2", "t3"] and list(pairs.var_names) == ["GA", "GB", "GC"]
    np.testing.assert_allclose(pairs["t1"].layers["control"][0], values[["c1", "c2"]].mean(axis=1)[:3])

    # fold features: GB and GC are measured by LINCS, XX is not; only MCF7 is a training cell line
    expression = ad.AnnData(np.zeros((2, 3), np.float32), obs=pd.DataFrame(index=["MCF7", "OTHER"]),
                            var=pd.DataFrame(index=["GC", "XX", "GB"]))
    arrays = perturbation_arrays(out, expression, cell_lines=["MCF7"])
    assert sorted(arrays["drug"]) == ["Drug1", "Drug2"]  # A549 (not a training cell line) dropped
    row = arrays["drug"].index("Drug1")
    np.testing.assert_allclose(arrays["x2"][row], [values.loc["3", "t1"], 0.0, values.loc["2", "t1"]])
    assert arrays["x1"].shape == (2, 3) and (arrays["x1"][:, 1] == 0).all()


def test_pairs_in_another_feature_space_are_refused():
    model = DrVAE(latent_dim=4, encoder_hidden=[8], decoder_hidden=[8], rank=1, max_epochs=1, progress=False)
    model.module = DrVAEModule(5, 1, 4, [8], [8], 1, 0.0)
    model.drugs = ["Drug1"]
    with pytest.raises(ValueError, match="perturbation pairs have 3 features but the model encodes 5"):
        model._perturbation_tensors({"x1": np.zeros((1, 3)), "x2": np.zeros((1, 3)), "drug": ["Drug1"]}, "cpu")


def test_dag_builds_pairs_and_feeds_them_to_training(synthetic_lincs, tmp_path):
    paths, _ = synthetic_lincs
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["datasets"]["gdsc2"]["perturbations"] = {k: str(paths[k]) for k in ("gctx", "sig_info", "gene_info")}
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(config))
    result = subprocess.run([sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
                             "--directory", str(tmp_path / "run"), "--configfile", str(config_path), "--dry-run",
                             "--forceall", "results/gdsc2/LCO/fold0/drvae/model"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "build_perturbations_gdsc2" in result.stdout
    assert "results/gdsc2/data/perturbations.h5ad" in result.stdout.split("rule train:")[-1]


@pytest.fixture
def synthetic_level3(tmp_path):
    genes = pd.DataFrame({"pr_gene_id": ["1", "2", "3", "4"], "pr_gene_symbol": ["GA", "GB", "GC", "GD"],
                          "pr_is_lm": [1, 1, 1, 0]})
    rows = [inst("t1", "SYN_P1", "drug1", "trt_cp", "MCF-7"), inst("c1", "SYN_P1", "DMSO", "ctl_vehicle", "MCF7", -666),
            inst("t2", "SYN_P2", "Drug2", "trt_cp", "MCF7"), inst("c2", "SYN_P2", "DMSO", "ctl_vehicle", "MCF7", -666)]
    insts = pd.DataFrame(rows, columns=INST_COLUMNS)
    values = pd.DataFrame(8 + np.arange(16, dtype=np.float32).reshape(4, 4) / 10, index=genes.pr_gene_id,
                          columns=insts.inst_id)
    paths = {"gctx": write_synthetic_gctx(tmp_path / "synthetic_level3.gctx", values),
             "inst_info": tmp_path / "synthetic_inst_info.txt", "gene_info": tmp_path / "gene_info.txt",
             "cell_lines": tmp_path / "cell_lines.tsv", "drugs": tmp_path / "drugs.tsv",
             "expression": tmp_path / "expression.h5ad"}
    insts.to_csv(paths["inst_info"], sep="\t", index=False)
    genes.to_csv(paths["gene_info"], sep="\t", index=False)
    pd.DataFrame({"cell_line": ["MCF7"], "tissue": ["breast"]}).to_csv(paths["cell_lines"], sep="\t", index=False)
    pd.DataFrame({"drug": ["Drug1", "Drug2"], "smiles": ["C", "CC"]}).to_csv(paths["drugs"], sep="\t", index=False)
    ad.AnnData(np.zeros((1, 3), np.float32), obs=pd.DataFrame(index=["MCF7"]),
               var=pd.DataFrame(index=["GB", "GD", "ZZ"])).write_h5ad(paths["expression"])
    return paths, values


def test_level3_stage_writes_plate_matched_log2_pairs(synthetic_level3, tmp_path):
    paths, values = synthetic_level3
    out = tmp_path / "perturbations.h5ad"
    build_perturbations(paths, {"level": 3, "pert_time": 6}, out)
    pairs = ad.read_h5ad(out)
    assert list(pairs.obs_names) == ["t1", "t2"] and list(pairs.var_names) == ["GA", "GB", "GC"]
    np.testing.assert_allclose(pairs.layers["control"], values[["c1", "c2"]].T.to_numpy()[:, :3])
    stats = pairs.uns["lincs"]
    assert stats["level"] == 3 and stats["scale"] == "log2" and stats["paired_plate_matched"] == 2
    assert stats["genes"] == 3 and stats["genes_in_expression_view"] == 1  # GB; GD is not a landmark


def dry_run(config, tmp_path, target="results/gdsc2/LCO/fold0/drvae/model"):
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(config))
    return subprocess.run([sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
                           "--directory", str(tmp_path / "run"), "--configfile", str(config_path), "--dry-run",
                           "--forceall", target], capture_output=True, text=True, timeout=300)


def test_dag_passes_inst_info_for_level3(synthetic_level3, tmp_path):
    paths, _ = synthetic_level3
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["datasets"]["gdsc2"]["perturbations"] = {k: str(paths[k]) for k in ("gctx", "inst_info", "gene_info")}
    result = dry_run(config, tmp_path, "results/gdsc2/data/perturbations.h5ad")
    assert result.returncode == 0, result.stderr[-3000:]
    job = result.stdout.split("rule build_perturbations_gdsc2:")[-1]
    assert str(paths["inst_info"]) in job and "sig_info" not in job
    assert "results/gdsc2/data/expression.h5ad" in job


def test_config_level_defaults_and_required_metadata():
    shipped = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    lincs = {"gctx": "l.gctx", "gene_info": "g.txt"}

    def validated(perturbations):
        config = copy.deepcopy(shipped)
        config["datasets"]["gdsc2"]["perturbations"] = perturbations
        return validate_config(config, SCHEMA)["datasets"]["gdsc2"]["perturbations"]

    level3 = validated({**lincs, "inst_info": "i.txt"})
    assert level3["level"] == 3 and level3["landmarks_only"] is True and level3["fallback_across_plates"] is False
    assert validated({**lincs, "sig_info": "s.txt"})["level"] == 5  # configs written for level 5 keep it
    assert validated({**lincs, "sig_info": "s.txt", "inst_info": "i.txt", "level": 5})["level"] == 5
    with pytest.raises(ConfigError, match="perturbations: level 3 needs inst_info"):
        validated({**lincs, "sig_info": "s.txt", "level": 3})
    with pytest.raises(ConfigError, match="level 5 needs sig_info"):
        validated({**lincs, "inst_info": "i.txt", "level": 5})
    with pytest.raises(ConfigError, match="level"):
        validated({**lincs, "inst_info": "i.txt", "level": 4})
