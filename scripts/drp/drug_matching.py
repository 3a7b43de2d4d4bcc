"""Which drugs of two data sets are the same compound: by structure, by name, by a recorded synonym table.

Screens name one compound differently (CCLE's AZD6244 is GDSC's Selumetinib, PD-0325901 is PD0325901), so a
match by exact name misses shared drugs. ``match_drugs`` pairs the drugs of a source and a target data set
(``drug, smiles`` tables, ``drugs.tsv``) by four methods, tried in this order:

1. ``name``: the same name. The pipeline's behaviour before structure matching, kept first: a screen's own
   name is the strongest evidence that it is the compound another screen lists under that name. A structure
   disagreement between the two SMILES is kept in the ``note`` column (and logged), not acted on.
2. ``inchikey``: the same standard InChIKey (RDKit) of the parent compound: the largest organic fragment
   (counter-ions and solvents of a salt dropped; kept whole when the molecule holds a metal other than an
   alkali or alkaline-earth counter-ion, e.g. cisplatin), neutralized. The **full** key must agree, not only
   its first block. The first block (14 characters) hashes the connectivity alone; it is the usual
   "same compound" test, but it also equates stereoisomers, and among the GDSC drugs it pairs Doxorubicin
   with Epirubicin, two epimers that are distinct drugs. Pairs that share the first block only are therefore
   not matched; they are listed in the table (``matched`` False) for review.
3. ``normalized_name``: the same name after ``normalize_drug_name`` (case folded; spaces, hyphens and other
   punctuation removed: PD-0325901 = PD0325901, Torin 2 = torin2).
4. ``synonym``: names that the synonym table (``config/drug_synonyms.tsv``: ``name, synonym, checked,
   provenance``) records as the same compound, compared after ``normalize_drug_name``; rows chain (a name with
   two synonyms makes one group of three).

Methods 3 and 4 rest on names only; they match two drugs whose structures are both known only when the
structures agree on the first InChIKey block (the same compound written with and without stereo); two known
structures that disagree are not matched, and the pair is listed with a note.

Each method sees only the drugs that no earlier method matched, so every drug is matched at most once. Within
one method a drug with two candidates on the other side (a screen that lists one compound under two names,
e.g. GDSC1's "Torin 2" and "torin2", meeting a third name of it) raises ``AmbiguousMatchError``: no choice is
made silently. A drug matched by an earlier method does not compete; its duplicates on the other side are left
unmatched and listed.

The result is one row per matched pair (``matched`` True) plus the listed non-matches (``matched`` False):
``source_drug, target_drug, method, matched, source_inchikey, target_inchikey, note``. The keys are those of
the parent compounds, empty when a drug has no usable SMILES.
"""

from __future__ import annotations

import io
import logging
import re
import unicodedata
from collections import defaultdict
from pathlib import Path

import pandas as pd

log = logging.getLogger(__name__)

METHODS = ("name", "inchikey", "normalized_name", "synonym")
COLUMNS = ["source_drug", "target_drug", "method", "matched", "source_inchikey", "target_inchikey", "note"]
SYNONYM_COLUMNS = ["name", "synonym", "checked", "provenance"]
FIRST_BLOCK = 14  # characters of an InChIKey that hash the connectivity (the skeleton, no stereo, no isotopes)

_NOT_WORD = re.compile(r"[\W_]+")
# elements a salt's counter-ion may carry and still be dropped; any other metal keeps the molecule whole
_NON_METALS = {1, 2, 5, 6, 7, 8, 9, 10, 14, 15, 16, 17, 18, 33, 34, 35, 36, 52, 53, 54, 85, 86}
_COUNTER_ION_METALS = {3, 11, 19, 37, 55, 4, 12, 20, 38, 56}  # alkali and alkaline-earth metals


class AmbiguousMatchError(ValueError):
    """A drug of one data set matches two or more drugs of the other by the same method."""


def normalize_drug_name(name: str) -> str:
    """Case folded, compatibility-normalized (NFKC), every character that is not a letter or a digit removed:
    'PD-0325901', 'pd 0325901' and 'PD0325901' all become 'pd0325901'."""
    return _NOT_WORD.sub("", unicodedata.normalize("NFKC", str(name)).casefold())


def parent_inchikey(smiles: str) -> str:
    """The standard InChIKey of the parent compound of ``smiles`` (see the module docstring); '' when the SMILES
    is empty or RDKit cannot parse it."""
    from rdkit import Chem, RDLogger
    from rdkit.Chem.MolStandardize import rdMolStandardize

    RDLogger.DisableLog("rdApp.*")  # unparsable SMILES are reported by the caller, once per drug
    smiles = str(smiles or "").strip()
    molecule = Chem.MolFromSmiles(smiles) if smiles else None
    if molecule is None:
        return ""
    if len(Chem.GetMolFrags(molecule)) > 1 and not any(
            atom.GetAtomicNum() not in _NON_METALS | _COUNTER_ION_METALS for atom in molecule.GetAtoms()):
        molecule = rdMolStandardize.LargestFragmentChooser(preferOrganic=True).choose(molecule)
    molecule = rdMolStandardize.Uncharger().uncharge(molecule)
    return Chem.MolToInchiKey(molecule) or ""


