"""drp.sources.lincs on small SYNTHETIC files written in the real GEO LINCS L1000 formats (GCTX = HDF5 with the
matrix stored transposed, as cmapPy writes it; sig_info/inst_info/gene_info TSVs, some gzipped)."""

import gzip
import logging

import h5py
import numpy as np
import pandas as pd
import pytest

from drp.sources.lincs import (build_level3_pairs, build_perturbation_pairs, perturbation_level, read_gctx,
                               read_gene_info, read_inst_info, read_sig_info)


def write_synthetic_gctx(path, data: pd.DataFrame, drop_key: str | None = None):
    """Write genes x signatures ``data`` as GCTX: ids as fixed-length byte strings, the matrix as
    (n_columns, n_rows) float32 under 0/DATA/0/matrix (cmapPy's layout). Synthetic data only."""
    with h5py.File(path, "w") as handle:
        handle.attrs["version"] = "GCTX1.0"
        datasets = {
            "0/DATA/0/matrix": data.to_numpy(np.float32).T,
            "0/META/ROW/id": np.array([s.encode() for s in data.index], dtype="S"),
            "0/META/COL/id": np.array([s.encode() for s in data.columns], dtype="S"),
        }
        for key, values in datasets.items():
            if key != drop_key:
                handle.create_dataset(key, data=values)
    return path


def grid(rows, cols):
    """value = 100 * row + col, so a transposed or shuffled read is visible."""
    return pd.DataFrame([[100 * r + c for c in range(len(cols))] for r in range(len(rows))],
                        index=rows, columns=cols, dtype=np.float32)


@pytest.fixture
def small_gctx(tmp_path):
    data = grid([f"g{i}" for i in range(4)], [f"s{j}" for j in range(6)])
    return write_synthetic_gctx(tmp_path / "small.gctx", data), data


def test_reads_values_exactly_in_gene_by_signature_orientation(small_gctx):
    path, data = small_gctx
    with h5py.File(path) as handle:
        assert handle["0/DATA/0/matrix"].shape == (6, 4)  # stored (n_cols, n_rows)
    frame = read_gctx(path)
    assert frame.shape == (4, 6) and frame.dtypes.eq(np.float32).all()
    assert list(frame.index) == list(data.index) and list(frame.columns) == list(data.columns)
    assert frame.loc["g2", "s5"] == 205
    np.testing.assert_array_equal(frame.to_numpy(), data.to_numpy())


def test_column_and_row_subsets_come_back_in_requested_order(small_gctx):
    path, data = small_gctx
    frame = read_gctx(path, cols=["s4", "s1", "s4"])
    assert list(frame.columns) == ["s4", "s1", "s4"] and list(frame.index) == list(data.index)
    np.testing.assert_array_equal(frame.to_numpy(), data[["s4", "s1", "s4"]].to_numpy())
    both = read_gctx(path, rows=["g3", "g0"], cols=["s2"])
    np.testing.assert_array_equal(both.to_numpy(), [[302], [2]])
    rows_only = read_gctx(path, rows=["g1"])
    np.testing.assert_array_equal(rows_only.to_numpy(), [[100, 101, 102, 103, 104, 105]])


def test_missing_id_is_named(small_gctx):
    path, _ = small_gctx
    with pytest.raises(KeyError, match="nope") as err:
        read_gctx(path, cols=["s1", "nope"])
    assert str(path) in str(err.value)
    with pytest.raises(KeyError, match="g9"):
        read_gctx(path, rows=["g9"])


def test_missing_hdf5_key_names_the_file_and_key(tmp_path):
    path = write_synthetic_gctx(tmp_path / "broken.gctx", grid(["g0"], ["s0"]), drop_key="0/META/COL/id")
    with pytest.raises(KeyError, match="0/META/COL/id") as err:
        read_gctx(path)
    assert str(path) in str(err.value)


def test_gzipped_gctx_asks_for_gunzip(tmp_path):
    path = write_synthetic_gctx(tmp_path / "x.gctx", grid(["g0"], ["s0"]))
    zipped = tmp_path / "x.gctx.gz"
    zipped.write_bytes(gzip.compress(path.read_bytes()))
    with pytest.raises(ValueError, match="gunzip"):
        read_gctx(zipped)


