"""Per-feature association tests (drp.associations), GDSC's response ~ tissue + feature, on synthetic data: a
planted mutation is found, a tissue marker is not, null p-values are uniform, the t statistics are those of an
ordinary least-squares fit of the full model, BH is the hand computation, skipped pairs are counted, and the
volcano plot is written."""

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from drp.associations import association_test, benjamini_hochberg, volcano_plot

TISSUES = ["lung", "skin", "blood", "breast", "colon", "brain"]


def synthetic_screen(seed=0, n_lines=240, n_drugs=10, n_mutations=100, n_expression=100, density=0.85):
    """Synthetic cell lines over six tissues with tissue-dependent responses; a mutation view (0/1) and an
    expression view (normal), both random, and a response table with ~15% of the pairs missing."""
    rng = np.random.default_rng(seed)
    lines = [f"CL{i:03d}" for i in range(n_lines)]
    tissue = pd.Series(rng.choice(TISSUES, n_lines), index=lines, name="tissue")
    tissue_effect = pd.Series(rng.normal(0, 1.5, len(TISSUES)), index=TISSUES)
    mutation = (rng.random((n_lines, n_mutations)) < rng.uniform(0.05, 0.4, n_mutations)).astype(np.float32)
    expression = rng.normal(5.0, 1.0, (n_lines, n_expression)).astype(np.float32)
    drugs = [f"D{j}" for j in range(n_drugs)]
    response = rng.normal(0, 1, (n_lines, n_drugs)) + tissue_effect[tissue].to_numpy()[:, None]
    views = {"mutation": ad.AnnData(pd.DataFrame(mutation, index=lines, columns=[f"M{i}" for i in range(n_mutations)])),
             "expression": ad.AnnData(pd.DataFrame(expression, index=lines,
                                                   columns=[f"E{i}" for i in range(n_expression)]))}
    table = pd.DataFrame(response, index=lines, columns=drugs).stack().rename("response").reset_index()
    table.columns = ["cell_line", "drug", "response"]
    table = table[rng.random(len(table)) < density].reset_index(drop=True)
    return table, views, tissue


def with_feature(views, view, name, values):
    frame = views[view].to_df()
    frame[name] = np.asarray(values, dtype=np.float32)
    return {**views, view: ad.AnnData(frame)}


def row(table, drug, feature):
    hit = table[(table.drug == drug) & (table.feature == feature)]
    assert len(hit) == 1, f"{drug} {feature}: {len(hit)} rows"
    return hit.iloc[0]


def test_planted_mutation_found_with_right_sign():
    response, views, tissue = synthetic_screen(seed=1)
    rng = np.random.default_rng(1)
    planted = (rng.random(len(tissue)) < 0.15).astype(float)  # in every tissue
    views = with_feature(views, "mutation", "PLANT", planted)
    sensitive = response["cell_line"].map(pd.Series(planted, index=tissue.index)) == 1
    response.loc[(response.drug == "D3") & sensitive, "response"] -= 1.5
    table = association_test(response, views, tissue)
    hit = row(table, "D3", "mutation:PLANT")
    assert hit.fdr < 1e-6 and hit.p_value == table.p_value.min()
    assert hit.effect < -1.0 and hit.t < 0 and hit.standardized_effect < -0.8 and hit.mean_difference < 0
    assert hit["binary"] and hit["view"] == "mutation" and hit["gene"] == "PLANT" and hit.n_positive >= 3
    assert (table[table.feature == "mutation:PLANT"].drop(hit.name).fdr > 0.05).all()  # no other drug


def test_tissue_marker_not_significant_once_tissue_in_model():
    response, views, tissue = synthetic_screen(seed=2)
    rng = np.random.default_rng(2)
    marker = pd.Series(np.arange(len(TISSUES), dtype=float), index=TISSUES)[tissue].to_numpy()
    response["response"] += 2.0 * response["cell_line"].map(pd.Series(marker, index=tissue.index))  # tissue-driven
    noisy = marker + rng.normal(0, 0.05, marker.size)  # the marker with a little within-tissue noise
    views = with_feature(with_feature(views, "expression", "MARK", marker), "expression", "NOISY", noisy)
    table = association_test(response, views, tissue)
    assert not (table.feature == "expression:MARK").any()  # exactly a function of tissue: no variance left
    assert table.attrs["skipped"]["no_variance_within_tissue"] == 10  # one per drug
    assert (table[table.feature == "expression:NOISY"].p_value > 1e-3).all()
    # without the tissue covariate (one tissue for all), the same marker would be the strongest association
    one_tissue = pd.Series("all", index=tissue.index)
    pooled = association_test(response, views, one_tissue)
    assert (pooled[pooled.feature == "expression:MARK"].p_value < 1e-20).all()


