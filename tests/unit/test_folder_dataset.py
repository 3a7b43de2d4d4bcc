"""drp.sources.folder: plug-in data sets (a folder with response.csv and one file per view).

Every test writes a small SYNTHETIC folder (6 cell lines, 3 drugs, made-up values) and breaks one thing;
the error must name the file, the line or column, and what was expected. The real-data run of a plug-in
folder is in tests/integration/test_plugin_dataset.py.
"""

from __future__ import annotations

import csv
import logging
import os
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse

from drp.dataset import UNKNOWN_TISSUE
from drp.sources.folder import DatasetFormatError, build_from_files, read_response, resolve_files


def build_from_folder(spec: dict):
    """As the build rule does: the files that resolve_files finds (the rule's inputs), then the build."""
    return build_from_files(resolve_files(spec), spec)


CELLS = ["CL1", "CL2", "CL3", "CL4", "CL5", "CL6"]
DRUGS = ["drugA", "drugB", "drugC"]
TISSUES = {"CL1": "lung", "CL2": "lung", "CL3": "breast", "CL4": "breast", "CL5": "skin", "CL6": ""}


def response_rows() -> list[str]:
    rows = ["cell_line,drug,response,tissue"]
    for i, cell in enumerate(CELLS):
        for j, drug in enumerate(DRUGS):
            rows.append(f"{cell},{drug},{0.5 * i - j:.2f},{TISSUES[cell]}")
    return rows  # header is line 1, (CL1, drugA) line 2, (CL1, drugB) line 3, ...


def expression_rows() -> list[str]:
    return ["cell_line,g1,g2,g3"] + [f"{cell},{i}.5,{2 * i},-{i}" for i, cell in enumerate(CELLS)]


def write_lines(path: Path, rows: list[str]) -> None:
    path.write_text("\n".join(rows) + "\n")


@pytest.fixture
def folder(tmp_path) -> Path:
    """A valid synthetic folder: response.csv, expression.csv, methylation.tsv."""
    write_lines(tmp_path / "response.csv", response_rows())
    write_lines(tmp_path / "expression.csv", expression_rows())
    write_lines(tmp_path / "methylation.tsv", ["id\tcg1\tcg2"] + [f"{c}\t0.{i}\t0.9" for i, c in enumerate(CELLS)])
    return tmp_path


def spec(folder: Path, **changes) -> dict:
    return {"folder": str(folder), "measure": "LN_IC50", "lower_is_sensitive": True,
            "views": ["expression", "methylation"], "min_cell_lines_per_drug": 3, **changes}


def error(folder: Path, **changes) -> str:
    with pytest.raises(DatasetFormatError) as info:
        build_from_folder(spec(folder, **changes))
    assert isinstance(info.value, ValueError)
    return str(info.value)


def replace_line(path: Path, number: int, text: str) -> None:
    """Replace line ``number`` (1-based, as an editor shows it)."""
    lines = path.read_text().split("\n")
    lines[number - 1] = text
    path.write_text("\n".join(lines))


# ----------------------------------------------------------------------------------- valid input


def test_valid_synthetic_folder_builds_the_canonical_dataset(folder):
    dataset = build_from_folder(spec(folder))
    assert dataset.measure == "LN_IC50" and dataset.lower_is_sensitive is True
    assert list(dataset.cell_lines) == CELLS
    assert list(dataset.views["expression"].var_names) == ["g1", "g2", "g3"]
    assert dataset.views["methylation"].X.dtype == np.float32
    np.testing.assert_array_equal(dataset.views["expression"].X[2], [2.5, 4.0, -2.0])
    assert dataset.tissue.to_dict() == {**TISSUES, "CL6": UNKNOWN_TISSUE}
    assert len(dataset.response) == 18 and list(dataset.response.columns) == ["cell_line", "drug", "response"]
    assert dataset.response.set_index(["cell_line", "drug"]).loc[("CL3", "drugB"), "response"] == 0.0
    assert dataset.drugs.smiles.tolist() == ["", "", ""]
    assert set(dataset.provenance["files"]) == {"response", "expression", "methylation"}