def test_wrongly_oriented_matrix_is_rejected(tmp_path):
    path = tmp_path / "flipped.gctx"
    with h5py.File(path, "w") as handle:
        handle["0/DATA/0/matrix"] = np.zeros((2, 3), np.float32)  # (n_rows, n_cols): not GCTX
        handle["0/META/ROW/id"] = np.array([b"g0", b"g1"])
        handle["0/META/COL/id"] = np.array([b"s0", b"s1", b"s2"])
    with pytest.raises(ValueError, match="expected"):
        read_gctx(path)


SIG_COLUMNS = ["sig_id", "pert_id", "pert_iname", "pert_type", "cell_id", "pert_dose", "pert_dose_unit",
               "pert_idose", "pert_time", "pert_time_unit", "pert_itime", "distil_id"]


def sig(sig_id, iname, ptype, cell, dose, time):
    return [sig_id, "BRD-X" if ptype == "trt_cp" else "DMSO", iname, ptype, cell, dose, "µM",
            f"{dose} µM", time, "h", f"{time} h", f"{sig_id}_rep"]


@pytest.fixture
def lincs_files(tmp_path):
    rows = [
        sig("t_mcf7", "Vorinostat", "trt_cp", "MCF7", 10.0, 6),      # kept
        sig("t_mcf7_lo", " vorinostat ", "trt_cp", "MCF7", 1.0, 6),  # kept (name stripped, case)
        sig("t_mcf7_24", "vorinostat", "trt_cp", "MCF7", 10.0, 24),  # other time
        sig("t_other_drug", "imatinib", "trt_cp", "MCF7", 10.0, 6),  # drug not requested
        sig("t_pc3", "vorinostat", "trt_cp", "PC3", 10.0, 6),        # cell line not requested
        sig("t_a549", "vorinostat", "trt_cp", "A549", 10.0, 6),      # no control -> skipped
        sig("c_mcf7_a", "DMSO", "ctl_vehicle", "MCF7", -666, 6),
        sig("c_mcf7_b", "DMSO", "ctl_vehicle", "MCF7", -666, 6),
        sig("c_mcf7_24", "DMSO", "ctl_vehicle", "MCF7", -666, 24),   # other time, not in the mean
        sig("c_a549_24", "DMSO", "ctl_vehicle", "A549", -666, 24),   # A549 control only at 24 h
        sig("c_pc3", "DMSO", "ctl_vehicle", "PC3", -666, 6),
        sig("u_mcf7", "UnTrt", "ctl_untrt", "MCF7", -666, 6),        # not a vehicle control
    ]
    sig_info = pd.DataFrame(rows, columns=SIG_COLUMNS)
    sig_path = tmp_path / "sig_info.txt.gz"
    with gzip.open(sig_path, "wt") as handle:
        sig_info.to_csv(handle, sep="\t", index=False)

    gene_info = pd.DataFrame({"pr_gene_id": ["5720", "466", "6009", "2101"],
                              "pr_gene_symbol": ["PSME1", "ATF1", "RHEB", "ESRRA"],
                              "pr_is_lm": [1, 0, 1, 1], "pr_is_bing": [1, 1, 1, 0]})
    gene_path = tmp_path / "gene_info.txt"
    gene_info.to_csv(gene_path, sep="\t", index=False)

    data = grid(list(gene_info.pr_gene_id), list(sig_info.sig_id))
    gctx_path = write_synthetic_gctx(tmp_path / "level5.gctx", data)
    return gctx_path, sig_path, gene_path, data


def test_reads_sig_info_gzipped_and_gene_info_plain(lincs_files):
    _, sig_path, gene_path, _ = lincs_files
    sig_info, gene_info = read_sig_info(sig_path), read_gene_info(gene_path)
    assert list(sig_info.columns) == SIG_COLUMNS and len(sig_info) == 12
    assert sig_info.pert_time.dtype.kind in "if" and sig_info.pert_dose.iloc[-1] == -666
    assert gene_info.pr_gene_id.tolist() == ["5720", "466", "6009", "2101"]
    assert gene_info.pr_is_lm.tolist() == [1, 0, 1, 1]


