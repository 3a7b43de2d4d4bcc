#!/usr/bin/env python
"""Build config/drug_targets.tsv: putative target genes of our GDSC2 drugs from GDSC's compound annotation.

Usage::

    python tools/build_drug_targets.py SCREENED_COMPOUNDS_CSV \\
        [--drugs results/gdsc2/data/drugs.tsv] [--views-dir results/gdsc2/data] \\
        [--symbols tools/target_symbols.tsv] [--out config/drug_targets.tsv] [--source-note TEXT ...]

Input: GDSC's ``screened_compounds_rel_8.x.csv`` (columns DRUG_ID, SCREENING_SITE, DRUG_NAME, SYNONYMS, TARGET,
TARGET_PATHWAY) and our ``drugs.tsv`` (column ``drug``). Output columns: ``drug``, ``gdsc_drug_id``, ``target``,
``target_pathway``, ``genes``, ``unmapped``; ``#`` comment lines on top say where the annotation came from and
how the table was built. The output is a pure function of the inputs (no dates or clocks are read; the source
note lines are given on the command line), so rebuilding from the same files gives the same bytes.

Matching a drug name to annotation rows: exact DRUG_NAME, else DRUG_NAME compared case- and
punctuation-insensitively, else one of the SYNONYMS (same normalization). GDSC2 was screened at the Sanger site
only, so rows with SCREENING_SITE == "SANGER" are used when a drug has any (MGH rows are GDSC1 compounds). A name
with several Sanger DRUG_IDs (the same compound screened more than once) gets all of them (``;``-joined, in
numeric order) and the union of their targets: the distinct TARGET texts are joined with `` | `` in DRUG_ID
order, likewise TARGET_PATHWAY.

Mapping a target text to genes: the text is split into tokens on commas (and on `` | ``); each token is
looked up

1. in the curated table ``tools/target_symbols.tsv`` (case-insensitive on the whitespace-collapsed token):
   its ``genes`` (aliases, families, typos; an empty ``genes`` marks a generic token such as
   "Microtubule stabiliser", which maps to nothing);
2. otherwise, the token maps to itself **if it is a gene symbol of our data set's views**, i.e. one of the
   var_names of ``expression.h5ad``, ``cnv.h5ad`` and ``mutation.h5ad``.

That is the rule for deciding that a token "is an HGNC symbol": the genes of our views plus the curated table
(which lists, as kind ``symbol``, real HGNC symbols that our views lack, e.g. BRAF). Tokens mapped by neither
are reported, unchanged, in ``unmapped``; so are generic tokens. ``genes`` holds the symbols in order of first
appearance, without repeats.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = Path("results/gdsc2/data")  # the default run's data set, in the working directory
DEFAULT_SYMBOLS = ROOT / "tools" / "target_symbols.tsv"
DEFAULT_OUT = ROOT / "config" / "drug_targets.tsv"
VIEWS = ("expression", "cnv", "mutation")
COLUMNS = ("drug", "gdsc_drug_id", "target", "target_pathway", "genes", "unmapped")
GDSC2_SITE = "SANGER"
TEXT_JOIN = " | "


def _key(token: str) -> str:
    """Lookup key of a curated token: whitespace collapsed, case folded."""
    return " ".join(token.split()).casefold()


def normalize_name(name: str) -> str:
    """Drug name compared case- and punctuation-insensitively: lower case letters and digits only."""
    return re.sub(r"[^0-9a-z]", "", str(name).casefold())


def load_curated(path=DEFAULT_SYMBOLS) -> dict[str, tuple[str, ...]]:
    """tools/target_symbols.tsv as {lookup key: gene symbols} (an empty tuple for a generic token)."""
    table: dict[str, tuple[str, ...]] = {}
    with open(path, encoding="utf-8") as handle:
        rows = csv.DictReader((line for line in handle if not line.startswith("#")), delimiter="\t")
        for row in rows:
            token = (row.get("token") or "").strip()
            if not token:
                continue
            genes = tuple(g.strip() for g in (row.get("genes") or "").split(",") if g.strip())
            key = _key(token)
            if key in table and table[key] != genes:
                raise ValueError(f"{path}: token {token!r} is listed twice with different genes")
            table[key] = genes
    return table


def view_symbols(data_dir=DEFAULT_DATA, views=VIEWS) -> frozenset[str]:
    """Gene names of our data set's views (the var_names of <view>.h5ad)."""
    import anndata

    names: set[str] = set()
    for view in views:
        adata = anndata.read_h5ad(Path(data_dir) / f"{view}.h5ad", backed="r")
        names.update(str(v) for v in adata.var_names)
        if adata.isbacked:
            adata.file.close()
    return frozenset(names)