def test_cell_lines_and_drugs_tables_are_optional_extras(folder):
    write_lines(folder / "cell_lines.csv", ["cell_line,tissue,sex", "CL6,bone,F", "CL1,lung,M", "OTHER,liver,F"])
    write_lines(folder / "drugs.csv", ["drug,smiles", "drugA,CCO", "drugB,NA"])
    dataset = build_from_folder(spec(folder))
    obs = dataset.views["expression"].obs
    assert obs.loc["CL6", "tissue"] == "bone" and obs.loc["CL1", "sex"] == "M" and obs.loc["CL2", "sex"] == ""
    assert dataset.drugs.set_index("drug").smiles.to_dict() == {"drugA": "CCO", "drugB": "", "drugC": ""}


def test_files_override_the_default_names(folder):
    (folder / "expression.csv").rename(folder / "rna_seq_2024.csv")
    (folder / "response.csv").rename(folder / "ic50_screen.csv")
    dataset = build_from_folder(spec(folder, files={"expression": "rna_seq_2024.csv", "response": "ic50_screen.csv"}))
    assert dataset.views["expression"].n_vars == 3 and len(dataset.response) == 18


def test_exact_duplicate_rows_are_collapsed_with_a_warning(folder, caplog):
    rows = response_rows()
    write_lines(folder / "response.csv", rows + [rows[4], rows[7]])  # lines 20 and 21 repeat lines 5 and 8
    with caplog.at_level(logging.WARNING):
        dataset = build_from_folder(spec(folder))
    assert len(dataset.response) == 18
    assert "2 exact duplicate rows collapsed (lines 20, 21)" in caplog.text


def test_utf8_byte_order_mark_is_accepted(folder):
    # Excel's "CSV UTF-8" starts with a BOM; without stripping it the first column would be '\ufeffcell_line'
    path = folder / "response.csv"
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert len(build_from_folder(spec(folder)).response) == 18


def test_windows_line_ends_are_accepted(folder):
    path = folder / "expression.csv"
    path.write_bytes(path.read_bytes().replace(b"\n", b"\r\n"))
    assert build_from_folder(spec(folder)).views["expression"].n_vars == 3


def test_sparse_h5ad_view_is_accepted(folder):
    (folder / "methylation.tsv").unlink()
    matrix = scipy.sparse.csr_matrix(np.eye(6, 4, dtype=np.float64))
    ad.AnnData(matrix, obs=pd.DataFrame(index=CELLS[::-1]), var=pd.DataFrame(index=list("wxyz"))).write_h5ad(
        folder / "methylation.h5ad")
    view = build_from_folder(spec(folder)).views["methylation"]
    assert isinstance(view.X, np.ndarray) and list(view.obs_names) == CELLS
    np.testing.assert_array_equal(view.X[5], [1, 0, 0, 0])  # CL6 was the first row of the file


# ---------------------------------------------------------------------------------- files


def test_missing_folder(tmp_path):
    message = error(tmp_path / "nowhere")
    assert "nowhere" in message and "does not exist" in message


def test_missing_response_file(folder):
    (folder / "response.csv").unlink()
    message = error(folder)
    assert str(folder) in message and "no file for the response table" in message
    assert "expected response.csv or response.tsv" in message and "'expression.csv'" in message


def test_missing_view_file(folder):
    (folder / "methylation.tsv").unlink()
    message = error(folder)
    assert "no file for the view 'methylation'" in message
    assert "expected methylation.csv or methylation.tsv or methylation.h5ad" in message


def test_view_file_named_in_files_is_missing(folder):
    message = error(folder, files={"expression": "rna.csv"})
    assert "rna.csv: no such file (named by files.expression)" in message


