"""LINCS L1000 drug-perturbation profiles from GEO (GSE92742, phase I; GSE70138, phase II).

Dr.VAE needs, per drug, pairs of the same cell line's expression before (x1) and after (x2) treatment.
Two LINCS levels can supply them (config key ``perturbations.level``):

Level 3 (the default when ``inst_info`` is configured; the faithful source)
  - GSE92742_Broad_LINCS_Level3_INF_mlr12k_n1319138x12328.gctx.gz: one profile per instance (one well of
    one RNA plate), quantile-normalized log2 expression of 978 measured landmark genes plus 11,350 genes
    inferred from them; 12,328 genes x 1,319,138 instances (GCTX column ids = ``inst_id``).
  - GSE92742_Broad_LINCS_inst_info.txt.gz: one row per instance; required columns ``inst_id, rna_plate,
    pert_iname, pert_type, cell_id, pert_dose, pert_time`` (the file also has rna_well, pert_id,
    pert_dose_unit, pert_time_unit). Vehicle controls are pert_type ``ctl_vehicle`` (DMSO), compound
    treatments ``trt_cp``.
  Pairing (``build_level3_pairs``): every treated instance of a requested drug in a requested cell line at
  the requested time gives one pair, x2 = that instance's profile and x1 = the mean of the vehicle controls
  of the same cell line, time and ``rna_plate``: plate-matched, so plate and batch effects, which are large
  in L1000, cancel in x2 - x1. A treated instance whose plate has no vehicle control is skipped and counted
  unless ``fallback_across_plates`` is set; then x1 is the mean of the cell line's vehicle controls at that
  time on all plates (counted apart as fallback pairs). A cell line with no vehicle control at that time
  at all is always skipped and counted.

Level 5 (``level: 5`` with ``sig_info``; kept for existing configs)
  - GSE92742_Broad_LINCS_Level5_COMPZ.MODZ_n473647x12328.gctx.gz: signatures (replicate-collapsed moderated
    z-scores against the plate population), 12,328 genes x 473,647 signatures.
  - GSE92742_Broad_LINCS_sig_info.txt.gz: one row per signature (``sig_id, pert_id, pert_iname, pert_type,
    cell_id, pert_dose, pert_dose_unit, pert_idose, pert_time, pert_time_unit, pert_itime, distil_id``);
    controls have pert_dose = -666.
  Pairing (``build_perturbation_pairs``): each treated signature is paired with the mean of that cell
  line's vehicle-control signatures at the same time over all plates (not plate-matched: a signature has
  no single plate). Values are already z-scores against the plate population, so x2 - x1 is a difference
  of z-scores, not a log fold change.

Both levels share GSE92742_Broad_LINCS_gene_info.txt.gz: ``pr_gene_id`` (Entrez id, the GCTX row id),
``pr_gene_symbol``, ``pr_is_lm`` (1 for the 978 measured landmark genes, 0 for inferred ones). HDF5 needs
random access, so gunzip each GCTX once (``gunzip -k``; level 3 is ~50 GB) and configure the ``.gctx``.

Selection, both levels: drug names match case-insensitively after stripping; cell lines match on
``drp.names.normalize_cell_line_name`` of both sides ('MCF-7' == 'MCF7'); only ``pert_time`` (hours) is kept.

Gene space and scale. GCTX rows (Entrez ids) are mapped to gene symbols through gene_info
(``pr_gene_id -> pr_gene_symbol``), landmark genes only by default (``landmarks_only: true``: the inferred
genes are a linear function of the landmarks, so they add no measured information). The output's var_names
are those symbols, matching the pipeline's expression view, whose features are gene symbols; ``uns["lincs"]``
records ``level``, ``scale`` (``"log2"`` for level 3: log2 expression, not standardized; ``"zscore"`` for
level 5), ``landmarks_only``, ``genes`` (gene ids mapped to a symbol and kept) and the pairing counts.
Training (``drp.stages.train.perturbation_arrays``) then puts the pairs on each fold's fitted expression
features: genes of the fold's features that LINCS measures are filled, the others are 0 (the training mean
after scaling). Level-3 ("log2") pairs go through the fold's own per-feature scaling, (value - train_mean) /
train_std of the fitted view's var (and its clip, if any), so x1 and x2 are on the z-scale of the baseline
omics. GDSC expression is RMA log2 microarray signal and L1000 is log2 bead signal: per-gene platform
offsets remain in x1 and x2 alike, while x2 - x1 (same plate, same platform) is a log2 fold change in units
of the gene's training standard deviation. Level-5 ("zscore") pairs are used as they are.

GCTX layout (HDF5; the format cmapPy's ``parse_gctx``/``write_gctx`` read and write):
  ``0/META/ROW/id``   row ids (genes, Entrez ids), byte strings
  ``0/META/COL/id``   column ids (instances or signatures), byte strings
  ``0/DATA/0/matrix`` the values, stored TRANSPOSED: shape (n_columns, n_rows), i.e. one HDF5 row
                      per column id. cmapPy writes ``data_df.transpose()`` and reads
                      ``data_dset[cidx, :]`` then ``.transpose()``; ``read_gctx`` does the same and
                      checks the shape against both id lists, so a file in the other orientation fails
                      loudly instead of being read transposed.
"""

