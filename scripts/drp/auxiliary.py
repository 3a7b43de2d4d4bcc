"""Auxiliary responses: the training cell lines' responses in other screens of the same source (e.g. GDSC1
and CCLE next to GDSC2), as extra per-drug heads of a multi-task model (``models.<name>.auxiliary_responses``).

A multi-task model (Dr.VAE, the multi-task MLP, MOICVAE) learns one cell-line latent from all drugs of a
cell line; the other screens' responses of the same training cell lines are more supervision for it. They
enter as drugs of their own, ``<data set>:<drug>``, so that they get heads of their own and never mix with
the primary data set's drugs (a drug screened twice gets two heads). The models standardize every drug's
responses themselves; nothing is standardized here.

Leakage rules (every one is tested in tests/unit/test_auxiliary.py):

- Only cell lines of the primary data set's training roles in this fold contribute, and only those whose
  primary pairs are all in those roles: a cell line with a test pair in the fold contributes nothing, and in
  the candidate-selection fits neither does one with a validation pair (early stopping and the choice of
  candidate stay on the primary validation pairs alone). The refit (on all non-test pairs) takes the
  training and validation cell lines. A cell line that the primary data set lacks (one only screened in the
  auxiliary data set) contributes nothing: it has no role in the fold.
- Auxiliary pairs go to the training pairs only, never to the validation pairs, and never to predictions:
  the test predictions, view randomization and cross-study predictions only ask for the primary drugs.
- A model that saw data set B's responses (of its training cell lines) is no cross-study result on B: the
  workflow leaves it out of the cross-study prediction and evaluation on B (``cross_study_models``).
- Under pair-wise splits (LPO) a test pair's cell line is also a training cell line, and its responses to
  the same compound in another screen would leak the test pair: such models do not run under LPO
  (``runs_in_mode``), as models of known drugs do not run under LDO.

The helpers for the workflow (DAG time) import nothing heavy; pandas is imported by the training ones only.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pandas is imported by the training helpers when they run, never at DAG time
    import pandas as pd

log = logging.getLogger(__name__)

KEY = "auxiliary_responses"  # the model entry's key
DRUG_SEPARATOR = ":"  # <data set>:<drug>; data set names cannot contain it (config schema)
_INPUT = "auxiliary__"  # rule train's input of one auxiliary data set's response table: auxiliary__<data set>


# --- config and workflow (DAG time) -------------------------------------------------------------------------

def datasets_of(spec: Mapping) -> list[str]:
    """The auxiliary data sets of a model entry (none without the key)."""
    return list(spec.get(KEY) or [])


def input_name(dataset: str) -> str:
    return _INPUT + dataset


def input_paths(paths: Mapping) -> dict[str, str]:
    """``{data set: response.parquet}`` of the inputs named by ``input_name``."""
    return {key.removeprefix(_INPUT): path for key, path in paths.items() if key.startswith(_INPUT)}


def prefixed(dataset: str, drug: str) -> str:
    return f"{dataset}{DRUG_SEPARATOR}{drug}"


def runs_in_mode(spec: Mapping, mode: str) -> bool:
    """Under LPO the test pairs' cell lines are training cell lines too (see the module docstring)."""
    return mode != "LPO" or not datasets_of(spec)


def cross_study_models(config: Mapping, models: list[str], target: str) -> list[str]:
    """``models`` less those trained with auxiliary responses of ``target``: they saw the target's responses
    of their training cell lines, so their predictions on it are no cross-study result."""
    return [m for m in models if target not in datasets_of(config["models"][m])]


def skipped_cross_study(config: Mapping, models: list[str], pairs: list[tuple[str, str]]) -> list[str]:
    """One line per (training, test, model) that ``cross_study_models`` leaves out, for the workflow's log."""
    return [f"cross-study {train} -> {test}: model {model!r} left out, since it trained on {test}'s responses of "
            f"its training cell lines (models.{model}.{KEY}); its predictions on {test} would not be a "
            "cross-study result"
            for train, test in pairs for model in models if model not in cross_study_models(config, [model], test)]


def config_problems(config: Mapping) -> list[str]:
    """What config validation refuses: auxiliary responses of a model that predicts unseen drugs, of an
    undefined data set, of the data set a run model trains on, and for a baseline of the cross-study."""
    from .models import catalog

    problems = []
    for name, spec in config["models"].items():
        datasets = datasets_of(spec)
        if not datasets:
            continue
        where = f"models.{name}.{KEY}"
        try:
            unseen_drugs = catalog.traits(spec).handles_unseen_drugs
        except ValueError:  # an unknown class: reported where classes are resolved
            unseen_drugs = False
        if unseen_drugs:
            problems.append(f"{where}: model class {spec['class']!r} predicts for unseen drugs from drug structure "
                            "features; auxiliary responses are extra per-drug heads, for models of known drugs "
                            "only (drvae, multitask_mlp, moicvae, ...)")
        problems += [f"{where}: {dataset!r} is not defined under datasets" for dataset in datasets
                     if dataset not in config["datasets"]]
        if name in config["run"]["models"]:
            problems += [f"{where}: {dataset!r} is the data set the model trains on (run.datasets); auxiliary "
                         "responses come from other data sets" for dataset in datasets
                         if dataset in config["run"]["datasets"]]
    evaluation = config["evaluation"]
    targets = set((evaluation.get("cross_study") or {}).get("test", []))
    for role in ("baseline", "naive_baseline"):
        name = evaluation.get(role)
        spec = config["models"].get(name) if name is not None else None
        shared = sorted(targets & set(datasets_of(spec or {})))
        if shared:
            problems.append(f"evaluation.{role}: {name!r} trains with auxiliary responses of the cross-study "
                            f"target(s) {shared}, so it is left out of their cross-study evaluation, which needs "
                            "the baseline; choose a baseline without them")
    return problems