def test_unknown_view_file_format(folder):
    (folder / "expression.xlsx").write_bytes(b"PK\x03\x04")
    message = error(folder, files={"expression": "expression.xlsx"})
    assert "expression.xlsx: unknown file format '.xlsx'" in message
    assert "expected .csv (comma-separated), .tsv (tab-separated) or .h5ad" in message


def test_two_files_for_one_view(folder):
    write_lines(folder / "expression.tsv", [r.replace(",", "\t") for r in expression_rows()])
    message = error(folder)
    assert "both expression.csv and expression.tsv exist" in message and "files.expression" in message


# ---------------------------------------------------------------------------------- encoding and layout


def test_utf16_is_rejected(folder):
    path = folder / "response.csv"
    path.write_bytes(path.read_text().encode("utf-16"))  # with its byte-order mark, as Excel's "Unicode text"
    message = error(folder)
    assert "response.csv: the file is UTF-16 encoded" in message and "expected UTF-8" in message


def test_bytes_that_are_not_utf8(folder):
    replace_line(folder / "response.csv", 4, "CL1,drugC,-2.00,lung")
    path = folder / "response.csv"
    path.write_bytes(path.read_bytes().replace(b"drugC,-2.00", b"drug\xe9,-2.00", 1))  # latin-1 é
    message = error(folder)
    assert "response.csv: line 4: byte 0xe9 is not UTF-8" in message


def test_semicolon_separated_csv(folder):
    write_lines(folder / "response.csv", [r.replace(",", ";") for r in response_rows()])
    message = error(folder)
    assert "response.csv: line 1 (header) is separated by semicolons, not commas" in message
    assert "expected commas in a .csv file" in message


def test_tab_separated_csv(folder):
    write_lines(folder / "expression.csv", [r.replace(",", "\t") for r in expression_rows()])
    message = error(folder)
    assert "expression.csv: line 1 (header) is separated by tabs, not commas" in message
    assert "rename the file to .tsv" in message


def test_empty_file(folder):
    (folder / "response.csv").write_bytes(b"")
    message = error(folder)
    assert "response.csv: the file is empty; expected a header line (cell_line, drug, response" in message


def test_header_without_rows(folder):
    write_lines(folder / "expression.csv", expression_rows()[:1])
    assert "expression.csv: only a header line; expected data rows" in error(folder)


def test_line_with_a_wrong_number_of_fields(folder):
    replace_line(folder / "expression.csv", 3, "CL2,1.5,2")
    replace_line(folder / "expression.csv", 6, "CL5,1,2,3,4")
    message = error(folder)
    assert "expression.csv: line 3 has 3 fields, line 6 has 5 fields; expected 4 fields separated by commas" in message


def test_empty_line_inside_the_file(folder):
    replace_line(folder / "response.csv", 7, "")
    message = error(folder)
    assert "response.csv: line 7 is empty; expected 4 fields separated by commas" in message


# ---------------------------------------------------------------------------------- response table


def test_missing_required_column(folder):
    write_lines(folder / "response.csv", [response_rows()[0].replace("response", "ic50")] + response_rows()[1:])
    message = error(folder)
    assert "response.csv: line 1 (header): missing column 'response'" in message
    assert "expected cell_line, drug, response" in message and "found ['cell_line', 'drug', 'ic50', 'tissue']" in message


def test_duplicate_column_name(folder):
    write_lines(folder / "response.csv", [response_rows()[0].replace("tissue", "drug")] + response_rows()[1:])
    message = error(folder)
    assert "response.csv: line 1 (header): duplicate column names 'drug' (columns 2, 4)" in message


def test_pair_with_two_different_values(folder):
    write_lines(folder / "response.csv", response_rows() + ["CL2,drugB,7.5,lung"])
    message = error(folder)
    assert "response.csv: 1 (cell_line, drug) pair with different responses" in message
    assert "('CL2', 'drugB') on lines 6, 20 with -0.5, 7.5" in message and "aggregate replicates" in message


