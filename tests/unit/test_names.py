"""drp.names: cell-line name normalization and the collisions it creates."""

from __future__ import annotations

import pytest

from drp.names import find_collisions, normalize_cell_line_name


@pytest.mark.parametrize("name, expected", [
    ("NCI-H2869", "NCIH2869"),
    ("KM-H2", "KMH2"),
    ("KMH-2", "KMH2"),
    ("km-h2", "KMH2"),
    ("Hs 578T", "HS578T"),
    ("T-T", "TT"),
    ("TT", "TT"),
    ("786-0", "7860"),
    ("SW 1353 ", "SW1353"),
    ("HCC-1187.2_b/c(x)", "HCC11872BCX"),
    ("", ""),
])
def test_normalize_cell_line_name(name, expected):
    assert normalize_cell_line_name(name) == expected


def test_normalize_is_idempotent_and_keeps_only_upper_alnum():
    for name in ["NCI-H2869", "km-h2", "Hs 578T", "a.b-c_d e"]:
        once = normalize_cell_line_name(name)
        assert normalize_cell_line_name(once) == once
        assert all(ch.isascii() and (ch.isupper() or ch.isdigit()) for ch in once)


def test_normalize_accepts_non_strings():
    assert normalize_cell_line_name(786) == "786"


def test_find_collisions_reports_the_known_clashes():
    names = ["T-T", "TT", "KM-H2", "KMH-2", "NCI-H2869", "A549", "MCF7", "HeLa", "NCI-H460"]
    assert find_collisions(names) == {"TT": ["T-T", "TT"], "KMH2": ["KM-H2", "KMH-2"]}


def test_find_collisions_ignores_repeats_of_the_same_name_and_unrelated_names():
    assert find_collisions(["A549", "A549", "MCF7", "NCI-H2869", "NCI-H2869"]) == {}
    assert find_collisions([]) == {}


def test_find_collisions_groups_more_than_two_and_sorts_them():
    collisions = find_collisions(["km-h2", "KMH-2", "KM-H2", "A549"])
    assert collisions == {"KMH2": sorted(["km-h2", "KMH-2", "KM-H2"])}