def read_synonyms(path: str | Path) -> pd.DataFrame:
    """The synonym table (TSV: name, synonym, checked, provenance; lines that start with # are comments),
    checked: every field filled, the two names different after normalization, no pair listed twice."""
    lines = [line for line in Path(path).read_text().splitlines(keepends=True) if not line.startswith("#")]
    table = pd.read_csv(io.StringIO("".join(lines)), sep="\t", dtype=str, keep_default_na=False)
    missing = [c for c in SYNONYM_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"{path}: synonym table lacks columns {missing} (expected {SYNONYM_COLUMNS})")
    table = table[SYNONYM_COLUMNS].apply(lambda column: column.str.strip())
    empty = table[(table == "").any(axis=1)]
    if len(empty):
        raise ValueError(f"{path}: rows with an empty field (every pair needs its provenance): "
                         f"{empty.head(3).to_dict('records')}")
    keys = table[["name", "synonym"]].map(normalize_drug_name)
    same = table[keys.name == keys.synonym]
    if len(same):
        raise ValueError(f"{path}: a name and its synonym that normalize alike (the normalized-name match already "
                         f"covers them): {same[['name', 'synonym']].head(3).to_dict('records')}")
    pairs = keys.apply(lambda row: tuple(sorted(row)), axis=1)
    if pairs.duplicated().any():
        raise ValueError(f"{path}: pairs listed twice: {sorted(set(pairs[pairs.duplicated()]))[:3]}")
    return table.reset_index(drop=True)


def synonym_groups(synonyms: pd.DataFrame | None) -> dict[str, str]:
    """normalized name -> its group's id (the smallest normalized name of the group), rows chained."""
    parent: dict[str, str] = {}

    def find(key: str) -> str:
        while parent.setdefault(key, key) != key:
            parent[key] = parent[parent[key]]
            key = parent[key]
        return key

    if synonyms is not None:
        for name, synonym in zip(synonyms["name"], synonyms["synonym"]):
            if not normalize_drug_name(name) or not normalize_drug_name(synonym):
                continue
            a, b = sorted((find(normalize_drug_name(name)), find(normalize_drug_name(synonym))))
            parent[b] = a
    return {key: find(key) for key in list(parent)}


def _describe(drugs: pd.DataFrame, label: str) -> pd.DataFrame:
    """drug -> key (parent InChIKey or ''), normalized name."""
    if "drug" not in drugs.columns:
        raise ValueError(f"{label} drug table: no 'drug' column (columns: {list(drugs.columns)})")
    names = drugs["drug"].astype(str)
    if names.duplicated().any():
        raise ValueError(f"{label} drug table: drugs listed twice: {sorted(set(names[names.duplicated()]))[:3]}")
    smiles = drugs["smiles"].fillna("").astype(str) if "smiles" in drugs.columns else pd.Series("", index=drugs.index)
    keys = [parent_inchikey(s) for s in smiles]
    unparsed = [n for n, s, k in zip(names, smiles, keys) if s.strip() and not k]
    if unparsed:
        log.warning("%s drug table: %d SMILES that RDKit cannot parse (matched by name only): %s", label,
                    len(unparsed), ", ".join(unparsed[:10]))
    return pd.DataFrame({"key": keys, "norm": names.map(normalize_drug_name).to_numpy()}, index=pd.Index(names))


def _structures_agree(source_key: str, target_key: str) -> bool | None:
    """None when a structure is unknown; else whether the first InChIKey blocks agree."""
    if not source_key or not target_key:
        return None
    return source_key[:FIRST_BLOCK] == target_key[:FIRST_BLOCK]


def _structure_note(source_key: str, target_key: str) -> str:
    agree = _structures_agree(source_key, target_key)
    if agree is None or source_key == target_key:
        return ""
    if agree:
        return "same connectivity, different stereo/isotope layer (InChIKey second block)"
    return "the two SMILES are different compounds (InChIKey first blocks differ): check the drug tables"