def test_non_numeric_response(folder):
    replace_line(folder / "response.csv", 9, "CL3,drugB,>8,breast")
    message = error(folder)
    assert "response.csv: column 'response': non-numeric value (line 9: '>8'); expected a number" in message


def test_decimal_comma_in_a_tsv_response(folder):
    (folder / "response.csv").unlink()
    rows = [r.replace(",", "\t") for r in response_rows()]
    rows[2] = "CL1\tdrugB\t-1,5\tlung"
    write_lines(folder / "response.tsv", rows)
    message = error(folder)
    assert "response.tsv: column 'response': non-numeric value (line 3: '-1,5')" in message
    assert "decimal comma" in message


def test_missing_response_values(folder):
    replace_line(folder / "response.csv", 5, "CL2,drugA,,lung")
    replace_line(folder / "response.csv", 11, "CL4,drugA,NA,breast")
    message = error(folder)
    assert "response.csv: column 'response': missing value (empty or NA) on lines 5, 11" in message


def test_infinite_response(folder):
    replace_line(folder / "response.csv", 13, "CL4,drugC,-inf,breast")
    message = error(folder)
    assert "response.csv: column 'response': infinite value on line 13; expected a finite number" in message


def test_empty_cell_line_id(folder):
    replace_line(folder / "response.csv", 8, "  ,drugA,1.0,breast")
    message = error(folder)
    assert "response.csv: column 'cell_line': empty id on line 8" in message


def test_tissue_differs_between_rows_of_one_cell_line(folder):
    replace_line(folder / "response.csv", 10, "CL3,drugC,-1.00,skin")
    message = error(folder)
    assert "cell line 'CL3' has more than one tissue" in message
    assert "'breast' in " in message and "response.csv line 8" in message and "'skin' in " in message
    assert "response.csv line 10" in message


def test_tissue_differs_between_response_and_cell_lines_table(folder):
    write_lines(folder / "cell_lines.csv", ["cell_line,tissue", "CL1,lung", "CL5,kidney"])
    message = error(folder)
    assert "cell line 'CL5' has more than one tissue" in message and "cell_lines.csv line 3" in message


def test_cell_line_twice_in_cell_lines_table(folder):
    write_lines(folder / "cell_lines.csv", ["cell_line,tissue", "CL1,lung", "CL2,lung", "CL1,lung"])
    message = error(folder)
    assert "cell_lines.csv: column 'cell_line': 'CL1' appears on lines 2, 4; expected each cell line once" in message


def test_drug_twice_in_drugs_table(folder):
    write_lines(folder / "drugs.csv", ["drug,smiles", "drugA,CCO", "drugA,CCN"])
    assert "drugs.csv: column 'drug': 'drugA' appears on lines 2, 3" in error(folder)


# ---------------------------------------------------------------------------------- views


def test_view_with_a_cell_line_twice(folder):
    write_lines(folder / "expression.csv", expression_rows() + ["CL3,1,1,1"])
    message = error(folder)
    assert "expression.csv: column 1 (cell-line ids): 'CL3' appears on lines 4, 8; expected one row per cell line" in message


def test_view_with_a_feature_twice(folder):
    write_lines(folder / "expression.csv", ["cell_line,g1,g2,g1"] + expression_rows()[1:])
    message = error(folder)
    assert "expression.csv: line 1 (header): duplicate column names 'g1' (columns 2, 4)" in message


def test_view_with_an_unnamed_feature(folder):
    write_lines(folder / "expression.csv", ["cell_line,g1,,g3"] + expression_rows()[1:])
    assert "expression.csv: line 1 (header): column 3 has no name" in error(folder)


