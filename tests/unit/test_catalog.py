"""drp.models.catalog: what the workflow knows about each model without importing it, checked against the
classes; and that building the DAG imports no heavy library."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from drp.models import catalog, resolve
from drp.models.neural import NeuralResponseModel

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", sorted(catalog.BUILTIN))
def test_builtin_traits_match_the_classes(name):
    cls = resolve(name)
    traits = catalog.traits({"class": name})
    assert traits.handles_unseen_drugs == cls.handles_unseen_drugs
    assert traits.latent == callable(getattr(cls, "encode", None))
    assert traits.gpu == (issubclass(cls, NeuralResponseModel) or name == "mlp")  # the torch models
    catalog.check_traits(cls, {"class": name})


def test_gpu_follows_the_device_param():
    assert catalog.uses_gpu({"class": "drvae", "params": {"device": "auto"}})
    assert catalog.uses_gpu({"class": "drvae"})
    assert not catalog.uses_gpu({"class": "drvae", "params": {"device": "cpu"}})
    assert not catalog.uses_gpu({"class": "elastic_net", "params": {}})


def test_external_model_declares_its_traits_and_a_wrong_declaration_is_refused():
    spec = {"class": "drp.models.drvae:DrVAE", "traits": {"latent": True, "gpu": True}}
    assert catalog.traits(spec) == catalog.Traits(latent=True, gpu=True)
    catalog.check_traits(resolve(spec["class"]), spec)
    with pytest.raises(ValueError, match=r"traits \{'latent': True\} disagree"):
        catalog.check_traits(resolve(spec["class"]), {"class": spec["class"]})  # declared nothing: latent False
    with pytest.raises(ValueError, match="unknown model class 'no_such_model'"):
        catalog.traits({"class": "no_such_model"})


def test_building_the_dag_imports_no_heavy_library():
    """Snakemake builds the DAG at every start and in every cluster job: it must not pay for torch, anndata,
    scanpy or scikit-learn. Run the dry run in one process and list what it imported."""
    code = ("import sys\nfrom snakemake.cli import main\n"
            "try:\n    main(['--snakefile', 'Snakefile', '--dry-run', '--quiet', 'rules', '--cores', '1'])\n"
            "except SystemExit:\n    pass\n"
            "print('IMPORTED', sorted(m for m in ('torch', 'anndata', 'scanpy', 'sklearn', 'scipy', 'matplotlib')"
            " if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=REPO)
    line = next((l for l in result.stdout.splitlines() if l.startswith("IMPORTED")), None)
    assert line is not None and "train" in result.stdout, result.stdout + result.stderr
    assert line == "IMPORTED []", line
