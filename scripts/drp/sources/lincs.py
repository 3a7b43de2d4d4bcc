"""LINCS L1000 drug-perturbation profiles from GEO (GSE92742, phase I; GSE70138, phase II).

Data source (GSE92742; GSE70138 has the same layout under .../GSE70nnn/GSE70138/suppl/):
  https://ftp.ncbi.nlm.nih.gov/geo/series/GSE92nnn/GSE92742/suppl/
  - GSE92742_Broad_LINCS_Level5_COMPZ.MODZ_n473647x12328.gctx.gz: level-5 signatures (replicate-
    collapsed moderated z-scores), 12,328 genes x 473,647 signatures. HDF5 needs random access, so
    gunzip it once (``gunzip -k``, ~50 GB) and pass the ``.gctx`` to ``read_gctx``.
  - GSE92742_Broad_LINCS_sig_info.txt.gz: one row per signature (``sig_id, pert_id, pert_iname,
    pert_type, cell_id, pert_dose, pert_dose_unit, pert_idose, pert_time, pert_time_unit,
    pert_itime, distil_id``); controls have pert_dose = -666.
  - GSE92742_Broad_LINCS_gene_info.txt.gz: ``pr_gene_id`` (Entrez id, the GCTX row id),
    ``pr_gene_symbol``, ``pr_is_lm`` (1 for the 978 measured landmark genes, 0 for inferred ones).

GCTX layout (HDF5; the format cmapPy's ``parse_gctx``/``write_gctx`` read and write):
  ``0/META/ROW/id``   row ids (genes, Entrez ids), byte strings
  ``0/META/COL/id``   column ids (signatures, sig_id), byte strings
  ``0/DATA/0/matrix`` the values, stored TRANSPOSED: shape (n_columns, n_rows), i.e. one HDF5 row
                      per signature. cmapPy writes ``data_df.transpose()`` and reads
                      ``data_dset[cidx, :]`` then ``.transpose()``; ``read_gctx`` does the same and
                      checks the shape against both id lists, so a file in the other orientation fails
                      loudly instead of being read transposed.

``build_perturbation_pairs`` turns these into (control, treated) profile pairs: each treated
signature (pert_type ``trt_cp``) of a requested drug in a requested cell line at the requested time
is paired with the mean of that cell line's vehicle-control signatures (``ctl_vehicle``, DMSO) at the
same time, over all plates (not plate-matched). Drug names match case-insensitively after stripping;
cell lines match on ``drp.names.normalize_cell_line_name`` of both sides ('MCF-7' == 'MCF7').
Treated signatures whose cell line has no control at that time are skipped and counted.
Level-5 values are already z-scores against the plate population, so x2 - x1 is a difference of
z-scores, not a log fold change.
"""

from __future__ import annotations

import gzip
import logging
from collections.abc import Iterable
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
GENE_INFO_REQUIRED = ("pr_gene_id", "pr_gene_symbol", "pr_is_lm")
TREATED_TYPE = "trt_cp"


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
            data = _read_selection(dset, col_pos, axis=0)
            if row_pos is not None:
                data = data[:, row_pos]
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


def read_sig_info(path: str | Path) -> pd.DataFrame:
    """The sig_info table (``sig_id, pert_iname, pert_type, cell_id, pert_dose, pert_time`` required)."""
    frame = _read_tsv(path, SIG_INFO_REQUIRED, ("sig_id", "pert_id", "pert_iname", "pert_type", "cell_id"))
    for column in ("pert_dose", "pert_time"):
        converted = pd.to_numeric(frame[column], errors="coerce")
        bad = frame[column][converted.isna() & frame[column].notna()]
        if len(bad):
            raise ValueError(f"{path}: non-numeric {column} values, e.g. {bad.unique()[:3].tolist()}")
        frame[column] = converted
    return frame


def read_gene_info(path: str | Path) -> pd.DataFrame:
    """The gene_info table (``pr_gene_id`` as string, to match GCTX row ids; ``pr_is_lm`` as int)."""
    frame = _read_tsv(path, GENE_INFO_REQUIRED, ("pr_gene_id", "pr_gene_symbol"))
    frame["pr_is_lm"] = frame["pr_is_lm"].astype(int)
    return frame