def test_view_with_a_non_numeric_value(folder):
    replace_line(folder / "methylation.tsv", 5, "CL4\thigh\t0.9")
    message = error(folder)
    assert "methylation.tsv: column 'cg1' (column 2): non-numeric value (line 5: 'high')" in message
    assert "expected a number in every feature column" in message


def test_view_with_missing_and_infinite_values(folder):
    replace_line(folder / "expression.csv", 4, "CL3,NA,inf,1")
    replace_line(folder / "expression.csv", 6, "CL5,,1,1")
    message = error(folder)
    assert "expression.csv: 2 missing (empty, NA or NaN) and 1 infinite values" in message
    assert "the first on line 4, column 'g1'; expected a finite number in every cell" in message


def test_view_with_no_cell_line_in_common(folder):
    write_lines(folder / "methylation.tsv", ["id\tcg1"] + [f"{c.lower()}\t0.5" for c in CELLS])
    message = error(folder)
    assert "methylation.tsv: no cell line in common with response.csv" in message
    assert "'cl1'" in message and "'CL1'" in message


def test_view_with_cell_lines_as_columns(folder):
    write_lines(folder / "methylation.tsv", ["probe\t" + "\t".join(CELLS), "cg1\t" + "\t".join(["0.5"] * 6)])
    message = error(folder)
    assert "methylation.tsv: the cell lines of response.csv are its columns, e.g. 'CL1', 'CL2', 'CL3'" in message
    assert "expected one row per cell line (transpose the table)" in message


def test_view_with_only_the_id_column(folder):
    write_lines(folder / "methylation.tsv", ["id"] + CELLS)
    message = error(folder)
    assert "methylation.tsv: line 1 (header) has one column; expected the cell-line id column followed by" in message


def test_h5ad_view_with_nan(folder):
    (folder / "methylation.tsv").unlink()
    matrix = np.ones((6, 2))
    matrix[3, 1] = np.nan
    ad.AnnData(matrix, obs=pd.DataFrame(index=CELLS), var=pd.DataFrame(index=["a", "b"])).write_h5ad(
        folder / "methylation.h5ad")
    message = error(folder)
    assert "methylation.h5ad: X has 1 missing (empty, NA or NaN) value, the first at obs 'CL4', var 'b'" in message


@pytest.mark.filterwarnings("ignore:Observation names are not unique")
def test_h5ad_view_with_a_cell_line_twice(folder):
    (folder / "methylation.tsv").unlink()
    view = ad.AnnData(np.ones((3, 2)), obs=pd.DataFrame(index=["CL1", "CL2", "CL1"]), var=pd.DataFrame(index=["a", "b"]))
    view.write_h5ad(folder / "methylation.h5ad")
    message = error(folder)
    assert "methylation.h5ad: obs_names (cell lines): duplicate names 'CL1'; expected unique names" in message


def test_h5ad_view_that_is_not_hdf5(folder):
    (folder / "methylation.tsv").unlink()
    (folder / "methylation.h5ad").write_text("cell_line,cg1\nCL1,1\n")
    message = error(folder)
    assert "methylation.h5ad: cannot be read as AnnData" in message and "expected an .h5ad file" in message


# ---------------------------------------------------------------------------------- drugs and the split


def test_drugs_with_too_few_cell_lines_are_dropped_with_a_warning(folder, caplog):
    rows = [r for r in response_rows() if ",drugC," not in r or r.startswith(("CL1,", "CL2,"))]
    write_lines(folder / "response.csv", rows)
    with caplog.at_level(logging.WARNING):
        dataset = build_from_folder(spec(folder))
    assert sorted(dataset.response.drug.unique()) == ["drugA", "drugB"] and list(dataset.drugs.drug) == ["drugA", "drugB"]
    assert "dropped 1 drugs with responses on fewer than 3 cell lines (min_cell_lines_per_drug): drugC (2)" in caplog.text
    assert dataset.provenance["drugs_dropped_few_cell_lines"] == {"drugC": 2}


