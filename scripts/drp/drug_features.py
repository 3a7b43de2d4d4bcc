"""Drug features: Morgan (ECFP-like) fingerprints from SMILES with RDKit.

A fingerprint is a fixed function of the molecule, fitted on nothing, so computing it for every drug of
a data set at once leaks nothing; models that select bits do so on their training drugs only. Drugs
without a SMILES (or with one RDKit cannot parse) get an all-zero fingerprint and ``has_structure``
False, and the log says which: a drug-blind model cannot tell them apart.
"""

from __future__ import annotations

import logging

import anndata as ad
import numpy as np
import pandas as pd

log = logging.getLogger(__name__)


def morgan_fingerprints(drugs: pd.DataFrame, radius: int = 2, n_bits: int = 1024) -> ad.AnnData:
    """One row per drug of ``drugs`` (columns ``drug``, ``smiles``): bits as float32 0/1."""
    from rdkit import Chem, RDLogger
    from rdkit.Chem import rdFingerprintGenerator

    RDLogger.DisableLog("rdApp.*")  # parse failures are reported below, once per drug
    generator = rdFingerprintGenerator.GetMorganGenerator(radius=radius, fpSize=n_bits)
    bits = np.zeros((len(drugs), n_bits), dtype=np.float32)
    parsed = np.zeros(len(drugs), dtype=bool)
    for row, smiles in enumerate(drugs["smiles"].fillna("").astype(str)):
        molecule = Chem.MolFromSmiles(smiles) if smiles.strip() else None
        if molecule is not None:
            bits[row] = generator.GetFingerprintAsNumPy(molecule)
            parsed[row] = True
    missing = drugs["drug"][~parsed].tolist()
    if missing:
        log.warning("%d of %d drugs have no usable SMILES and get an all-zero fingerprint: %s", len(missing),
                    len(drugs), ", ".join(map(str, missing[:10])) + (" ..." if len(missing) > 10 else ""))
    obs = pd.DataFrame({"has_structure": parsed}, index=pd.Index(drugs["drug"].astype(str), name="drug"))
    features = ad.AnnData(X=bits, obs=obs, var=pd.DataFrame(index=[f"morgan{radius}_{i}" for i in range(n_bits)]))
    features.uns["fingerprint"] = {"kind": "morgan", "radius": radius, "n_bits": n_bits}
    return features
