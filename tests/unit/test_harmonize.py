"""drp.sources.harmonize: ids before names, collisions excluded and reported, never guessed."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from drp.sources.harmonize import canonical_ids, cell_line_table, clean_ids, match_cell_lines


def test_clean_ids_spellings():
    assert list(clean_ids([906826.0, "906826", " 906826 ", None, "", "abc"], "cosmic_id").fillna("-")) == \
        ["906826", "906826", "906826", "-", "-", "-"]
    assert list(clean_ids(["sidm00903", "SIDM00903", "ACH-1"], "sanger_model_id").fillna("-")) == \
        ["SIDM00903", "SIDM00903", "-"]
    assert list(clean_ids(["RRID:CVCL_0023", "cvcl_0023", "CVCL-0023"], "rrid").fillna("-")) == \
        ["CVCL_0023", "CVCL_0023", "-"]
    assert list(clean_ids(["ACH-000681", "ach-000681", "SIDM1"], "depmap_id").fillna("-")) == \
        ["ACH-000681", "ACH-000681", "-"]


def test_id_match_beats_a_name_match():
    # The response calls COSMIC 905949 "A-549"; the annotation table has a different line that happens to
    # be named "A549" (no ids) and the real one under another spelling with the same COSMIC id.
    left = cell_line_table(["905949"], ["A-549"], cosmic_id=["905949"])
    right = cell_line_table(["SIDM_X", "SIDM00903"], ["A549", "A549 [lung]"], cosmic_id=[np.nan, "905949"])
    match = match_cell_lines(left, right, "responses", "annotations")
    assert match.pairs.values.tolist() == [["905949", "SIDM00903", "cosmic_id"]]
    assert match.report["matched_by"] == {"cosmic_id": 1}
    assert match.report["matched_by_name_only"] == []
    assert match.report["unmatched_right"] == 1


def test_ids_are_tried_in_order_then_names():
    left = cell_line_table(["a", "b", "c", "d"], ["MCF7", "HCT-116", "SK-MEL-28", "Unknown-1"],
                           cosmic_id=["905946", np.nan, np.nan, np.nan],
                           sanger_model_id=[np.nan, "SIDM00783", np.nan, np.nan])
    right = cell_line_table(["ACH-000019", "ACH-000971", "ACH-000615"], ["MCF 7", "HCT 116", "SKMEL28"],
                            cosmic_id=["905946", np.nan, np.nan], sanger_model_id=["SIDM00148", "SIDM00783", np.nan])
    match = match_cell_lines(left, right, "responses", "depmap")
    by = dict(zip(match.pairs.left, zip(match.pairs.right, match.pairs.matched_by)))
    assert by == {"a": ("ACH-000019", "cosmic_id"), "b": ("ACH-000971", "sanger_model_id"),
                  "c": ("ACH-000615", "name")}
    assert match.report["matched_by"] == {"cosmic_id": 1, "sanger_model_id": 1, "name": 1}
    # A line matched by name only is reported as such, with both spellings and keys.
    assert match.report["matched_by_name_only"] == ["SK-MEL-28 (c) = SKMEL28 (ACH-000615)"]
    assert match.report["unmatched_left"] == 1


def test_name_collision_is_excluded_and_reported():
    # T-T and TT are different lines that normalize to the same name; CTRP knows only the name "TT".
    depmap = cell_line_table(["ACH-000462", "ACH-000255", "ACH-000681"], ["T-T", "TT", "A549"])
    ctrp = cell_line_table(["101", "102"], ["TT", "A549"])
    match = match_cell_lines(ctrp, depmap, "ctrp", "depmap")
    assert match.pairs.values.tolist() == [["102", "ACH-000681", "name"]]
    assert match.report["name_collisions_excluded"] == {"depmap": {"TT": ["T-T (ACH-000462)", "TT (ACH-000255)"]}}
    assert match.report["unmatched_left"] == 1


def test_collision_does_not_block_id_matches():
    left = cell_line_table(["909781", "753617"], ["T-T", "TT"], cosmic_id=["909781", "753617"])
    right = cell_line_table(["SIDM01", "SIDM02"], ["T-T", "TT"], cosmic_id=["909781", "753617"])
    match = match_cell_lines(left, right)
    assert sorted(match.pairs.matched_by) == ["cosmic_id", "cosmic_id"]
    assert dict(zip(match.pairs.left, match.pairs.right)) == {"909781": "SIDM01", "753617": "SIDM02"}


def test_conflicting_ids_exclude_the_pair():
    # Same COSMIC id, different RRID: one of the two tables is wrong, so neither row is matched at all.
    left = cell_line_table(["1"], ["HeLa"], cosmic_id=["930299"], rrid=["CVCL_0030"])
    right = cell_line_table(["x", "y"], ["HeLa", "HeLa S3"], cosmic_id=["930299", np.nan],
                            rrid=["CVCL_0058", "CVCL_0030"])
    match = match_cell_lines(left, right, "responses", "models")
    assert match.pairs.empty
    assert match.report["id_conflicts_excluded"] == \
        ["responses 1 and models x share cosmic_id 930299 but differ in rrid"]


def test_a_name_match_contradicted_by_ids_is_excluded():
    left = cell_line_table(["1"], ["KM-H2"], cosmic_id=["111"])
    right = cell_line_table(["2"], ["KMH-2"], cosmic_id=["222"])
    match = match_cell_lines(left, right, "responses", "models")
    assert match.pairs.empty
    assert "share the name KMH2 but differ in cosmic_id" in match.report["id_conflicts_excluded"][0]


def test_duplicate_ids_are_skipped_and_reported():
    left = cell_line_table(["1", "2"], ["A", "B"], cosmic_id=["5", "5"])
    right = cell_line_table(["r"], ["C"], cosmic_id=["5"])
    match = match_cell_lines(left, right, "responses", "models")
    assert match.pairs.empty
    assert match.report["duplicate_ids_skipped"] == {"cosmic_id": {"responses": ["5"]}}


def test_name_matching_can_be_switched_off():
    left = cell_line_table(["1"], ["A549"])
    right = cell_line_table(["2"], ["A-549"])
    assert match_cell_lines(left, right, by_name=False).pairs.empty
    assert len(match_cell_lines(left, right).pairs) == 1


def test_duplicate_keys_are_an_error():
    table = pd.DataFrame({"name": ["A", "B"]}, index=["k", "k"])
    with pytest.raises(ValueError, match="duplicate keys"):
        match_cell_lines(table, cell_line_table(["x"], ["A"]), "responses", "models")


def test_canonical_ids_drop_colliding_names():
    table = cell_line_table(["1", "2", "3", "4"], ["T-T", "TT", "HCT-116", None])
    ids, collisions = canonical_ids(table)
    assert ids.to_dict() == {"3": "HCT116"}
    assert collisions == {"TT": ["T-T (1)", "TT (2)"]}