def test_no_drug_with_enough_cell_lines(folder):
    message = error(folder, min_cell_lines_per_drug=7)
    assert "response.csv: no drug has responses on at least 7 cell lines with every view (min_cell_lines_per_drug)" in message
    assert "the most is 6" in message and "lower min_cell_lines_per_drug" in message


def test_cell_lines_missing_from_a_view_are_dropped_and_counted(folder, caplog):
    write_lines(folder / "methylation.tsv", ["id\tcg1"] + [f"{c}\t0.5" for c in CELLS[:4]])
    with caplog.at_level(logging.WARNING):
        dataset = build_from_folder(spec(folder))
    assert list(dataset.cell_lines) == CELLS[:4] and set(dataset.response.cell_line) == set(CELLS[:4])
    assert dataset.provenance["cell_lines_without_view"] == {"expression": 0, "methylation": 2}
    assert "2 of the 6 cell lines with responses have no row in methylation.tsv" in caplog.text


def test_drugs_require_smiles_without_any_smiles(folder):
    message = error(folder, drugs_require_smiles=True)
    assert "no drug of the response table has a SMILES" in message and "drugs_require_smiles: false" in message


def test_resolve_files_lists_what_the_build_rule_reads(folder):
    write_lines(folder / "drugs.csv", ["drug,smiles", "drugA,CCO"])
    files = resolve_files(spec(folder))
    assert {key: path.name for key, path in files.items()} == {
        "response": "response.csv", "expression": "expression.csv", "methylation": "methylation.tsv",
        "drugs": "drugs.csv"}


def test_quoted_fields_keep_their_separators_and_line_numbers(folder):
    rows = response_rows()
    rows = [r.replace("drugC", '"drug C, high dose"') for r in rows]
    rows[9] = 'CL3,"drug C, high dose",n/a,breast'  # line 10
    write_lines(folder / "response.csv", rows)
    message = error(folder)
    assert "response.csv: column 'response': non-numeric value (line 10: 'n/a')" in message
    rows[9] = 'CL3,"drug C, high dose",1.25,breast'
    write_lines(folder / "response.csv", rows)
    assert "drug C, high dose" in set(build_from_folder(spec(folder)).response.drug)


# ---------------------------------------------------------------------------------- bad input never passes silently (#14)
# Each test breaks the SYNTHETIC folder in one way that used to be ignored, crash with a bare parser error, or
# be reported misleadingly.


@pytest.mark.parametrize("table", ["drugs.csv", "cell_lines.csv"])
def test_optional_table_that_is_a_directory(folder, table):
    (folder / table).mkdir()
    message = error(folder)
    assert f"{table}: a directory, not a readable regular file" in message


@pytest.mark.parametrize("table", ["drugs.csv", "cell_lines.csv"])
def test_optional_table_that_is_a_dangling_symlink(folder, table):
    (folder / table).symlink_to(folder / "synthetic_moved_away.csv")
    message = error(folder)
    assert f"{table}: a dangling symlink (to " in message and "synthetic_moved_away.csv" in message


def test_optional_table_that_is_a_fifo(folder):
    os.mkfifo(folder / "drugs.csv")  # reading it would block: it must be refused without being opened
    assert "drugs.csv: a FIFO (named pipe), not a readable regular file" in error(folder)


def test_optional_table_that_is_unreadable(folder, monkeypatch):
    write_lines(folder / "drugs.csv", ["drug,smiles", "drugA,CCO"])
    access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode, **kw: Path(path).name != "drugs.csv" and access(path, mode, **kw))
    assert "drugs.csv: unreadable (permission denied), not a readable regular file" in error(folder)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their permissions")
def test_optional_table_without_read_permission(folder):
    write_lines(folder / "cell_lines.csv", ["cell_line,tissue", "CL1,lung"])
    (folder / "cell_lines.csv").chmod(0)
    assert "cell_lines.csv: unreadable (permission denied)" in error(folder)