from __future__ import annotations

import gzip
import logging
from collections.abc import Iterable, Mapping
from pathlib import Path

import anndata as ad
import h5py
import numpy as np
import pandas as pd

from ..names import normalize_cell_line_name

log = logging.getLogger(__name__)

MATRIX_KEY = "0/DATA/0/matrix"
ROW_ID_KEY = "0/META/ROW/id"
COL_ID_KEY = "0/META/COL/id"
SIG_INFO_REQUIRED = ("sig_id", "pert_iname", "pert_type", "cell_id", "pert_dose", "pert_time")
INST_INFO_REQUIRED = ("inst_id", "rna_plate", "pert_iname", "pert_type", "cell_id", "pert_dose", "pert_time")
GENE_INFO_REQUIRED = ("pr_gene_id", "pr_gene_symbol", "pr_is_lm")
TREATED_TYPE = "trt_cp"
#: uns["lincs"]["scale"] per level: what perturbation_arrays must do to put the values on the fold's z-scale
SCALES = {3: "log2", 5: "zscore"}
#: signatures read from the GCTX per HDF5 read: bounds memory to block x 12,328 genes before the gene subset
READ_BLOCK = 2048


def _decode_ids(values: np.ndarray) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values]


def _positions(path: Path, what: str, all_ids: list[str], wanted: Iterable[str] | None) -> np.ndarray | None:
    """Positions of ``wanted`` ids in ``all_ids`` (None = all); raise KeyError naming missing ones."""
    if wanted is None:
        return None
    wanted = [str(w) for w in wanted]
    lookup = {name: i for i, name in enumerate(all_ids)}
    missing = [w for w in wanted if w not in lookup]
    if missing:
        raise KeyError(f"{path}: {len(missing)} {what} ids not in the file, e.g. {missing[:5]}")
    return np.array([lookup[w] for w in wanted], dtype=np.int64)


def _read_selection(dset, positions: np.ndarray | None, axis: int) -> np.ndarray:
    """Read ``positions`` along ``axis`` of ``dset`` (None = everything), in the requested order.

    h5py needs increasing, duplicate-free indices, so read the sorted unique set and reorder in memory.
    """
    if positions is None:
        return dset[()]
    unique, inverse = np.unique(positions, return_inverse=True)
    if unique.size == 0:
        shape = list(dset.shape)
        shape[axis] = 0
        return np.empty(shape, dtype=dset.dtype)
    selection = (unique, slice(None)) if axis == 0 else (slice(None), unique)
    return np.take(dset[selection], inverse, axis=axis)


def _read_columns(dset, col_pos: np.ndarray, row_pos: np.ndarray | None) -> np.ndarray:
    """Stored rows ``col_pos`` (signatures/instances), genes ``row_pos`` (None = all), in the requested order.

    Read in blocks of ``READ_BLOCK`` signatures and cut to the requested genes per block: a level-3 pairing
    reads tens of thousands of instances, which at all 12,328 genes would need gigabytes at once.
    """
    unique, inverse = np.unique(col_pos, return_inverse=True)
    n_genes = dset.shape[1] if row_pos is None else len(row_pos)
    out = np.empty((len(unique), n_genes), dtype=dset.dtype)
    for start in range(0, len(unique), READ_BLOCK):
        block = dset[unique[start:start + READ_BLOCK], :]
        out[start:start + READ_BLOCK] = block if row_pos is None else block[:, row_pos]
    return out[inverse.reshape(-1)]