def test_sig_info_missing_column_is_named(tmp_path):
    path = tmp_path / "sig_info.txt"
    pd.DataFrame([sig("s", "d", "trt_cp", "MCF7", 1, 6)], columns=SIG_COLUMNS).drop(columns="pert_time") \
        .to_csv(path, sep="\t", index=False)
    with pytest.raises(ValueError, match="pert_time") as err:
        read_sig_info(path)
    assert str(path) in str(err.value)


def test_pairs_treated_with_mean_of_same_cell_and_time_vehicle_controls(lincs_files, caplog):
    gctx_path, sig_path, gene_path, data = lincs_files
    with caplog.at_level(logging.INFO, logger="drp.sources.lincs"):
        x1, x2, pairs = build_perturbation_pairs(gctx_path, read_sig_info(sig_path), read_gene_info(gene_path),
                                                 cell_lines=["MCF-7", "A-549"], drugs=["VORINOSTAT "], pert_time=6)
    landmarks = ["5720", "6009", "2101"]
    assert list(x2.var_names) == ["PSME1", "RHEB", "ESRRA"] == list(x1.var_names)  # landmarks, symbols
    assert list(x2.obs_names) == ["t_mcf7_lo", "t_mcf7"] == list(x1.obs_names)  # sorted by dose
    assert x2.obs.cell_line.tolist() == ["MCF7", "MCF7"] and x2.obs.drug.tolist() == ["VORINOSTAT"] * 2
    assert x2.obs.dose.tolist() == [1.0, 10.0] and x2.obs.time.tolist() == [6, 6]
    assert x2.obs.sig_id.tolist() == ["t_mcf7_lo", "t_mcf7"]
    assert x1.X.dtype == np.float32 == x2.X.dtype
    np.testing.assert_array_equal(x2.X, data.loc[landmarks, ["t_mcf7_lo", "t_mcf7"]].T.to_numpy())
    control = data.loc[landmarks, ["c_mcf7_a", "c_mcf7_b"]].mean(axis=1).to_numpy()
    np.testing.assert_allclose(x1.X, np.vstack([control, control]))
    assert pairs.sig_id.tolist() == ["t_mcf7_lo", "t_mcf7"] and pairs.n_controls.tolist() == [2, 2]
    assert pairs.cell_id.tolist() == ["MCF7", "MCF7"]
    assert x2.uns["lincs"]["skipped_no_control"] == 1 and x2.uns["lincs"]["pairs"] == 2
    assert "skipped 1" in caplog.text and "A549" in caplog.text


def test_pairs_from_paths_all_genes_and_other_time(lincs_files):
    gctx_path, sig_path, gene_path, data = lincs_files
    x1, x2, _ = build_perturbation_pairs(gctx_path, sig_path, gene_path, cell_lines=["mcf7"],
                                         drugs=["vorinostat"], pert_time=24, landmark_only=False)
    assert list(x2.var_names) == ["PSME1", "ATF1", "RHEB", "ESRRA"]
    assert list(x2.obs_names) == ["t_mcf7_24"]
    np.testing.assert_array_equal(x1.X[0], data["c_mcf7_24"].to_numpy())


def test_no_pair_left_is_an_error(lincs_files):
    gctx_path, sig_path, gene_path, _ = lincs_files
    with pytest.raises(ValueError, match="no treated signatures"):
        build_perturbation_pairs(gctx_path, sig_path, gene_path, cell_lines=["A549"], drugs=["vorinostat"])


# ---- level 3: instances (wells) paired with vehicle controls of the same RNA plate. SYNTHETIC files. ----

INST_COLUMNS = ["inst_id", "rna_plate", "rna_well", "pert_id", "pert_iname", "pert_type", "pert_dose",
                "pert_dose_unit", "pert_time", "pert_time_unit", "cell_id"]


def inst(inst_id, plate, iname, ptype, cell, dose=10.0, time=6):
    return [inst_id, plate, "A01", "BRD-X" if ptype == "trt_cp" else "DMSO", iname, ptype, dose,
            "µM" if ptype == "trt_cp" else "%", time, "h", cell]