def test_response_that_is_a_directory_is_not_called_missing(folder):
    (folder / "response.csv").unlink()
    (folder / "response.csv").mkdir()
    message = error(folder)
    assert "response.csv: a directory, not a readable regular file" in message and "no file" not in message


def test_response_that_is_a_dangling_symlink_is_not_called_missing(folder):
    (folder / "response.csv").rename(folder / "synthetic_response_old.csv")
    (folder / "response.csv").symlink_to(folder / "synthetic_gone.csv")
    message = error(folder)
    assert "response.csv: a dangling symlink (to " in message and "no file" not in message


def test_file_named_under_files_that_is_a_directory(folder):
    (folder / "rna").mkdir()
    assert "rna: a directory, not a readable regular file" in error(folder, files={"expression": "rna"})


def test_reading_a_directory_directly_names_it(tmp_path):
    (tmp_path / "response.csv").mkdir()
    with pytest.raises(DatasetFormatError, match="response.csv: a directory, not a readable regular file"):
        read_response(tmp_path / "response.csv")


def test_classic_mac_line_ends(folder):
    (folder / "response.csv").write_bytes("\r".join(response_rows()).encode() + b"\r")
    message = error(folder)
    assert "response.csv: lines end with a carriage return only (classic Mac OS line ends" in message
    assert "expected \\n or \\r\\n line ends" in message and "tr '\\r' '\\n'" in message


def test_stray_carriage_return_inside_a_line(folder):
    replace_line(folder / "expression.csv", 5, "CL4,3.5,\r6,-3")
    message = error(folder)
    assert "expression.csv: line 5: stray carriage return (\\r) inside the line" in message


def test_stray_carriage_return_inside_a_quoted_file(folder):
    rows = response_rows()
    rows[3] = 'CL1,"drugC",-2.00,lu\rng'  # line 4
    write_lines(folder / "response.csv", rows)
    assert "response.csv: line 4: stray carriage return (\\r) inside the line" in error(folder)


LONG = "x" * (csv.field_size_limit() + 1)


def test_over_long_field_in_the_header(folder):
    write_lines(folder / "expression.csv", [f"cell_line,g1,g2,{LONG}"] + expression_rows()[1:])
    message = error(folder)
    assert "expression.csv: line 1: a field longer than 131,072 characters (the CSV parser's limit)" in message


@pytest.mark.parametrize("quoted", [False, True])
def test_over_long_field_in_a_row_is_refused_with_or_without_quotes(folder, quoted):
    rows = response_rows()
    rows[5] = f'CL2,drugB,1.0,{LONG}'  # line 6
    if quoted:
        rows[2] = 'CL1,"drugB",-1.00,lung'
    write_lines(folder / "response.csv", rows)
    message = error(folder)
    assert "response.csv: line 6: a field longer than 131,072 characters (the CSV parser's limit)" in message


def test_unclosed_quote_that_swallows_the_file(folder):
    rows = response_rows()
    rows[3] = 'CL1,"drugC,-2.00,lung'  # line 4: the quote never closes
    write_lines(folder / "response.csv", rows + [f"CL9,drugA,{i},{'y' * 9000}" for i in range(20)])
    message = error(folder)
    assert "response.csv: line 4: a field longer than 131,072 characters" in message and "left unclosed" in message


def test_response_beyond_the_float_range_is_infinite_not_non_numeric(folder):
    replace_line(folder / "response.csv", 13, "CL4,drugC,1e999,breast")
    message = error(folder)
    assert "response.csv: column 'response': infinite value on line 13" in message and "non-numeric" not in message
    assert "'1e999'" in message


def test_view_value_beyond_the_float_range_is_infinite_not_non_numeric(folder):
    replace_line(folder / "expression.csv", 4, "CL3,2.5,-1e999,-2")
    message = error(folder)
    assert "expression.csv: 1 infinite value, the first on line 4, column 'g2'" in message


