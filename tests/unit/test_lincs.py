"""drp.sources.lincs on small SYNTHETIC files written in the real GEO LINCS L1000 formats (GCTX = HDF5 with the
matrix stored transposed, as cmapPy writes it; sig_info/gene_info TSVs, one gzipped)."""

import gzip
import logging

import h5py
import numpy as np
import pandas as pd
import pytest

from drp.sources.lincs import build_perturbation_pairs, read_gctx, read_gene_info, read_sig_info


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
