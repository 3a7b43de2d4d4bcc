"""drp.samples_io: sample sets (omics of new samples, no responses) read from a folder and put on a trained
model's scale.

Every test writes a small SYNTHETIC folder (4 samples, made-up values) and breaks one thing; an error must
be a SampleSetError naming the file, the line, column or key, and what was expected.
"""

from __future__ import annotations

import logging
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from drp.dataset import UNKNOWN_TISSUE
from drp.features import fit_transform_view
from drp.io import sha256sum
from drp.samples_io import SampleSetError, read_sample_set, resolve_sample_files, transform_samples
from drp.sources.folder import DatasetFormatError

SAMPLES = ["S1", "S2", "S3", "S4"]
TISSUES = {"S1": "lung", "S2": "lung", "S3": "breast", "S4": ""}
VIEWS = ["expression", "methylation", "proteomics"]


def write_lines(path: Path, rows: list[str]) -> None:
    path.write_text("\n".join(rows) + "\n")


def expression_rows(samples=SAMPLES) -> list[str]:
    return ["sample,g1,g2,g3"] + [f"{s},{i}.5,{2 * i},-{i}" for i, s in enumerate(samples)]


def synthetic_sample_folder(folder: Path, annotations: str | None = "samples.csv") -> Path:
    """A valid sample folder: expression.csv, methylation.tsv, proteomics.h5ad and an annotation file
    (``samples.csv`` with column sample, ``cell_lines.csv`` with column cell_line, or None)."""
    folder.mkdir(parents=True, exist_ok=True)
    write_lines(folder / "expression.csv", expression_rows())
    write_lines(folder / "methylation.tsv", ["id\tcg1\tcg2"] + [f"{s}\t0.{i}\t0.9" for i, s in enumerate(SAMPLES)])
    proteomics = ad.AnnData(X=np.arange(8, dtype=np.float32).reshape(4, 2) / 4,
                            obs=pd.DataFrame(index=SAMPLES), var=pd.DataFrame(index=["p1", "p2"]))
    proteomics.write_h5ad(folder / "proteomics.h5ad")
    if annotations is not None:
        column = "cell_line" if annotations.startswith("cell_lines") else "sample"
        write_lines(folder / annotations,
                    [f"{column},tissue,site"] + [f"{s},{TISSUES[s]},site{s[-1]}" for s in SAMPLES])
    return folder


@pytest.fixture
def folder(tmp_path) -> Path:
    return synthetic_sample_folder(tmp_path / "samples")


def spec(folder: Path, **changes) -> dict:
    return {"folder": str(folder), "views": list(VIEWS), **changes}


def read(folder: Path, **changes):
    return read_sample_set(spec(folder, **changes))


def error(folder: Path, **changes) -> str:
    with pytest.raises(SampleSetError) as info:
        read(folder, **changes)
    assert isinstance(info.value, DatasetFormatError)
    return str(info.value)


# ----------------------------------------------------------------------------------------- valid input


def test_valid_folder_with_csv_tsv_and_h5ad_views(folder):
    views, tissue, provenance = read(folder)
    assert set(views) == set(VIEWS)
    for view in views.values():
        assert list(view.obs_names) == SAMPLES
        assert view.X.dtype == np.float64
        assert list(view.obs["tissue"]) == ["lung", "lung", "breast", UNKNOWN_TISSUE]
        assert list(view.obs["site"]) == ["site1", "site2", "site3", "site4"]
    np.testing.assert_array_equal(views["expression"].X, [[0.5, 0, 0], [1.5, 2, -1], [2.5, 4, -2], [3.5, 6, -3]])
    assert list(views["methylation"].var_names) == ["cg1", "cg2"]
    np.testing.assert_array_equal(views["proteomics"].X, np.arange(8).reshape(4, 2) / 4)
    assert tissue.to_dict() == {"S1": "lung", "S2": "lung", "S3": "breast", "S4": UNKNOWN_TISSUE}
    assert provenance["n_samples"] == 4 and provenance["samples_without_tissue"] == 1
    assert provenance["samples_without_view"] == {view: 0 for view in VIEWS}
    assert provenance["folder"] == str(folder.resolve())
    assert provenance["files"]["annotations"] == {"name": "samples.csv", "sha256": sha256sum(folder / "samples.csv")}
    assert provenance["files"]["proteomics"]["name"] == "proteomics.h5ad"