def test_null_p_values_uniform_and_no_discoveries():
    response, views, tissue = synthetic_screen(seed=3, n_drugs=10, n_mutations=100, n_expression=100)
    table = association_test(response, views, tissue)
    assert 1900 <= len(table) <= 2000
    assert stats.kstest(table.p_value, "uniform").pvalue > 0.01
    assert (table.fdr < 0.05).sum() <= 1
    assert set(table.view) == {"mutation", "expression"}
    assert table.binary.to_numpy().sum() == (table.view == "mutation").sum()
    assert table.p_value.is_monotonic_increasing


def full_model_t(y, x, tissues):
    """The t statistic, coefficient and p of ``x`` in y ~ C(tissue) + x: statsmodels OLS when installed, else a
    least-squares fit of the full design by numpy."""
    frame = pd.DataFrame({"y": y, "x": x, "tissue": tissues})
    try:
        import statsmodels.formula.api as smf
    except ImportError:
        design = np.column_stack([pd.get_dummies(frame.tissue).to_numpy(float), x])
        coef, _, rank, _ = np.linalg.lstsq(design, y, rcond=None)
        df = len(y) - rank
        sigma2 = ((y - design @ coef) ** 2).sum() / df
        se = np.sqrt(sigma2 * np.linalg.pinv(design.T @ design)[-1, -1])
        t = coef[-1] / se
        return t, coef[-1], 2 * stats.t.sf(abs(t), df)
    fit = smf.ols("y ~ C(tissue) + x", data=frame).fit()
    return fit.tvalues["x"], fit.params["x"], fit.pvalues["x"]


def test_t_statistic_equals_ols_of_full_model():
    response, views, tissue = synthetic_screen(seed=4, n_drugs=4, n_mutations=20, n_expression=20)
    tissue = tissue.copy()
    tissue.iloc[0] = "eye"  # a tissue with a single cell line (its residual is zero: a lost degree of freedom)
    response = response[~((response.drug == "D2") & response.cell_line.isin(tissue.index[tissue == "skin"]))]
    table = association_test(response, views, tissue)  # D2 has no skin line: a tissue absent from its design
    matrix = {name: view.to_df() for name, view in views.items()}
    for drug, feature in [("D0", "mutation:M1"), ("D1", "expression:E3"), ("D2", "expression:E7"),
                          ("D2", "mutation:M5"), ("D3", "expression:E0")]:
        got = row(table, drug, feature)
        view, gene = feature.split(":")
        sub = response[response.drug == drug]
        x = matrix[view].loc[sub.cell_line, gene].to_numpy(float)
        t, coef, p = full_model_t(sub.response.to_numpy(), x, tissue[sub.cell_line].to_numpy())
        assert got.t == pytest.approx(t, rel=1e-8)
        assert got.effect == pytest.approx(coef, rel=1e-8)
        assert got.p_value == pytest.approx(p, rel=1e-6)
        assert got.n == len(sub)
        if not got["binary"]:  # the partial correlation, t / sqrt(t^2 + df)
            df = got.n - tissue[sub.cell_line].nunique() - 1
            assert got.standardized_effect == pytest.approx(got.t / np.sqrt(got.t ** 2 + df), rel=1e-8)


def test_cohens_d_and_mean_difference_for_binary_features():
    response, views, tissue = synthetic_screen(seed=5, n_drugs=2, n_mutations=5, n_expression=1)
    table = association_test(response, views, tissue)
    got = row(table, "D1", "mutation:M2")
    sub = response[response.drug == "D1"]
    positive = views["mutation"].to_df().loc[sub.cell_line, "M2"].to_numpy() == 1
    a, b = sub.response.to_numpy()[positive], sub.response.to_numpy()[~positive]
    pooled = np.sqrt(((a.size - 1) * a.var(ddof=1) + (b.size - 1) * b.var(ddof=1)) / (a.size + b.size - 2))
    assert got.mean_difference == pytest.approx(a.mean() - b.mean(), rel=1e-10)
    assert got.standardized_effect == pytest.approx((a.mean() - b.mean()) / pooled, rel=1e-10)
    assert got.n_positive == positive.sum()
    continuous = row(table, "D1", "expression:E0")
    assert not continuous.binary and np.isnan(continuous.n_positive) and np.isnan(continuous.mean_difference)