# --- training (drp.stages.train.fit_fold) -------------------------------------------------------------------

def cell_lines_in_roles(pairs, roles) -> set:
    """Cell lines whose every pair of the fold (``pairs``: ``train.fold_pairs``) has a role in ``roles``."""
    inside = pairs.role.isin(list(roles))
    return set(pairs.loc[inside, "cell_line"]) - set(pairs.loc[~inside, "cell_line"])


def auxiliary_pairs(responses: Mapping, cell_lines, primary_drugs) -> pd.DataFrame:
    """The pairs of ``cell_lines`` in every auxiliary data set (``responses``: data set -> response table),
    their drugs renamed ``<data set>:<drug>``: (cell_line, drug, response)."""
    import numpy as np
    import pandas as pd

    cell_lines, frames = set(cell_lines), []
    for dataset, response in responses.items():
        pairs = response.loc[response.cell_line.isin(cell_lines), ["cell_line", "drug", "response"]]
        values = pairs.response.to_numpy(dtype=np.float64)
        with np.errstate(over="ignore", invalid="ignore"):
            bad = ~np.isfinite(np.square(values))
        if bad.any():
            row = pairs[bad].iloc[0]
            raise ValueError(f"auxiliary responses of {dataset}: response {float(row.response)!r} of ({row.cell_line}, "
                             f"{row.drug}) and {int(bad.sum()) - 1} more are missing or cannot be squared")
        frames.append(pairs.assign(drug=prefixed(dataset, "") + pairs.drug.astype(str)))
    extra = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["cell_line", "drug", "response"])
    clash = set(extra.drug) & set(primary_drugs)
    if clash:
        raise ValueError(f"auxiliary drug names {sorted(clash)[:3]} are drugs of the primary data set too")
    return extra.reset_index(drop=True)


def fold_auxiliary(paths: Mapping, spec: Mapping, pairs, seed: int):
    """(selection, refit): the auxiliary training pairs of the candidate-selection fits (cell lines of the
    training role only) and of the refit (training and validation roles), never of a cell line with a test
    pair. ``pairs``: the fold's primary pairs with their roles. With ``permute_labels``, the responses are
    shuffled within each auxiliary drug over the refit's pairs, as the primary ones are over all non-test
    pairs: a permutation control must not learn from them either."""
    from .dataset import read_response
    from .models.selection import permute_within_drug
    from .splits import TRAIN, VALIDATION

    files = input_paths(paths)
    missing = [dataset for dataset in datasets_of(spec) if dataset not in files]
    if missing:
        raise ValueError(f"{KEY}: no response table of {missing} among the training job's inputs "
                         f"({', '.join(input_name(d) for d in missing)})")
    responses = {dataset: read_response(files[dataset]) for dataset in datasets_of(spec)}
    selection_cells = cell_lines_in_roles(pairs, {TRAIN})
    refit_cells = cell_lines_in_roles(pairs, {TRAIN, VALIDATION})
    primary_drugs = set(pairs.drug)
    refit = auxiliary_pairs(responses, refit_cells, primary_drugs)
    for dataset, response in responses.items():
        if not set(pairs.cell_line) & set(response.cell_line):  # other ids (another source): a silent no-op else
            raise ValueError(f"{KEY}: {dataset} has no cell line of the training data set (e.g. "
                             f"{sorted(set(pairs.cell_line))[:3]}); auxiliary data sets must share its cell-line ids")
        shared = refit_cells & set(response.cell_line)
        if not shared:  # e.g. under LPO or LDO, where every cell line has test pairs in the fold
            log.warning("auxiliary responses of %s: no cell line of this fold is free of test pairs; none is used",
                        dataset)
        log.info("auxiliary responses of %s: %d pairs of %d drugs on %d of %d training and validation cell lines "
                 "(%d of its cell lines left out: test cell lines or not in this fold's training roles)",
                 dataset, sum(drug.startswith(prefixed(dataset, "")) for drug in refit.drug), response.drug.nunique(),
                 len(shared), len(refit_cells), response.cell_line.nunique() - len(shared))
    if spec.get("permute_labels"):
        refit = permute_within_drug(refit, seed)
    selection = refit[refit.cell_line.isin(selection_cells)].reset_index(drop=True)
    return selection, refit


def extend_training(paths: Mapping, spec: Mapping, pairs, train_pairs, all_pairs, fit_on_all: bool, seed: int):
    """``train_pairs`` and ``all_pairs`` (the refit's) with the auxiliary pairs appended (``fold_auxiliary``);
    ``fit_on_all``: the first fit already trains on all non-test pairs (no validation pairs kept apart), so it
    takes the refit's auxiliary pairs. Validation pairs get none."""
    import pandas as pd

    selection, refit = fold_auxiliary(paths, spec, pairs, seed)
    return (pd.concat([train_pairs, refit if fit_on_all else selection], ignore_index=True),
            pd.concat([all_pairs, refit], ignore_index=True))