def test_resolve_sample_files_lists_views_and_annotations(folder):
    assert resolve_sample_files(spec(folder)) == {"expression": folder / "expression.csv",
                                                  "methylation": folder / "methylation.tsv",
                                                  "proteomics": folder / "proteomics.h5ad",
                                                  "annotations": folder / "samples.csv"}


def test_annotations_are_optional(tmp_path):
    folder = synthetic_sample_folder(tmp_path / "s", annotations=None)
    assert "annotations" not in resolve_sample_files(spec(folder))
    views, tissue, provenance = read(folder)
    assert (tissue == UNKNOWN_TISSUE).all() and provenance["samples_without_tissue"] == 4
    assert list(views["expression"].obs.columns) == ["tissue"]


@pytest.mark.parametrize("name", ["samples.tsv", "cell_lines.csv"])
def test_annotation_file_variants(tmp_path, name):
    folder = synthetic_sample_folder(tmp_path / "s", annotations=None)
    column = "cell_line" if name.startswith("cell_lines") else "sample"
    sep = "\t" if name.endswith(".tsv") else ","
    write_lines(folder / name, [f"{column}{sep}tissue"] + [f"{s}{sep}{TISSUES[s]}" for s in SAMPLES])
    _, tissue, provenance = read(folder)
    assert tissue["S3"] == "breast" and tissue["S4"] == UNKNOWN_TISSUE
    assert provenance["files"]["annotations"]["name"] == name


def test_plugin_dataset_folder_is_used_as_a_sample_set(tmp_path, caplog):
    folder = synthetic_sample_folder(tmp_path / "s", annotations="cell_lines.csv")
    write_lines(folder / "response.csv", ["cell_line,drug,response"] + [f"{s},drugA,1.0" for s in SAMPLES])
    write_lines(folder / "drugs.csv", ["drug,smiles", "drugA,C"])
    with caplog.at_level(logging.INFO, logger="drp.samples_io"):
        views, tissue, provenance = read(folder)
    assert "response.csv ignored" in caplog.text
    assert "response" not in provenance["files"] and tissue["S1"] == "lung"
    assert list(views["expression"].obs_names) == SAMPLES


def test_files_name_other_files(folder):
    (folder / "expression.csv").rename(folder / "rna_seq.csv")
    (folder / "samples.csv").rename(folder / "meta.csv")
    views, tissue, provenance = read(folder, files={"expression": "rna_seq.csv", "annotations": "meta.csv"})
    assert provenance["files"]["expression"]["name"] == "rna_seq.csv" and tissue["S1"] == "lung"


def test_sample_id_equal_to_a_training_cell_line_is_fine(folder):
    write_lines(folder / "expression.csv", expression_rows(["CL1", "S2", "S3", "S4"]))
    write_lines(folder / "methylation.tsv", ["id\tcg1"] + [f"{s}\t0.5" for s in ["CL1", "S2", "S3", "S4"]])
    views, _, _ = read(folder, views=["expression", "methylation"])
    assert "CL1" in views["expression"].obs_names


def test_samples_missing_from_a_view_are_dropped_with_a_warning(folder, caplog):
    write_lines(folder / "methylation.tsv", ["id\tcg1\tcg2"] + [f"{s}\t0.5\t0.9" for s in SAMPLES[:3]])
    with caplog.at_level(logging.WARNING):
        views, _, provenance = read(folder)
    assert list(views["proteomics"].obs_names) == SAMPLES[:3]
    assert provenance["samples_without_view"] == {"expression": 0, "methylation": 1, "proteomics": 0}
    assert "methylation.tsv: 1 of the 4 samples" in caplog.text and "'S4'" in caplog.text


def test_annotation_ids_that_match_no_sample_are_a_warning(folder, caplog):
    with open(folder / "samples.csv", "a") as handle:
        handle.write("S9,skin,site9\n")
    with caplog.at_level(logging.WARNING):
        views, _, provenance = read(folder)
    assert provenance["annotations_without_sample"] == 1 and "S9" not in views["expression"].obs_names
    assert "samples.csv: 1 of the 5 annotated ids match no sample" in caplog.text and "line 6" in caplog.text


# ----------------------------------------------------------------------------------------- errors


def test_missing_folder(tmp_path):
    message = error(tmp_path / "nowhere")
    assert "nowhere: the sample set folder does not exist; expected a folder with one file per view" in message


