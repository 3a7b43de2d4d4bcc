"""The features job with plug-in views: a view without a `features` entry, or with an entry without
`n_features`, keeps all its varying features, scaled (the schema's promise); a view that is constant on the
training cell lines is an error that names it (SYNTHETIC tiny views)."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from drp.io import write_h5ad, write_table
from drp.splits import make_splits
from drp.stages.prepare import preprocess_views


@pytest.fixture()
def workspace(tmp_path):
    rng = np.random.default_rng(0)
    cells = pd.Index([f"SYNCELL{i:02d}" for i in range(30)], name="cell_line")
    tissue = pd.Series(["lung", "skin", "blood"] * 10, index=cells)
    response = pd.DataFrame([(c, d) for c in cells for d in ("DRUGA", "DRUGB")], columns=["cell_line", "drug"])
    write_table(tmp_path / "LCO.tsv", make_splits(response, tissue, "LCO", 5, seed=0, validation_fraction=0.2))
    views = {"methylation": rng.normal(size=(30, 12)), "flat": np.ones((30, 4))}
    paths = {}
    for name, values in views.items():
        paths[name] = tmp_path / f"{name}.h5ad"
        write_h5ad(paths[name], ad.AnnData(X=values.astype(np.float32), obs=pd.DataFrame({"tissue": tissue}),
                                           var=pd.DataFrame(index=[f"{name}{j}" for j in range(values.shape[1])])))
    return tmp_path, paths


@pytest.mark.parametrize("settings", [{}, {"methylation": {"scale": True}}, {"methylation": {"n_features": None}}])
def test_a_view_without_n_features_keeps_all_features_scaled(workspace, settings):
    root, paths = workspace
    output = root / "out.h5ad"
    preprocess_views({"methylation": paths["methylation"]}, root / "LCO.tsv", 0, settings, {"methylation": output})
    fitted = ad.read_h5ad(output)
    assert fitted.n_vars == 12
    in_training = fitted.obs["in_training"].to_numpy(bool)
    np.testing.assert_allclose(np.asarray(fitted.X)[in_training].mean(axis=0), 0.0, atol=1e-5)


def test_a_view_constant_on_the_training_cell_lines_is_refused_by_name(workspace):
    root, paths = workspace
    with pytest.raises(ValueError, match=r"flat.h5ad: view 'flat' has no feature that varies among the \d+ training "
                                         r"cell lines of fold 0"):
        preprocess_views({"flat": paths["flat"]}, root / "LCO.tsv", 0, {}, {"flat": root / "flat_out.h5ad"})
    assert not (root / "flat_out.h5ad").exists()