def split_target(text: str) -> list[str]:
    """The tokens of a GDSC target text: split on commas and on the ' | ' that joins several texts."""
    return [t.strip() for t in re.split(r"[,|]", str(text or "")) if t.strip()]


def map_token(token: str, symbols, curated) -> tuple[str, ...]:
    """Gene symbols one target token stands for; () when it maps to nothing (generic or unknown).

    Curated entries win (so aliases and typos are corrected even where the spelling is also a gene name);
    otherwise a token that is one of ``symbols`` (our views' gene names) maps to itself.
    """
    token = " ".join(str(token).split())
    key = _key(token)
    if key in curated:
        return tuple(curated[key])
    if token in symbols:
        return (token,)
    return ()


def map_target(text: str, symbols, curated) -> tuple[list[str], list[str]]:
    """(genes, unmapped tokens) of a target text; both without repeats, in order of first appearance."""
    genes: list[str] = []
    unmapped: list[str] = []
    for token in split_target(text):
        mapped = map_token(token, symbols, curated)
        if not mapped:
            if token not in unmapped:
                unmapped.append(token)
        for gene in mapped:
            if gene not in genes:
                genes.append(gene)
    return genes, unmapped


def read_annotation(path) -> list[dict[str, str]]:
    """GDSC screened compounds csv as a list of rows (all values as stripped strings)."""
    with open(path, encoding="utf-8-sig", newline="") as handle:
        rows = [{k.strip(): (v or "").strip() for k, v in row.items()} for row in csv.DictReader(handle)]
    need = {"DRUG_ID", "SCREENING_SITE", "DRUG_NAME", "SYNONYMS", "TARGET", "TARGET_PATHWAY"}
    missing = need - set(rows[0]) if rows else need
    if missing:
        raise ValueError(f"{path}: missing columns {sorted(missing)}")
    return rows


def read_drugs(path) -> list[str]:
    with open(path, encoding="utf-8", newline="") as handle:
        names = [row["drug"].strip() for row in csv.DictReader(handle, delimiter="\t")]
    if len(set(names)) != len(names) or not all(names):
        raise ValueError(f"{path}: drug names must be non-empty and unique")
    return names


def match_rows(drug: str, rows) -> tuple[list[dict[str, str]], str]:
    """Annotation rows for one of our drug names and how they were matched ('' when none)."""
    for how, test in (
        ("exact", lambda r: r["DRUG_NAME"] == drug),
        ("normalized", lambda r: normalize_name(r["DRUG_NAME"]) == normalize_name(drug)),
        ("synonym", lambda r: normalize_name(drug) in
         {normalize_name(s) for s in r["SYNONYMS"].split(",") if s.strip()}),
    ):
        found = [r for r in rows if test(r)]
        if found:
            site = [r for r in found if r["SCREENING_SITE"].upper() == GDSC2_SITE]
            return site or found, how
    return [], ""


def _distinct(values) -> list[str]:
    out: list[str] = []
    for v in values:
        if v and v not in out:
            out.append(v)
    return out