def test_missing_view_file_lists_the_folder(folder):
    (folder / "methylation.tsv").unlink()
    message = error(folder)
    assert "no file for the view 'methylation'; expected methylation.csv or methylation.tsv or methylation.h5ad" \
        in message
    assert "the folder has: 'expression.csv', 'proteomics.h5ad', 'samples.csv'" in message


def test_view_file_named_in_files_is_missing(folder):
    message = error(folder, files={"expression": "rna.csv"})
    assert "rna.csv: no such file (named by files.expression)" in message


def test_two_candidate_files_for_one_view(folder):
    write_lines(folder / "expression.tsv", ["id\tg1"] + [f"{s}\t1" for s in SAMPLES])
    message = error(folder)
    assert "both expression.csv and expression.tsv exist; expected one file for 'expression'" in message
    assert "files.expression" in message


def test_both_samples_and_cell_lines_annotations(folder):
    write_lines(folder / "cell_lines.csv", ["cell_line,tissue"] + [f"{s},lung" for s in SAMPLES])
    message = error(folder)
    assert "both samples.csv and cell_lines.csv exist; expected one annotation file" in message
    assert "files.annotations" in message


def test_two_annotation_keys_under_files(folder):
    message = error(folder, files={"annotations": "samples.csv", "samples": "samples.csv"})
    assert "files.annotations and files.samples each name an annotation file" in message and "expected one" in message


def test_non_numeric_value(folder):
    write_lines(folder / "expression.csv", expression_rows()[:2] + ["S2,1.5,abc,-1"] + expression_rows()[3:])
    message = error(folder)
    assert "expression.csv: column 'g2' (column 3): non-numeric value (line 3: 'abc')" in message
    assert "expected a number in every feature column" in message


def test_non_finite_values(folder):
    write_lines(folder / "expression.csv", expression_rows()[:3] + ["S3,NA,inf,-2"] + expression_rows()[4:])
    message = error(folder)
    assert "expression.csv: 1 missing (empty, NA or NaN) and 1 infinite values, the first on line 4, column 'g1'" \
        in message
    assert "expected a finite number in every cell" in message and "drop the feature or sample" in message


def test_non_finite_value_in_h5ad(folder):
    bad = ad.AnnData(X=np.array([[1.0, np.nan]] * 4), obs=pd.DataFrame(index=SAMPLES),
                     var=pd.DataFrame(index=["p1", "p2"]))
    bad.write_h5ad(folder / "proteomics.h5ad")
    message = error(folder)
    assert "proteomics.h5ad: X has 4 missing (empty, NA or NaN) values, the first at obs 'S1', var 'p2'" in message


def test_duplicate_sample_id(folder):
    write_lines(folder / "expression.csv", expression_rows() + ["S2,1,1,1"])
    message = error(folder)
    assert "expression.csv: column 1 (sample ids): 'S2' appears on lines 3, 6; expected one row per sample" in message


def test_empty_sample_id(folder):
    write_lines(folder / "methylation.tsv", ["id\tcg1"] + [f"{s}\t0.5" for s in SAMPLES] + ["\t0.1"])
    message = error(folder)
    assert "methylation.tsv: column 1 (sample ids): empty id on line 6; expected a sample id in the first column" \
        in message


def test_view_transposed_detected_from_the_other_views(folder):
    write_lines(folder / "methylation.tsv", ["probe\t" + "\t".join(SAMPLES), "cg1\t" + "\t".join(["0.5"] * 4)])
    message = error(folder)
    assert "methylation.tsv: the samples of expression.csv are its columns, e.g. 'S1', 'S2', 'S3'" in message
    assert "expected one row per sample, its id in the first column (transpose the table)" in message


def test_view_transposed_detected_from_the_annotations(folder):
    write_lines(folder / "expression.csv", ["gene," + ",".join(SAMPLES), "g1,1,2,3,4", "g2,1,2,3,4"])
    message = error(folder, views=["expression"])
    assert "expression.csv: the samples of samples.csv are its columns, e.g. 'S1', 'S2', 'S3'" in message
    assert "(transpose the table)" in message


def test_transposed_view_that_cannot_be_told_without_annotations(tmp_path):
    folder = synthetic_sample_folder(tmp_path / "s", annotations=None)
    write_lines(folder / "methylation.tsv", ["probe\t" + "\t".join(SAMPLES)] + [f"g{i}\t1\t2\t3\t4" for i in (1, 2)])
    message = error(folder, views=["expression", "methylation"])
    assert "expression.csv and " in message and "methylation.tsv: no sample in common" in message
    assert "one of them is given transposed" in message