@pytest.fixture
def level3_files(tmp_path):
    rows = [
        inst("t_p1", "SYN_MCF7_6H_P1", "Vorinostat", "trt_cp", "MCF7"),         # plate P1 has 2 controls
        inst("t_p1_lo", "SYN_MCF7_6H_P1", " vorinostat ", "trt_cp", "MCF7", 1.0),
        inst("t_p2", "SYN_MCF7_6H_P2", "vorinostat", "trt_cp", "MCF-7"),        # plate P2 has 1 control
        inst("t_p3", "SYN_MCF7_6H_P3", "vorinostat", "trt_cp", "MCF7"),         # plate P3: no control
        inst("t_24", "SYN_MCF7_24H_P4", "vorinostat", "trt_cp", "MCF7", time=24),  # other time
        inst("t_other", "SYN_MCF7_6H_P1", "imatinib", "trt_cp", "MCF7"),        # drug not requested
        inst("t_a549", "SYN_A549_6H_P5", "vorinostat", "trt_cp", "A549"),       # A549: no control at 6 h
        inst("c_p1_a", "SYN_MCF7_6H_P1", "DMSO", "ctl_vehicle", "MCF7", -666),
        inst("c_p1_b", "SYN_MCF7_6H_P1", "DMSO", "ctl_vehicle", "MCF7", -666),
        inst("c_p2", "SYN_MCF7_6H_P2", "DMSO", "ctl_vehicle", "MCF7", -666),
        inst("c_24", "SYN_MCF7_24H_P4", "DMSO", "ctl_vehicle", "MCF7", -666, 24),  # other time
        inst("c_a549_24", "SYN_A549_24H_P6", "DMSO", "ctl_vehicle", "A549", -666, 24),
        inst("u_p3", "SYN_MCF7_6H_P3", "UnTrt", "ctl_untrt", "MCF7", -666),     # not a vehicle control
    ]
    inst_info = pd.DataFrame(rows, columns=INST_COLUMNS)
    inst_path = tmp_path / "synthetic_inst_info.txt.gz"
    with gzip.open(inst_path, "wt") as handle:
        inst_info.to_csv(handle, sep="\t", index=False)
    gene_info = pd.DataFrame({"pr_gene_id": ["5720", "466", "6009", "2101"],
                              "pr_gene_symbol": ["PSME1", "ATF1", "RHEB", "ESRRA"],
                              "pr_is_lm": [1, 0, 1, 1]})
    gene_path = tmp_path / "synthetic_gene_info.txt"
    gene_info.to_csv(gene_path, sep="\t", index=False)
    # log2-like values: 8 + (100 * gene + instance) / 100, distinct per (gene, instance)
    data = 8 + grid(list(gene_info.pr_gene_id), list(inst_info.inst_id)) / 100
    gctx_path = write_synthetic_gctx(tmp_path / "synthetic_level3.gctx", data)
    return gctx_path, inst_path, gene_path, data