def match_drugs(source: pd.DataFrame, target: pd.DataFrame, synonyms: pd.DataFrame | None = None) -> pd.DataFrame:
    """Pair the drugs of ``source`` and ``target`` (tables with ``drug``, ``smiles``), see the module docstring."""
    src, tgt = _describe(source, "source"), _describe(target, "target")
    groups = synonym_groups(synonyms)
    free_source, free_target = set(src.index), set(tgt.index)
    rows: list[dict] = []

    def row(s: str, t: str, method: str, matched: bool, note: str) -> dict:
        return {"source_drug": s, "target_drug": t, "method": method, "matched": matched,
                "source_inchikey": src.key[s], "target_inchikey": tgt.key[t], "note": note}

    def candidates(method: str) -> list[tuple[str, str]]:
        if method == "name":
            return [(d, d) for d in sorted(free_source & free_target)]
        if method == "inchikey":
            by_key = defaultdict(list)
            for t in sorted(free_target):
                if tgt.key[t]:
                    by_key[tgt.key[t]].append(t)
            return [(s, t) for s in sorted(free_source) if src.key[s] for t in by_key.get(src.key[s], [])]
        if method == "normalized_name":
            by_norm = defaultdict(list)
            for t in sorted(free_target):
                by_norm[tgt.norm[t]].append(t)
            return [(s, t) for s in sorted(free_source) if src.norm[s] for t in by_norm.get(src.norm[s], [])]
        by_group = defaultdict(list)
        for t in sorted(free_target):
            if tgt.norm[t] in groups:
                by_group[groups[tgt.norm[t]]].append(t)
        return [(s, t) for s in sorted(free_source) if src.norm[s] in groups
                for t in by_group.get(groups[src.norm[s]], []) if tgt.norm[t] != src.norm[s]]

    for method in METHODS:
        pairs = []
        for s, t in candidates(method):
            if method in ("normalized_name", "synonym") and _structures_agree(src.key[s], tgt.key[t]) is False:
                rows.append(row(s, t, method, False, "names agree but the structures differ (InChIKey first "
                                                   "blocks): not matched"))
                continue
            pairs.append((s, t))
        _refuse_ambiguous(pairs, method)
        for s, t in pairs:
            rows.append(row(s, t, method, True, _structure_note(src.key[s], tgt.key[t])))
            free_source.discard(s)
            free_target.discard(t)

    rows += _near_misses(src, tgt, free_target, rows, row)
    table = pd.DataFrame(rows, columns=COLUMNS).astype({"matched": bool})
    order = {m: i for i, m in enumerate(METHODS)}
    table = table.assign(_m=table.method.map(order)).sort_values(["matched", "_m", "source_drug", "target_drug"],
                                                                 ascending=[False, True, True, True])
    return table.drop(columns="_m").reset_index(drop=True)


def _refuse_ambiguous(pairs: list[tuple[str, str]], method: str) -> None:
    by_source, by_target = defaultdict(set), defaultdict(set)
    for s, t in pairs:
        by_source[s].add(t)
        by_target[t].add(s)
    problems = [f"source drug {s!r} matches target drugs {sorted(ts)}" for s, ts in sorted(by_source.items())
                if len(ts) > 1]
    problems += [f"target drug {t!r} matches source drugs {sorted(ss)}" for t, ss in sorted(by_target.items())
                 if len(ss) > 1]
    if problems:
        raise AmbiguousMatchError(
            f"drug matching by {method} is ambiguous: {'; '.join(problems)}. Each drug may match one drug of the "
            "other data set: one of them lists a compound under two names; merge or drop the duplicate in that "
            "data set (or, for a synonym, correct the synonym table)")


def _near_misses(src, tgt, free_target, rows, row) -> list[dict]:
    """Unmatched target drugs that share the first InChIKey block with a source drug: stereoisomers and
    isotopologues (not the same compound by this module's rule) and duplicates of an already matched drug."""
    listed = {(r["source_drug"], r["target_drug"]) for r in rows}
    matched_to = {r["source_drug"]: r["target_drug"] for r in rows if r["matched"]}
    by_block = defaultdict(list)
    for s in src.index:
        if src.key[s]:
            by_block[src.key[s][:FIRST_BLOCK]].append(s)
    out = []
    for t in sorted(free_target):
        key = tgt.key[t]
        for s in (by_block.get(key[:FIRST_BLOCK], []) if key else []):
            if (s, t) in listed:
                continue
            if src.key[s] == key:
                note = (f"same structure as target drug {matched_to[s]!r}, already matched to this source drug; "
                        "this target drug's pairs are left out")
            else:
                note = "same connectivity, different stereo/isotope layer: a stereoisomer, not matched"
            out.append(row(s, t, "", False, note))
    return out


def _is_matched(table: pd.DataFrame) -> pd.Series:
    """The ``matched`` column as bool, whether it holds bools or the text a TSV gives back."""
    return table["matched"].astype(str).str.lower() == "true"


def matched_names(table: pd.DataFrame) -> dict[str, str]:
    """target drug -> source drug of the matched rows of a match table (one to one, or ValueError)."""
    matched = table[_is_matched(table)]
    for column in ("source_drug", "target_drug"):
        twice = matched[column][matched[column].duplicated()]
        if len(twice):
            raise AmbiguousMatchError(f"match table: {column} matched twice: {sorted(set(twice))[:3]}")
    return dict(zip(matched["target_drug"].astype(str), matched["source_drug"].astype(str)))


def read_matches(path: str | Path) -> pd.DataFrame:
    """A match table written by the cross-study matching rule (every value as text, ``matched`` as bool)."""
    table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    return table.assign(matched=_is_matched(table))


def summarize(table: pd.DataFrame) -> dict[str, int]:
    """Matched pairs per method (every method listed, zeros included), and the listed non-matches."""
    is_matched = _is_matched(table)
    matched = table[is_matched]
    counts = {method: int((matched["method"] == method).sum()) for method in METHODS}
    return {**counts, "total": int(len(matched)), "not_matched_listed": int((~is_matched).sum())}