def build(annotation_rows, drugs, symbols, curated):
    """(table rows, facts): one row per drug the annotation has; facts for the header."""
    table, unmatched, how_counts = [], [], {}
    for drug in drugs:
        found, how = match_rows(drug, annotation_rows)
        if not found:
            unmatched.append(drug)
            continue
        how_counts[how] = how_counts.get(how, 0) + 1
        found = sorted(found, key=lambda r: int(float(r["DRUG_ID"])))
        target = TEXT_JOIN.join(_distinct(r["TARGET"] for r in found))
        pathway = TEXT_JOIN.join(_distinct(r["TARGET_PATHWAY"] for r in found))
        genes, unmapped = map_target(target, symbols, curated)
        table.append({"drug": drug,
                      "gdsc_drug_id": ";".join(_distinct(str(int(float(r["DRUG_ID"]))) for r in found)),
                      "target": target, "target_pathway": pathway,
                      "genes": ",".join(genes), "unmapped": ",".join(unmapped)})
    return table, {"unmatched": unmatched, "how": how_counts}


def write(out, table, facts, source_csv, source_notes, n_drugs, n_symbols):
    digest = hashlib.sha256(Path(source_csv).read_bytes()).hexdigest()
    with_genes = sum(1 for r in table if r["genes"])
    with_target = sum(1 for r in table if r["target"])
    multi = [r["drug"] for r in table if ";" in r["gdsc_drug_id"]]
    differing = [r["drug"] for r in table if TEXT_JOIN in r["target"]]
    lines = ["# Putative target genes of our GDSC2 drugs, from GDSC's published compound annotation."]
    lines += [f"# source: {note}" for note in source_notes]
    lines += [
        f"# source file: {Path(source_csv).name} sha256 {digest}",
        "# built by tools/build_drug_targets.py (rules in its docstring) with tools/target_symbols.tsv and the "
        f"gene names of our views ({n_symbols} symbols from expression/cnv/mutation.h5ad)",
        "# match: exact DRUG_NAME, else case/punctuation-insensitive name, else SYNONYMS; SCREENING_SITE SANGER "
        "rows only when there are any (GDSC2 is Sanger-screened; MGH rows are GDSC1)",
        "# several Sanger DRUG_IDs for one name: all ids (;-joined) and the distinct TARGET / TARGET_PATHWAY texts "
        f"joined with ' | ' in id order ({len(multi)} drugs; texts differ for {len(differing)}: "
        f"{', '.join(differing) or 'none'})",
        "# genes: HGNC symbols the target tokens map to; unmapped: tokens mapped to no gene (generic or unknown)",
        f"# drugs: {n_drugs} in drugs.tsv, {len(table)} annotated "
        f"(match {', '.join(f'{k} {v}' for k, v in sorted(facts['how'].items()))}), "
        f"{len(facts['unmatched'])} without annotation (left out): {', '.join(facts['unmatched']) or 'none'}",
        f"# rows with a non-empty target: {with_target}; with at least one mapped gene: {with_genes}",
    ]
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", encoding="utf-8", newline="") as handle:
        handle.write("\n".join(lines) + "\n")
        writer = csv.DictWriter(handle, fieldnames=COLUMNS, delimiter="\t", lineterminator="\n")
        writer.writeheader()
        for row in sorted(table, key=lambda r: r["drug"]):
            writer.writerow(row)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("annotation", help="GDSC screened_compounds_rel_8.x.csv")
    parser.add_argument("--drugs", default=str(DEFAULT_DATA / "drugs.tsv"))
    parser.add_argument("--views-dir", default=str(DEFAULT_DATA),
                        help="folder with expression.h5ad, cnv.h5ad, mutation.h5ad")
    parser.add_argument("--symbols", default=str(DEFAULT_SYMBOLS))
    parser.add_argument("--out", default=str(DEFAULT_OUT))
    parser.add_argument("--source-note", action="append", default=[],
                        help="provenance line for the header (repeatable): repository, path, commit, release, date")
    args = parser.parse_args(argv)

    drugs = read_drugs(args.drugs)
    symbols = view_symbols(args.views_dir)
    curated = load_curated(args.symbols)
    table, facts = build(read_annotation(args.annotation), drugs, symbols, curated)
    write(args.out, table, facts, args.annotation, args.source_note, len(drugs), len(symbols))
    print(f"{args.out}: {len(table)} of {len(drugs)} drugs annotated, "
          f"{sum(1 for r in table if r['genes'])} with at least one gene", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