def test_level3_x1_is_the_mean_of_same_plate_controls_only(level3_files, caplog):
    gctx_path, inst_path, gene_path, data = level3_files
    with caplog.at_level(logging.INFO, logger="drp.sources.lincs"):
        x1, x2, pairs = build_level3_pairs(gctx_path, inst_path, gene_path, cell_lines=["MCF-7", "A-549"],
                                           drugs=["VORINOSTAT"], pert_time=6)
    landmarks = ["5720", "6009", "2101"]
    assert list(x2.var_names) == ["PSME1", "RHEB", "ESRRA"] == list(x1.var_names)
    assert list(x2.obs_names) == ["t_p1_lo", "t_p1", "t_p2"] == list(x1.obs_names)  # t_p3 skipped: no control
    assert x2.obs.rna_plate.tolist() == ["SYN_MCF7_6H_P1", "SYN_MCF7_6H_P1", "SYN_MCF7_6H_P2"]
    assert x2.obs.control_match.tolist() == ["plate"] * 3 and x2.obs.n_controls.tolist() == [2, 2, 1]
    assert x2.obs.drug.tolist() == ["VORINOSTAT"] * 3 and x2.obs.cell_line.tolist() == ["MCF7"] * 3
    np.testing.assert_array_equal(x2.X, data.loc[landmarks, ["t_p1_lo", "t_p1", "t_p2"]].T.to_numpy())
    plate1 = data.loc[landmarks, ["c_p1_a", "c_p1_b"]].mean(axis=1).to_numpy()
    plate2 = data.loc[landmarks, "c_p2"].to_numpy()
    np.testing.assert_allclose(x1.X, np.vstack([plate1, plate1, plate2]), rtol=1e-6)
    all_plates = data.loc[landmarks, ["c_p1_a", "c_p1_b", "c_p2"]].mean(axis=1).to_numpy()
    assert not np.allclose(x1.X[2], all_plates)  # not the cell line's mean over plates
    assert pairs.inst_id.tolist() == ["t_p1_lo", "t_p1", "t_p2"] and pairs.cell_id.tolist()[2] == "MCF-7"
    stats = x2.uns["lincs"]
    assert stats["level"] == 3 and stats["scale"] == "log2" and stats["genes"] == 3 and stats["landmarks_only"]
    assert (stats["paired_plate_matched"], stats["paired_fallback"], stats["skipped_no_plate_control"],
            stats["skipped_no_control"], stats["pairs"]) == (3, 0, 1, 1, 3)
    assert stats["controls_used"] == 3  # the 24 h control and other plates' controls are not read in
    assert "3 plate-matched, 0 fallback" in caplog.text and "1 skipped without a same-plate control" in caplog.text
    assert "1 without any control" in caplog.text


def test_level3_fallback_across_plates_uses_the_cell_lines_controls_at_that_time(level3_files):
    gctx_path, inst_path, gene_path, data = level3_files
    x1, x2, _ = build_level3_pairs(gctx_path, inst_path, gene_path, cell_lines=["MCF7", "A549"],
                                   drugs=["vorinostat"], fallback_across_plates=True)
    assert list(x2.obs_names) == ["t_p1_lo", "t_p1", "t_p2", "t_p3"]
    assert x2.obs.control_match.tolist() == ["plate", "plate", "plate", "fallback"]
    landmarks = ["5720", "6009", "2101"]
    same_time = data.loc[landmarks, ["c_p1_a", "c_p1_b", "c_p2"]].mean(axis=1).to_numpy()  # not c_24
    np.testing.assert_allclose(x1.X[3], same_time, rtol=1e-6)
    np.testing.assert_allclose(x1.X[2], data.loc[landmarks, "c_p2"].to_numpy())  # plate match still preferred
    assert x2.obs.n_controls.tolist()[3] == 3
    stats = x2.uns["lincs"]
    assert (stats["paired_plate_matched"], stats["paired_fallback"], stats["skipped_no_plate_control"],
            stats["skipped_no_control"]) == (3, 1, 0, 1)  # A549 has no 6 h control on any plate


def test_level3_all_genes_when_landmarks_only_is_off(level3_files):
    gctx_path, inst_path, gene_path, data = level3_files
    _, x2, _ = build_level3_pairs(gctx_path, read_inst_info(inst_path), read_gene_info(gene_path),
                                  cell_lines=["MCF7"], drugs=["vorinostat"], pert_time=24, landmark_only=False)
    assert list(x2.var_names) == ["PSME1", "ATF1", "RHEB", "ESRRA"] and list(x2.obs_names) == ["t_24"]
    assert x2.uns["lincs"]["genes"] == 4 and not x2.uns["lincs"]["landmarks_only"]
    np.testing.assert_array_equal(x2.X[0], data["t_24"].to_numpy())


@pytest.mark.parametrize("column", ["rna_plate", "inst_id", "pert_time"])
def test_inst_info_missing_column_is_named_with_the_file(tmp_path, column):
    path = tmp_path / "synthetic_inst_info.txt"
    pd.DataFrame([inst("i", "P", "d", "trt_cp", "MCF7")], columns=INST_COLUMNS).drop(columns=column) \
        .to_csv(path, sep="\t", index=False)
    with pytest.raises(ValueError, match=column) as err:
        read_inst_info(path)
    assert str(path) in str(err.value)
    with pytest.raises(ValueError, match=column):
        build_level3_pairs(tmp_path / "unused.gctx", path, pd.DataFrame(), ["MCF7"], ["d"])