def test_benjamini_hochberg_by_hand():
    p = np.array([0.01, 0.04, 0.03, 0.005, 0.2, np.nan])
    # sorted 0.005, 0.01, 0.03, 0.04, 0.2 (m = 5): p*m/rank = 0.025, 0.025, 0.05, 0.05, 0.2, then running min
    # from the top keeps them; back in the original order:
    expected = [0.025, 0.05, 0.05, 0.025, 0.2, np.nan]
    np.testing.assert_allclose(benjamini_hochberg(p), expected, rtol=1e-12)
    np.testing.assert_allclose(benjamini_hochberg([0.04, 0.03, 0.02]), [0.04, 0.04, 0.04])  # step-up minimum
    assert benjamini_hochberg([0.9, 0.95])[1] == 0.95 and benjamini_hochberg([1.0])[0] == 1.0
    response, views, tissue = synthetic_screen(seed=6, n_drugs=3, n_mutations=10, n_expression=10)
    table = association_test(response, views, tissue)
    np.testing.assert_allclose(table.fdr, benjamini_hochberg(table.p_value))
    ranks = stats.rankdata(table.p_value, method="max")
    assert (table.fdr.to_numpy() >= table.p_value.to_numpy() - 1e-15).all()
    assert (table.fdr.to_numpy() <= np.minimum(table.p_value.to_numpy() * len(table) / ranks, 1) + 1e-15).all()


def test_skipped_pairs_documented():
    response, views, tissue = synthetic_screen(seed=7, n_drugs=3, n_mutations=3, n_expression=2)
    lines = tissue.index
    two, three = np.zeros(len(lines)), np.zeros(len(lines))
    two[:2], three[:3] = 1, 1
    almost_all = np.ones(len(lines))
    almost_all[:2] = 0  # two negative lines
    views = with_feature(views, "mutation", "TWO", two)
    views = with_feature(views, "mutation", "THREE", three)
    views = with_feature(views, "mutation", "ALMOST_ALL", almost_all)
    views = with_feature(views, "mutation", "NONE", np.zeros(len(lines)))
    views = with_feature(views, "expression", "CONSTANT", np.full(len(lines), 7.0))
    response = pd.concat([response, pd.DataFrame({"cell_line": lines[:5], "drug": "SMALL", "response": 1.0})])
    response = response[~((response.drug != "SMALL") & response.cell_line.isin(lines[:3]) & (response.drug != "D0"))]
    table = association_test(response, views, tissue, min_positive=3)
    assert not (table.drug == "SMALL").any()  # 5 cell lines < min_cell_lines
    skipped = table.attrs["skipped"]
    assert skipped["drugs_too_few_cell_lines"] == 2  # SMALL, once per view
    # D0 keeps the three first lines: THREE is tested; D1 and D2 lost them: THREE has no positive left (flat)
    assert row(table, "D0", "mutation:THREE").n_positive == 3
    assert not (table.feature.isin(["mutation:TWO", "mutation:ALMOST_ALL", "mutation:NONE",
                                    "expression:CONSTANT"])).any()
    assert not ((table.feature == "mutation:THREE") & (table.drug != "D0")).any()
    # D0: TWO and ALMOST_ALL too few; NONE and CONSTANT flat. D1, D2: TWO, THREE, NONE, ALMOST_ALL (all positive
    # then) and CONSTANT flat
    assert skipped["too_few_positive"] == 2
    assert skipped["no_variance_within_tissue"] == 2 + 2 * 5
    relaxed = association_test(response, views, tissue, min_positive=2)
    assert row(relaxed, "D0", "mutation:TWO").n_positive == 2
    assert row(relaxed, "D0", "mutation:ALMOST_ALL").n_positive == len(response[response.drug == "D0"]) - 2


def test_missing_feature_values_rejected():
    response, views, tissue = synthetic_screen(seed=8, n_drugs=1, n_mutations=2, n_expression=2)
    values = np.ones(len(tissue))
    values[4] = np.nan
    with pytest.raises(ValueError, match="missing values"):
        association_test(response, with_feature(views, "expression", "GAP", values), tissue)


def test_volcano_plot_writes_png(tmp_path):
    response, views, tissue = synthetic_screen(seed=9, n_drugs=3, n_mutations=20, n_expression=20)
    planted = np.zeros(len(tissue))
    planted[::5] = 1
    views = with_feature(views, "mutation", "PLANT", planted)
    response.loc[(response.drug == "D1") & response.cell_line.isin(tissue.index[::5]), "response"] -= 3
    table = association_test(response, views, tissue)
    assert (table.fdr < 0.05).any()
    out = tmp_path / "figures" / "volcano.png"
    volcano_plot(table, out, "synthetic associations", label_top=5)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in out.parent.iterdir()] == ["volcano.png"]  # no partial left behind
    empty = tmp_path / "empty.png"
    volcano_plot(table.iloc[:0], empty, "nothing")
    assert empty.read_bytes()[:4] == b"\x89PNG"