def test_view_sharing_no_sample_names_both_files(folder):
    write_lines(folder / "methylation.tsv", ["id\tcg1"] + [f"{s.lower()}\t0.5" for s in SAMPLES])
    message = error(folder, views=["expression", "methylation"])
    assert "methylation.tsv: no sample in common with expression.csv" not in message  # expression is checked first
    assert "expression.csv: no sample in common with methylation.tsv" in message
    assert "expected the same sample ids in every view" in message and "'s1'" in message and "'S1'" in message


def test_no_sample_in_every_view(folder):
    write_lines(folder / "expression.csv", expression_rows(["S1", "S2"]))
    write_lines(folder / "methylation.tsv", ["id\tcg1"] + [f"{s}\t0.5" for s in ["S2", "S3"]])
    proteomics = ad.AnnData(X=np.ones((2, 2)), obs=pd.DataFrame(index=["S1", "S3"]),
                            var=pd.DataFrame(index=["p1", "p2"]))
    proteomics.write_h5ad(folder / "proteomics.h5ad")
    message = error(folder)
    assert "no sample has a row in every view (expression.csv, methylation.tsv, proteomics.h5ad)" in message
    assert "expected at least one sample in all of them" in message


def test_view_without_features(folder):
    write_lines(folder / "methylation.tsv", ["id"] + SAMPLES)
    message = error(folder)
    assert "methylation.tsv: line 1 (header) has one column; expected the sample id column followed by one column " \
           "per feature" in message


def test_h5ad_view_without_features(folder):
    ad.AnnData(X=np.ones((4, 0)), obs=pd.DataFrame(index=SAMPLES)).write_h5ad(folder / "proteomics.h5ad")
    message = error(folder)
    assert "proteomics.h5ad: X is empty (4 x 0); expected samples x features in X" in message


def test_annotation_file_with_a_sample_twice(folder):
    with open(folder / "samples.csv", "a") as handle:
        handle.write("S1,lung,site1\n")
    message = error(folder)
    assert "samples.csv: column 'sample': 'S1' appears on lines 2, 6; expected each sample once" in message


def test_annotation_file_without_its_id_column(folder):
    write_lines(folder / "samples.csv", ["name,tissue"] + [f"{s},lung" for s in SAMPLES])
    message = error(folder)
    assert "samples.csv: line 1 (header): missing column 'sample'; expected the id column named 'sample' or " \
           "'cell_line'" in message


def test_cell_lines_annotation_file_without_its_id_column(tmp_path):
    folder = synthetic_sample_folder(tmp_path / "s", annotations=None)
    write_lines(folder / "cell_lines.csv", ["name,tissue"] + [f"{s},lung" for s in SAMPLES])
    message = error(folder)
    assert "cell_lines.csv: line 1 (header): missing column 'cell_line'" in message


# ----------------------------------------------------------------------------------------- transform


TRAIN_CELLS = [f"CL{i}" for i in range(1, 11)]
GENES = [f"g{i}" for i in range(1, 11)]


@pytest.fixture
def fitted() -> dict[str, ad.AnnData]:
    """The final model's preprocessed view: z-scored on 10 training cell lines, clipped at 1.5."""
    rng = np.random.default_rng(0)
    train = ad.AnnData(X=rng.normal(5, 2, (10, 10)), obs=pd.DataFrame({"tissue": "lung"}, index=TRAIN_CELLS),
                       var=pd.DataFrame(index=GENES))
    return {"expression": fit_transform_view(train, pd.Index(TRAIN_CELLS), clip=1.5)}


def sample_views(genes=GENES, samples=("S1", "S2", "S3"), seed: int = 1) -> dict[str, ad.AnnData]:
    rng = np.random.default_rng(seed)
    return {"expression": ad.AnnData(X=rng.normal(5, 3, (len(samples), len(genes))),
                                     obs=pd.DataFrame({"tissue": "skin"}, index=list(samples)),
                                     var=pd.DataFrame(index=list(genes)))}