def test_level3_without_any_pair_is_an_error(level3_files):
    gctx_path, inst_path, gene_path, _ = level3_files
    with pytest.raises(ValueError, match="no treated instances"):
        build_level3_pairs(gctx_path, inst_path, gene_path, cell_lines=["A549"], drugs=["vorinostat"],
                           fallback_across_plates=True)


def test_level5_records_its_scale(lincs_files):
    gctx_path, sig_path, gene_path, _ = lincs_files
    _, x2, _ = build_perturbation_pairs(gctx_path, sig_path, gene_path, cell_lines=["MCF7"], drugs=["vorinostat"])
    assert x2.uns["lincs"]["level"] == 5 and x2.uns["lincs"]["scale"] == "zscore"


def test_level_defaults_to_3_with_inst_info_and_5_with_sig_info_only():
    assert perturbation_level({"inst_info": "x"}) == 3
    assert perturbation_level({"sig_info": "x"}) == 5
    assert perturbation_level({"sig_info": "x"}, {"inst_info": "y"}) == 3
    assert perturbation_level({"level": 5, "inst_info": "x", "sig_info": "y"}) == 5


def test_level3_pairs_are_scaled_with_the_folds_statistics(level3_files, tmp_path):
    """log2 pairs go through the fold's (value - train_mean) / train_std, as the baseline omics did."""
    import anndata as ad

    from drp.features import fit_transform_view
    from drp.stages.train import perturbation_arrays

    gctx_path, inst_path, gene_path, data = level3_files
    x1, x2, _ = build_level3_pairs(gctx_path, inst_path, gene_path, cell_lines=["MCF7"], drugs=["vorinostat"])
    x2.layers["control"] = x1.X
    path = tmp_path / "synthetic_perturbations.h5ad"
    x2.write_h5ad(path)

    # a synthetic raw expression view (log2-like, 4 training cell lines); the fold keeps RHEB, XX and PSME1
    rng = np.random.default_rng(0)
    raw = ad.AnnData(rng.normal(8, 2, size=(5, 3)).astype(np.float32),
                     obs=pd.DataFrame({"tissue": ["t"] * 5}, index=["MCF7", "C1", "C2", "C3", "TEST"]),
                     var=pd.DataFrame(index=["RHEB", "XX", "PSME1"]))
    fitted = fit_transform_view(raw, pd.Index(["MCF7", "C1", "C2", "C3"]))
    assert list(fitted.var_names) == ["RHEB", "XX", "PSME1"]
    mean, std = fitted.var.train_mean.to_numpy(), fitted.var.train_std.to_numpy()

    arrays = perturbation_arrays(path, fitted, cell_lines=["MCF7"])
    assert arrays["x1"].shape == (3, 3) and arrays["drug"] == ["vorinostat"] * 3
    row = list(x2.obs_names).index("t_p2")
    expected_x2 = [(data.loc["6009", "t_p2"] - mean[0]) / std[0], 0.0, (data.loc["5720", "t_p2"] - mean[2]) / std[2]]
    np.testing.assert_allclose(arrays["x2"][row], expected_x2, rtol=1e-5)
    expected_x1 = [(data.loc["6009", "c_p2"] - mean[0]) / std[0], 0.0, (data.loc["5720", "c_p2"] - mean[2]) / std[2]]
    np.testing.assert_allclose(arrays["x1"][row], expected_x1, rtol=1e-5)
    # x2 - x1 is the log2 fold change over the same-plate control, in units of the training std
    np.testing.assert_allclose(arrays["x2"][row, 0] - arrays["x1"][row, 0],
                               (data.loc["6009", "t_p2"] - data.loc["6009", "c_p2"]) / std[0], rtol=1e-4)

    clipped = fit_transform_view(raw, pd.Index(["MCF7", "C1", "C2", "C3"]), clip=0.5)
    assert np.abs(perturbation_arrays(path, clipped, cell_lines=["MCF7"])["x2"]).max() <= 0.5

    unscaled = ad.AnnData(np.zeros((1, 1), np.float32), var=pd.DataFrame(index=["RHEB"]))
    with pytest.raises(ValueError, match="train_mean"):
        perturbation_arrays(path, unscaled, cell_lines=["MCF7"])