def read_gctx(path: str | Path, rows: Iterable[str] | None = None, cols: Iterable[str] | None = None) -> pd.DataFrame:
    """Genes x signatures (float32) from a GCTX file, reading only the requested rows/columns.

    ``rows``/``cols`` are id lists (None = all), returned in the order given. Only the selected
    signatures are read from disk (they are rows of the stored, transposed matrix).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such GCTX file")
    try:
        handle = h5py.File(path, "r")
    except OSError as err:
        raise ValueError(f"{path}: not an HDF5/GCTX file (gunzip a .gctx.gz first): {err}") from None
    with handle:
        missing = [key for key in (MATRIX_KEY, ROW_ID_KEY, COL_ID_KEY) if key not in handle]
        if missing:
            raise KeyError(f"{path}: missing HDF5 key(s) {missing}; not a GCTX file")
        row_ids, col_ids = _decode_ids(handle[ROW_ID_KEY][()]), _decode_ids(handle[COL_ID_KEY][()])
        dset = handle[MATRIX_KEY]
        if dset.shape != (len(col_ids), len(row_ids)):
            raise ValueError(f"{path}: {MATRIX_KEY} has shape {dset.shape}, expected (n_columns, n_rows) = "
                             f"({len(col_ids)}, {len(row_ids)})")
        row_pos = _positions(path, "row", row_ids, rows)
        col_pos = _positions(path, "column", col_ids, cols)
        if col_pos is not None:  # signatures are HDF5 rows: select them on disk, then genes in memory
            data = _read_columns(dset, col_pos, row_pos)
        else:
            data = _read_selection(dset, row_pos, axis=1)
    index = row_ids if row_pos is None else [row_ids[i] for i in row_pos]
    columns = col_ids if col_pos is None else [col_ids[i] for i in col_pos]
    return pd.DataFrame(data.T.astype(np.float32, copy=False), index=pd.Index(index, name="rid"),
                        columns=pd.Index(columns, name="cid"))


def _read_tsv(path: str | Path, required: tuple[str, ...], str_columns: tuple[str, ...]) -> pd.DataFrame:
    """Read a plain or gzipped TSV (detected from the content) and check ``required`` columns."""
    path = Path(path)
    with open(path, "rb") as handle:
        gzipped = handle.read(2) == b"\x1f\x8b"
    with (gzip.open(path, "rt") if gzipped else open(path)) as handle:
        frame = pd.read_csv(handle, sep="\t", dtype={c: str for c in str_columns}, low_memory=False)
    _check_columns(frame, required, str(path))
    return frame


def _check_columns(frame: pd.DataFrame, required: tuple[str, ...], source: str) -> None:
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise ValueError(f"{source}: missing column(s) {missing}; has {list(frame.columns)}")


def _numeric_columns(frame: pd.DataFrame, path, columns=("pert_dose", "pert_time")) -> pd.DataFrame:
    for column in columns:
        converted = pd.to_numeric(frame[column], errors="coerce")
        bad = frame[column][converted.isna() & frame[column].notna()]
        if len(bad):
            raise ValueError(f"{path}: non-numeric {column} values, e.g. {bad.unique()[:3].tolist()}")
        frame[column] = converted
    return frame


def read_sig_info(path: str | Path) -> pd.DataFrame:
    """The level-5 sig_info table (``sig_id, pert_iname, pert_type, cell_id, pert_dose, pert_time`` required)."""
    frame = _read_tsv(path, SIG_INFO_REQUIRED, ("sig_id", "pert_id", "pert_iname", "pert_type", "cell_id"))
    return _numeric_columns(frame, path)


def read_inst_info(path: str | Path) -> pd.DataFrame:
    """The level-3 inst_info table (``INST_INFO_REQUIRED`` columns; ids and plates as strings)."""
    frame = _read_tsv(path, INST_INFO_REQUIRED,
                      ("inst_id", "rna_plate", "rna_well", "pert_id", "pert_iname", "pert_type", "cell_id"))
    return _numeric_columns(frame, path)


def read_gene_info(path: str | Path) -> pd.DataFrame:
    """The gene_info table (``pr_gene_id`` as string, to match GCTX row ids; ``pr_is_lm`` as int)."""
    frame = _read_tsv(path, GENE_INFO_REQUIRED, ("pr_gene_id", "pr_gene_symbol"))
    frame["pr_is_lm"] = frame["pr_is_lm"].astype(int)
    return frame


def _requested(meta: pd.DataFrame, cell_lines: Iterable[str], drugs: Iterable[str], pert_time: float,
               control_type: str) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, str], set[str]]:
    """(treated rows of requested drugs, control rows), both of requested cell lines at ``pert_time``."""
    drug_names: dict[str, str] = {}
    for drug in drugs:
        drug_names.setdefault(str(drug).strip().lower(), str(drug).strip())
    wanted_cells = {normalize_cell_line_name(c) for c in cell_lines}
    rows = meta.assign(cell_line=meta.cell_id.map(normalize_cell_line_name),
                       drug_key=meta.pert_iname.astype(str).str.strip().str.lower())
    at_time = rows[(pd.to_numeric(rows.pert_time) == pert_time) & rows.cell_line.isin(wanted_cells)]
    treated = at_time[(at_time.pert_type == TREATED_TYPE) & at_time.drug_key.isin(drug_names)]
    controls = at_time[at_time.pert_type == control_type]
    return treated, controls, drug_names, wanted_cells


def _genes(gene_info: pd.DataFrame, landmark_only: bool) -> tuple[pd.DataFrame, pd.Series]:
    """gene_info rows kept (landmarks only by default) and their symbols, which must be unique."""
    genes = gene_info[gene_info.pr_is_lm == 1] if landmark_only else gene_info
    genes = genes[genes.pr_gene_symbol.notna()]  # an id without a symbol cannot meet the expression view
    symbols = genes.pr_gene_symbol.astype(str)
    if symbols.duplicated().any():
        raise ValueError(f"gene_info: duplicate gene symbols {sorted(symbols[symbols.duplicated()].unique())[:5]}")
    return genes, symbols


def _obs(treated: pd.DataFrame, drug_names: dict[str, str], id_column: str) -> pd.DataFrame:
    return pd.DataFrame({"cell_line": treated.cell_line.to_numpy(),
                         "drug": treated.drug_key.map(drug_names).to_numpy(),
                         "dose": treated.pert_dose.astype(float).to_numpy(),
                         "time": pd.to_numeric(treated.pert_time).to_numpy(),
                         id_column: treated[id_column].astype(str).to_numpy()},
                        index=pd.Index(treated[id_column].astype(str), name=None))


def _uns(level: int, landmark_only: bool, genes: int, counts: dict) -> dict:
    return {"level": level, "scale": SCALES[level], "landmarks_only": bool(landmark_only), "genes": genes, **counts}


def _pair_views(x1: np.ndarray, x2: np.ndarray, obs: pd.DataFrame, genes: pd.DataFrame, symbols: pd.Series,
                treated: pd.DataFrame, uns: dict) -> tuple[ad.AnnData, ad.AnnData, pd.DataFrame]:
    """x1 and x2 as AnnData sharing ``obs`` and the genes' var (``x2.uns["lincs"] = uns``), and the pairs table:
    obs with the source ``cell_id`` and ``pert_iname``."""
    var = pd.DataFrame({"gene_id": genes.pr_gene_id.astype(str).to_numpy()}, index=pd.Index(symbols, name=None))
    x1 = ad.AnnData(np.asarray(x1, dtype=np.float32), obs=obs.copy(), var=var.copy())
    x2 = ad.AnnData(np.asarray(x2, dtype=np.float32), obs=obs.copy(), var=var.copy())
    x2.uns["lincs"] = uns
    pairs = obs.reset_index(drop=True).assign(cell_id=treated.cell_id.to_numpy(),
                                              pert_iname=treated.pert_iname.to_numpy())
    return x1, x2, pairs


def build_perturbation_pairs(gctx_path: str | Path, sig_info: pd.DataFrame | str | Path,
                             gene_info: pd.DataFrame | str | Path, cell_lines: Iterable[str],
                             drugs: Iterable[str], pert_time: float = 6, control_type: str = "ctl_vehicle",
                             landmark_only: bool = True) -> tuple[ad.AnnData, ad.AnnData, pd.DataFrame]:
    """Level 5: (control profiles x1, treated profiles x2, pairs table), one row per treated signature.

    x1 and x2 share obs (``cell_line`` normalized, ``drug`` as requested, ``dose``, ``time``,
    ``sig_id``; obs_names = sig_id) and var (gene symbols, landmark genes only by default). The pairs
    table adds the source ``cell_id``/``pert_iname`` and ``n_controls`` (signatures averaged into x1).
    Counts (matched, skipped for lack of a control, genes) and the scale are logged and kept in
    ``x2.uns["lincs"]``.
    """
    if not isinstance(sig_info, pd.DataFrame):
        sig_info = read_sig_info(sig_info)
    if not isinstance(gene_info, pd.DataFrame):
        gene_info = read_gene_info(gene_info)
    _check_columns(sig_info, SIG_INFO_REQUIRED, "sig_info")
    _check_columns(gene_info, GENE_INFO_REQUIRED, "gene_info")

    treated, controls, drug_names, wanted_cells = _requested(sig_info, cell_lines, drugs, pert_time, control_type)
    n_controls = controls.groupby("cell_line").size()
    has_control = treated.cell_line.isin(n_controls.index)
    skipped = treated[~has_control]
    treated = treated[has_control].sort_values(["cell_line", "drug_key", "pert_dose", "sig_id"])
    stats = {"treated_matched": int(len(treated) + len(skipped)), "skipped_no_control": int(len(skipped)),
             "pairs": int(len(treated)), "controls_used": int(controls.cell_line.isin(treated.cell_line).sum())}
    if len(skipped):
        log.warning("LINCS: skipped %d treated signatures without %s controls at time %s in %s",
                    len(skipped), control_type, pert_time, sorted(skipped.cell_line.unique()))
    if treated.empty:
        raise ValueError(f"LINCS: no treated signatures with controls for drugs {sorted(drug_names.values())} in "
                         f"cell lines {sorted(wanted_cells)} at time {pert_time} ({stats})")

    genes, symbols = _genes(gene_info, landmark_only)
    controls = controls[controls.cell_line.isin(treated.cell_line)]
    values = read_gctx(gctx_path, rows=genes.pr_gene_id.astype(str),
                       cols=pd.concat([treated.sig_id, controls.sig_id]).drop_duplicates())
    control_means = values[controls.sig_id].T.groupby(controls.cell_line.to_numpy()).mean()

    obs = _obs(treated, drug_names, "sig_id")
    x1, x2, pairs = _pair_views(control_means.loc[obs.cell_line].to_numpy(), values[treated.sig_id].T.to_numpy(),
                                obs, genes, symbols, treated, _uns(5, landmark_only, int(len(genes)), stats))
    pairs["n_controls"] = n_controls.loc[obs.cell_line].to_numpy()
    var = x2.var
    log.info("LINCS level 5: %d pairs (%d cell lines, %d drugs), %d control signatures, %d genes (z-scores); "
             "%d skipped", stats["pairs"], obs.cell_line.nunique(), obs.drug.nunique(), stats["controls_used"],
             len(var), stats["skipped_no_control"])
    return x1, x2, pairs


def build_level3_pairs(gctx_path: str | Path, inst_info: pd.DataFrame | str | Path,
                       gene_info: pd.DataFrame | str | Path, cell_lines: Iterable[str], drugs: Iterable[str],
                       pert_time: float = 6, control_type: str = "ctl_vehicle", landmark_only: bool = True,
                       fallback_across_plates: bool = False) -> tuple[ad.AnnData, ad.AnnData, pd.DataFrame]:
    """Level 3: (control profiles x1, treated profiles x2, pairs table), one row per treated instance.

    x2 is the instance's log2 profile; x1 the mean of the ``control_type`` instances of the same cell line
    and time on the same ``rna_plate``. Without such a control the instance is skipped, or, with
    ``fallback_across_plates``, paired with the mean of the cell line's controls at that time on all plates.
    obs: ``cell_line`` (normalized), ``drug`` (as requested), ``dose``, ``time``, ``inst_id``, ``rna_plate``,
    ``control_match`` ("plate" or "fallback"), ``n_controls``; obs_names = inst_id; var = gene symbols (landmarks
    only by default), with ``gene_id``. The pairs table adds ``cell_id``/``pert_iname``. Counts and the scale
    are logged and kept in ``x2.uns["lincs"]``.
    """
    source = "inst_info"
    if not isinstance(inst_info, pd.DataFrame):
        source = str(inst_info)
        inst_info = read_inst_info(inst_info)
    if not isinstance(gene_info, pd.DataFrame):
        gene_info = read_gene_info(gene_info)
    _check_columns(inst_info, INST_INFO_REQUIRED, source)
    _check_columns(gene_info, GENE_INFO_REQUIRED, "gene_info")

    treated, controls, drug_names, wanted_cells = _requested(inst_info, cell_lines, drugs, pert_time, control_type)
    # one key per (cell line, plate): a plate id alone could in principle recur across cell lines
    treated, controls = (frame.assign(rna_plate=frame.rna_plate.astype(str),
                                      plate_key=frame.cell_line + "\t" + frame.rna_plate.astype(str))
                         for frame in (treated, controls))
    on_plate = treated.plate_key.isin(set(controls.plate_key)).to_numpy()
    has_any = treated.cell_line.isin(set(controls.cell_line)).to_numpy()
    fallback = ~on_plate & has_any & fallback_across_plates
    keep = on_plate | fallback
    counts = {"treated_matched": int(len(treated)), "paired_plate_matched": int(on_plate.sum()),
              "paired_fallback": int(fallback.sum()),
              "skipped_no_plate_control": int((~on_plate & has_any & ~fallback).sum()),
              "skipped_no_control": int((~has_any).sum())}
    skipped = treated[~keep]
    treated = treated.assign(control_match=np.where(on_plate, "plate", "fallback"))[keep]
    treated = treated.sort_values(["cell_line", "drug_key", "pert_dose", "rna_plate", "inst_id"])
    counts["pairs"] = int(len(treated))
    if len(skipped):
        log.warning("LINCS level 3: skipped %d treated instances: %d on plates without %s controls "
                    "(fallback_across_plates: %s), %d in cell lines without %s controls at time %s; cell lines %s",
                    len(skipped), counts["skipped_no_plate_control"], control_type, fallback_across_plates,
                    counts["skipped_no_control"], control_type, pert_time, sorted(skipped.cell_line.unique()))
    if treated.empty:
        raise ValueError(f"LINCS: no treated instances with controls for drugs {sorted(drug_names.values())} in "
                         f"cell lines {sorted(wanted_cells)} at time {pert_time} ({counts})")

    # only the controls that some pair averages: its plate's, or, for fallback pairs, its cell line's
    plated = treated[treated.control_match == "plate"]
    needed = controls.plate_key.isin(set(plated.plate_key)).to_numpy() \
        | controls.cell_line.isin(set(treated.cell_line[treated.control_match == "fallback"])).to_numpy()
    controls = controls[needed]
    counts["controls_used"] = int(len(controls))
    genes, symbols = _genes(gene_info, landmark_only)
    values = read_gctx(gctx_path, rows=genes.pr_gene_id.astype(str),
                       cols=pd.concat([treated.inst_id, controls.inst_id]).drop_duplicates())
    control_profiles = values[controls.inst_id].T
    by_plate = control_profiles.groupby([controls.cell_line.to_numpy(), controls.rna_plate.to_numpy()])
    by_cell = control_profiles.groupby(controls.cell_line.to_numpy())
    plate_means, plate_sizes = by_plate.mean(), by_plate.size()
    cell_means, cell_sizes = by_cell.mean(), by_cell.size()

    x1 = np.empty((len(treated), len(genes)), dtype=np.float32)
    n_controls = np.empty(len(treated), dtype=np.int64)
    for i, (cell, plate, match) in enumerate(zip(treated.cell_line, treated.rna_plate, treated.control_match)):
        if match == "plate":
            x1[i], n_controls[i] = plate_means.loc[(cell, plate)].to_numpy(), plate_sizes.loc[(cell, plate)]
        else:
            x1[i], n_controls[i] = cell_means.loc[cell].to_numpy(), cell_sizes.loc[cell]

    obs = _obs(treated, drug_names, "inst_id").assign(rna_plate=treated.rna_plate.to_numpy(),
                                                      control_match=treated.control_match.to_numpy(),
                                                      n_controls=n_controls)
    x1, x2, pairs = _pair_views(x1, values[treated.inst_id].T.to_numpy(), obs, genes, symbols, treated,
                                _uns(3, landmark_only, int(len(genes)), counts))
    var = x2.var
    log.info("LINCS level 3: %d pairs (%d cell lines, %d drugs): %d plate-matched, %d fallback across plates; "
             "%d skipped without a same-plate control, %d without any control; %d control instances, %d genes "
             "(log2)", counts["pairs"], obs.cell_line.nunique(), obs.drug.nunique(), counts["paired_plate_matched"],
             counts["paired_fallback"], counts["skipped_no_plate_control"], counts["skipped_no_control"],
             counts["controls_used"], len(var))
    return x1, x2, pairs


def perturbation_level(settings: Mapping, paths: Mapping | None = None) -> int:
    """The configured level; absent, 3 when an ``inst_info`` is given, else 5 (a config written before
    level 3 names only ``sig_info`` and keeps its meaning). The config schema fills the same default."""
    if "level" in settings:
        return int(settings["level"])
    return 3 if "inst_info" in settings or (paths is not None and "inst_info" in paths.keys()) else 5
