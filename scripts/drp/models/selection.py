"""Hyperparameter selection, the same for every model: grid candidates fitted on the training pairs, the
one with the lowest mean squared error on the validation pairs kept. The test fold plays no part."""

from __future__ import annotations

import logging
import time

import numpy as np

log = logging.getLogger(__name__)


def grid_candidates(spec: dict) -> list[dict]:
    """Every combination of the spec's ``grid`` values over its ``params`` (one candidate without a grid)."""
    grid = spec.get("grid") or {}
    candidates = [dict(spec.get("params") or {})]
    for name, values in grid.items():
        candidates = [{**params, name: value} for params in candidates for value in values]
    return candidates


def permute_within_drug(pairs, seed: int):
    """The label-permutation control: responses shuffled across cell lines within each drug, so the
    omics carry no information about them while each drug keeps its distribution."""
    rng = np.random.default_rng(seed)
    shuffled = pairs.copy()
    for _, index in pairs.groupby("drug").indices.items():
        shuffled.iloc[index, shuffled.columns.get_loc("response")] = pairs.response.to_numpy()[rng.permutation(index)]
    return shuffled


def validation_mse(model, pairs, cells) -> float:
    """The one selection criterion for every model: mean squared error on the validation pairs."""
    predicted = model.predict(pairs[["cell_line", "drug"]], cells)["y_pred"].to_numpy()
    return float(np.mean((predicted - pairs.response.to_numpy()) ** 2))


def fit_best(spec: dict, make_data, seed: int):
    """Fit every candidate of ``spec`` on ``make_data(index)`` (a TrainingData) and return the one with the
    lowest validation MSE, its ``selection`` table attached (every candidate, its score and fitting time)."""
    import pandas as pd

    from . import create

    best, best_index, best_score, selection = None, 0, float("inf"), []
    for index, params in enumerate(grid_candidates(spec)):
        data = make_data(index)
        model = create({**spec, "params": params})
        np.random.seed(seed)
        started = time.perf_counter()
        model.fit(data)
        score = validation_mse(model, data.validation, data.cells) if len(data.validation) else float("nan")
        if len(data.validation) and not np.isfinite(score):  # every candidate would tie: the choice is void
            largest = float(np.abs(data.train_and_validation.response).max())
            raise ValueError(f"{spec['class']} candidate {params}: the validation mean squared error is {score} "
                             f"(largest |response| {largest:.3g}); extreme or overflowing response values leave "
                             "nothing to choose on: check the data set's responses")
        seconds = time.perf_counter() - started
        selection.append({**{k: params[k] for k in spec.get("grid") or {}}, "validation_mse": score,
                          "seconds": round(seconds, 1)})
        log.info("fitted %s %s on %d pairs of %d cell lines (%d validation pairs) in %.1f s", spec["class"],
                 selection[-1], len(data.train), len(data.cells.cell_lines), len(data.validation), seconds)
        if best is None or score < best_score:  # NaN (no validation pairs) keeps the first candidate
            best, best_index, best_score = model, index, score
    best.selection = pd.DataFrame(selection).assign(chosen=np.arange(len(selection)) == best_index)
    return best


def refit(best, spec: dict, data, seed: int):
    """The chosen candidate fitted again on ``data`` (all non-test pairs, no validation pairs), with the
    parameters ``best.refit_params()`` gives: the same, except that a model that stopped early trains for the
    epochs or trees it stopped at. Its ``selection`` table gains a row ``refit`` with the fitting time."""
    import pandas as pd

    params = best.refit_params()
    model = type(best)(**params)
    np.random.seed(seed)
    started = time.perf_counter()
    model.fit(data)
    seconds = time.perf_counter() - started
    log.info("refit %s on %d pairs of %d cell lines in %.1f s (%s)", spec["class"], len(data.train),
             len(data.cells.cell_lines), seconds,
             {k: f"{len(v)} entries" if isinstance(v, dict) else v for k, v in params.items() if best.params.get(k) != v})
    chosen = best.selection[best.selection.chosen].iloc[0]
    row = {**{k: chosen[k] for k in spec.get("grid") or {}}, "validation_mse": np.nan, "seconds": round(seconds, 1),
           "chosen": False, "refit": True}
    model.selection = pd.concat([best.selection.assign(refit=False), pd.DataFrame([row])], ignore_index=True)
    return model