def test_transform_uses_the_training_mean_and_std_and_clip(fitted):
    views = sample_views()
    out, report = transform_samples(views, fitted)
    model = fitted["expression"]
    expected = np.clip((views["expression"][:, model.var_names].X - model.var["train_mean"].to_numpy())
                       / model.var["train_std"].to_numpy(), -1.5, 1.5)
    np.testing.assert_allclose(out["expression"].X, expected, rtol=1e-6, atol=1e-6)
    assert np.abs(out["expression"].X).max() == pytest.approx(1.5)  # some values are clipped
    assert list(out["expression"].var_names) == list(model.var_names)
    assert not out["expression"].obs["in_training"].any() and (out["expression"].obs["tissue"] == "skin").all()
    assert report.to_dict("records") == [{"view": "expression", "features_used": 10, "features_missing": 0,
                                          "features_imputed": 0, "samples": 3}]


def test_missing_features_are_refused_by_default(fitted):
    views = sample_views(genes=GENES[2:])
    with pytest.raises(SampleSetError) as info:
        transform_samples(views, fitted, source={"expression": Path("new/expression.csv")})
    message = str(info.value)
    assert "new/expression.csv: the samples lack 2 of the 10 features the model was trained on" in message
    assert "'g1', 'g2'" in message and "set missing_features: training_mean" in message


def test_missing_features_take_the_training_mean(fitted):
    complete = sample_views()
    views = {"expression": complete["expression"][:, GENES[2:]].copy()}
    out, report = transform_samples(views, fitted, missing="training_mean")
    X = out["expression"][:, ["g1", "g2"]].X
    assert (X == 0).all()
    full, _ = transform_samples(complete, fitted)  # the same values for the features present
    np.testing.assert_array_equal(out["expression"][:, GENES[2:]].X, full["expression"][:, GENES[2:]].X)
    assert report.loc[0, ["features_used", "features_missing", "features_imputed"]].tolist() == [8, 2, 2]


def test_too_many_missing_features_is_an_error_even_with_training_mean(fitted):
    views = sample_views(genes=GENES[3:])
    with pytest.raises(SampleSetError, match=r"expression\.csv: the samples lack 3 of the 10 features \(30%\).*"
                                             r"expected at most 20% missing \(max_missing_fraction\)"):
        transform_samples(views, fitted, missing="training_mean", source={"expression": Path("expression.csv")})
    transform_samples(views, fitted, missing="training_mean", max_missing_fraction=0.3)  # allowed when raised


def test_extra_features_are_ignored(fitted):
    views = sample_views(genes=GENES + ["extra1", "extra2"])
    out, report = transform_samples(views, fitted)
    assert list(out["expression"].var_names) == GENES and report.loc[0, "features_used"] == 10


def test_nothing_is_refitted_on_the_samples(fitted):
    views = sample_views(samples=("S1", "S2", "S3", "S4", "S5"))
    together, _ = transform_samples(views, fitted)
    alone, _ = transform_samples({"expression": views["expression"][["S3"]].copy()}, fitted)
    np.testing.assert_array_equal(alone["expression"].X, together["expression"][["S3"]].X)


def test_sample_named_like_a_training_cell_line_is_transformed(fitted):
    out, _ = transform_samples(sample_views(samples=("CL1", "S2")), fitted)
    assert not out["expression"].obs.loc["CL1", "in_training"]


def test_a_view_the_model_needs_is_missing(fitted):
    with pytest.raises(SampleSetError, match=r"the sample set has no view 'expression'; expected a file for every"):
        transform_samples({}, fitted)


def test_unknown_missing_features_mode(fitted):
    with pytest.raises(SampleSetError, match=r"missing_features: 'zero'; expected one of refuse, training_mean"):
        transform_samples(sample_views(), fitted, missing="zero")


def test_read_then_transform(tmp_path, fitted):
    folder = synthetic_sample_folder(tmp_path / "s")
    write_lines(folder / "expression.csv", ["sample," + ",".join(GENES)]
                + [f"{s}," + ",".join(str(i + j) for j in range(10)) for i, s in enumerate(SAMPLES)])
    files = resolve_sample_files(spec(folder, views=["expression"]))
    views, _, _ = read_sample_set(spec(folder, views=["expression"]), files)
    out, report = transform_samples(views, fitted, source=files)
    assert list(out["expression"].obs_names) == SAMPLES and report.loc[0, "samples"] == 4
    assert list(out["expression"].obs["tissue"]) == ["lung", "lung", "breast", UNKNOWN_TISSUE]


def test_views_default_to_the_resolved_files(folder):
    files = resolve_sample_files(spec(folder))
    views, _, _ = read_sample_set({"folder": str(folder)}, files)
    assert set(views) == set(VIEWS)