def test_excel_trailing_empty_columns_are_dropped(folder, caplog):
    write_lines(folder / "response.csv", [r + ",," for r in response_rows()])
    write_lines(folder / "expression.csv", [r + ",, " for r in expression_rows()])
    write_lines(folder / "drugs.csv", ["drug,smiles,,", "drugA,CCO,,", 'drugB,",",,'])
    with caplog.at_level(logging.INFO):
        dataset = build_from_folder(spec(folder))
    assert len(dataset.response) == 18 and list(dataset.views["expression"].var_names) == ["g1", "g2", "g3"]
    assert dataset.drugs.set_index("drug").smiles.to_dict() == {"drugA": "CCO", "drugB": ",", "drugC": ""}
    assert "expression.csv: dropped 2 empty columns without a name at the end of line 1 (header): columns 5, 6" in caplog.text


def test_unnamed_trailing_column_with_data_in_a_view_is_an_error(folder):
    write_lines(folder / "expression.csv", [r + ",," for r in expression_rows()])
    replace_line(folder / "expression.csv", 3, "CL2,1.5,2,-1,7,")
    assert "expression.csv: line 1 (header): column 5 has no name" in error(folder)
    replace_line(folder / "expression.csv", 3, "CL2,1.5,2,-1,,7")
    assert "expression.csv: line 1 (header): columns 5, 6 have no name" in error(folder)


def test_two_unnamed_columns_with_data_in_the_response(folder):
    write_lines(folder / "response.csv", [response_rows()[0] + ",,"] + [r + ",x,y" for r in response_rows()[1:]])
    message = error(folder)
    assert "response.csv: line 1 (header): columns 5, 6 have no name" in message and "duplicate" not in message


def test_upper_case_extension_is_found(folder):
    (folder / "expression.csv").rename(folder / "expression.CSV")
    (folder / "response.csv").rename(folder / "response.Csv")
    files = resolve_files(spec(folder))
    assert files["expression"].name == "expression.CSV" and files["response"].name == "response.Csv"
    assert build_from_folder(spec(folder)).views["expression"].n_vars == 3


def test_two_files_that_differ_only_in_case(folder):
    write_lines(folder / "expression.CSV", expression_rows())
    if not (folder / "expression.csv").exists() or len(list(folder.glob("expression.*"))) < 2:
        pytest.skip("case-insensitive file system")
    message = error(folder)
    assert "expression.CSV and expression.csv differ only in case" in message and "files.expression" in message


def test_a_file_outside_the_folder_is_refused_unless_named_by_absolute_path(folder, tmp_path_factory):
    """SYNTHETIC: files.<key> with '..' or a symlink led out of the data folder and was read (and quoted in
    errors); an absolute path under files is the user's explicit choice and is read."""
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    (folder / "expression.csv").rename(elsewhere / "expression.csv")
    message = error(folder, files={"expression": "../" + elsewhere.name + "/expression.csv"})
    assert "outside the data set folder" in message and "files.expression" in message
    (folder / "expression.csv").symlink_to(elsewhere / "expression.csv")
    assert "outside the data set folder" in error(folder)
    (folder / "expression.csv").unlink()
    dataset = build_from_folder(spec(folder, files={"expression": str(elsewhere / "expression.csv")}))
    assert dataset.views["expression"].n_vars == 3


def test_an_error_quotes_only_the_start_of_the_offending_field(folder):
    """SYNTHETIC: a long non-numeric field (say, a secret pasted into a file) is not echoed whole."""
    rows = response_rows()
    cell, drug, _, tissue = rows[3].split(",")
    rows[3] = f"{cell},{drug},{'s3cr3t' * 500},{tissue}"
    write_lines(folder / "response.csv", rows)
    message = error(folder)
    assert "line 4" in message and "(3,000 characters)" in message and "s3cr3t" * 20 not in message