def build_perturbation_pairs(gctx_path: str | Path, sig_info: pd.DataFrame | str | Path,
                             gene_info: pd.DataFrame | str | Path, cell_lines: Iterable[str],
                             drugs: Iterable[str], pert_time: float = 6, control_type: str = "ctl_vehicle",
                             landmark_only: bool = True) -> tuple[ad.AnnData, ad.AnnData, pd.DataFrame]:
    """(control profiles x1, treated profiles x2, pairs table), one row per treated signature.

    x1 and x2 share obs (``cell_line`` normalized, ``drug`` as requested, ``dose``, ``time``,
    ``sig_id``; obs_names = sig_id) and var (gene symbols, landmark genes only by default). The pairs
    table adds the source ``cell_id``/``pert_iname`` and ``n_controls`` (signatures averaged into x1).
    Counts (matched, skipped for lack of a control, genes) are logged and kept in ``x2.uns["lincs"]``.
    """
    if not isinstance(sig_info, pd.DataFrame):
        sig_info = read_sig_info(sig_info)
    if not isinstance(gene_info, pd.DataFrame):
        gene_info = read_gene_info(gene_info)
    _check_columns(sig_info, SIG_INFO_REQUIRED, "sig_info")
    _check_columns(gene_info, GENE_INFO_REQUIRED, "gene_info")

    drug_names: dict[str, str] = {}
    for drug in drugs:
        drug_names.setdefault(str(drug).strip().lower(), str(drug).strip())
    wanted_cells = {normalize_cell_line_name(c) for c in cell_lines}
    sigs = sig_info.assign(cell_line=sig_info.cell_id.map(normalize_cell_line_name),
                           drug_key=sig_info.pert_iname.astype(str).str.strip().str.lower())
    at_time = sigs[(pd.to_numeric(sigs.pert_time) == pert_time) & sigs.cell_line.isin(wanted_cells)]
    treated = at_time[(at_time.pert_type == TREATED_TYPE) & at_time.drug_key.isin(drug_names)]
    controls = at_time[at_time.pert_type == control_type]
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

    genes = gene_info[gene_info.pr_is_lm == 1] if landmark_only else gene_info
    symbols = genes.pr_gene_symbol.astype(str)
    if symbols.duplicated().any():
        raise ValueError(f"gene_info: duplicate gene symbols {sorted(symbols[symbols.duplicated()].unique())[:5]}")
    controls = controls[controls.cell_line.isin(treated.cell_line)]
    values = read_gctx(gctx_path, rows=genes.pr_gene_id.astype(str),
                       cols=pd.concat([treated.sig_id, controls.sig_id]).drop_duplicates())
    control_means = values[controls.sig_id].T.groupby(controls.cell_line.to_numpy()).mean()

    obs = pd.DataFrame({"cell_line": treated.cell_line.to_numpy(),
                        "drug": treated.drug_key.map(drug_names).to_numpy(),
                        "dose": treated.pert_dose.astype(float).to_numpy(),
                        "time": pd.to_numeric(treated.pert_time).to_numpy(),
                        "sig_id": treated.sig_id.astype(str).to_numpy()},
                       index=pd.Index(treated.sig_id.astype(str), name=None))
    var = pd.DataFrame({"gene_id": genes.pr_gene_id.astype(str).to_numpy()}, index=pd.Index(symbols, name=None))
    x1 = ad.AnnData(control_means.loc[obs.cell_line].to_numpy(np.float32), obs=obs.copy(), var=var.copy())
    x2 = ad.AnnData(values[treated.sig_id].T.to_numpy(np.float32), obs=obs.copy(), var=var.copy())
    stats["genes"] = int(len(var))
    x2.uns["lincs"] = stats
    pairs = obs.reset_index(drop=True).assign(cell_id=treated.cell_id.to_numpy(),
                                              pert_iname=treated.pert_iname.to_numpy(),
                                              n_controls=n_controls.loc[obs.cell_line].to_numpy())
    log.info("LINCS: %d pairs (%d cell lines, %d drugs), %d control signatures, %d genes; %d skipped",
             stats["pairs"], obs.cell_line.nunique(), obs.drug.nunique(), stats["controls_used"],
             stats["genes"], stats["skipped_no_control"])
    return x1, x2, pairs
