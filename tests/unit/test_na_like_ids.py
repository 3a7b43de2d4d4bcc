"""Ids that pandas reads as missing by default (``NA``, ``None``, ``nan``, ``null``, ``N/A``, ``NaN``, the empty
string) are ids like any other: a tiny synthetic data set with such drugs, cell lines and tissues goes through the
pipeline's writers and readers (data set files, split table, a preprocessed view, the training stage's pairs) with
every id intact."""

import numpy as np
import pandas as pd
import pytest

from drp.dataset import Dataset, make_view, read_cell_lines, read_drugs, read_response, read_view
from drp.io import write_table
from drp.splits import MODES, make_splits, read_splits
from drp.stages.prepare import preprocess_views, split_dataset
from drp.stages.train import fold_pairs

CELL_LINES = ["None", "", "NA", "nan", "null", "N/A", "NaN", "C1", "C2", "C3", "C4", "C5", "C6"]
DRUGS = ["NA", "None", "nan", "null", "N/A", "NaN", "", "D1", "D2"]
TISSUES = ["NA", "None", "nan", "lung"]


def _dataset() -> Dataset:
    rng = np.random.default_rng(0)
    obs = pd.DataFrame({"tissue": [TISSUES[i % len(TISSUES)] for i in range(len(CELL_LINES))]},
                       index=pd.Index(CELL_LINES, name="cell_line"))
    view = make_view(rng.normal(size=(len(CELL_LINES), 5)), CELL_LINES, [f"g{i}" for i in range(5)], obs)
    response = pd.DataFrame([(c, d, float(rng.normal())) for c in CELL_LINES for d in DRUGS],
                            columns=["cell_line", "drug", "response"])
    drugs = pd.DataFrame({"drug": DRUGS, "smiles": ["C"] * 3 + [""] * (len(DRUGS) - 3)})
    return Dataset({"expression": view}, response, drugs, "LN_IC50", True)


@pytest.fixture()
def data_dir(tmp_path):
    directory = tmp_path / "data"
    _dataset().write(directory)
    return directory


def test_dataset_files_keep_na_like_ids(data_dir):
    response = read_response(data_dir / "response.parquet")
    assert response["cell_line"].tolist() == [c for c in CELL_LINES for _ in DRUGS]
    assert response["drug"].tolist() == DRUGS * len(CELL_LINES)
    assert not response[["cell_line", "drug"]].isna().any().any()

    drugs = read_drugs(data_dir / "drugs.tsv")
    assert drugs["drug"].tolist() == DRUGS
    assert drugs["smiles"].tolist() == ["C"] * 3 + [""] * (len(DRUGS) - 3)  # unknown SMILES stay empty text

    cell_lines = read_cell_lines(data_dir / "cell_lines.tsv")
    assert cell_lines.index.tolist() == CELL_LINES
    assert cell_lines["tissue"].tolist() == [TISSUES[i % len(TISSUES)] for i in range(len(CELL_LINES))]

    view = read_view(data_dir / "expression.h5ad")
    assert view.obs_names.tolist() == CELL_LINES
    assert view.obs["tissue"].astype(str).tolist() == cell_lines["tissue"].tolist()

    again = Dataset.read(data_dir)
    again.validate()
    assert again.cell_lines.tolist() == CELL_LINES


@pytest.mark.parametrize("mode", MODES)
def test_split_table_keeps_na_like_ids(tmp_path, mode):
    data = _dataset()
    splits = make_splits(data.response, data.tissue, mode, n_folds=3, seed=0, validation_fraction=0.5)
    write_table(tmp_path / "splits.tsv", splits)
    back = read_splits(tmp_path / "splits.tsv")
    assert not back[["cell_line", "drug", "group"]].isna().any().any()
    pd.testing.assert_frame_equal(back, splits, check_dtype=False)
    assert set(back["drug"]) == set(DRUGS) and set(back["cell_line"]) == set(CELL_LINES)


def test_stages_keep_na_like_ids(data_dir, tmp_path):
    """split_dataset -> preprocess_views -> the training stage's fold_pairs merge (a drug named NA used to
    make it fail with a MergeError)."""
    split_dataset(data_dir / "response.parquet", data_dir / "cell_lines.tsv", tmp_path / "splits.tsv", "LTO",
                  n_folds=3, seed=0, validation_fraction=0.5)  # 4 tissues: 2 inner folds
    splits = read_splits(tmp_path / "splits.tsv")
    assert set(splits["group"]) == set(TISSUES)

    processed = tmp_path / "features" / "expression.h5ad"
    preprocess_views({"expression": data_dir / "expression.h5ad"}, tmp_path / "splits.tsv", 0, {},
                     {"expression": processed})
    assert set(read_view(processed).obs_names) == set(CELL_LINES)

    paths = {"response": data_dir / "response.parquet", "splits": tmp_path / "splits.tsv"}
    for fold in range(3):
        pairs = fold_pairs(paths, fold)
        assert len(pairs) == len(CELL_LINES) * len(DRUGS)
        assert set(pairs["drug"]) == set(DRUGS) and set(pairs["cell_line"]) == set(CELL_LINES)
        assert set(pairs["role"]) == {"train", "validation", "test"}


def test_a_plug_in_view_keeps_cell_lines_named_like_missing_values(tmp_path):
    """SYNTHETIC: a view whose cell lines are named "NA" and "None" reported them as "empty id"; the value
    columns still read "NA" and empty fields as missing."""
    from drp.sources.folder import _Table

    path = tmp_path / "expression.csv"
    path.write_text("cell_line,GENE1,GENE2\nNA,1.5,NA\nNone,,2.0\nnull,3.0,4.0\n")
    ids, matrix = _Table(path, "cell_line and feature columns").numbers()
    assert ids.tolist() == ["NA", "None", "null"]
    assert np.isnan(matrix[0, 1]) and np.isnan(matrix[1, 0]) and matrix[2].tolist() == [3.0, 4.0]


def test_a_true_false_view_column_is_read_as_one_zero_with_a_warning(tmp_path, caplog):
    """SYNTHETIC: TRUE/FALSE columns became 1/0 without a word."""
    import logging

    from drp.sources.folder import _Table

    path = tmp_path / "mutation.csv"
    path.write_text("cell_line,TP53,KRAS\nA,TRUE,0\nB,FALSE,1\n")
    with caplog.at_level(logging.WARNING, logger="drp.sources.folder"):
        ids, matrix = _Table(path, "cell_line and feature columns").numbers()
    assert matrix[:, 0].tolist() == [1.0, 0.0]
    assert "column 2 ('TP53') holds TRUE/FALSE values; read as 1/0" in caplog.text
