"""drp.models.catalog: what the workflow knows about each model without importing it, checked against the
classes; and that building the DAG imports no heavy library."""

from __future__ import annotations

import os
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
    # the torch models, and the wrappers (stack, seed ensemble, latent ridge), whose members may be one
    assert traits.gpu == (issubclass(cls, NeuralResponseModel) or name in ("mlp", "stack", "ensemble", "latent_ridge"))
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


def test_building_the_dag_never_imports_an_external_model_class(tmp_path):
    """A `module:Class` model is imported only by the job that trains it, after validation: a dry run must not
    execute its module (here a SYNTHETIC module that leaves a marker file when imported)."""
    marker = tmp_path / "imported"
    (tmp_path / "dag_probe_model.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    overlay = tmp_path / "probe.yaml"
    overlay.write_text("run: {datasets: [gdsc2], split_modes: [LCO], models: [mean_effects, probe]}\n"
                       "models: {mean_effects: {class: mean_effects}, probe: {class: 'dag_probe_model:Probe'}}\n"
                       "evaluation: {baseline: mean_effects, naive_baseline: null, baselines: [mean_effects],"
                       " min_pairs_per_drug: 10}\n")
    result = subprocess.run([sys.executable, "-m", "snakemake", "--snakefile", "Snakefile", "--dry-run", "--quiet", "rules",
                             "--cores", "1", "--configfile", str(REPO / "config" / "config.yaml"), str(overlay)],
                            capture_output=True, text=True, timeout=300, cwd=REPO,
                            env={**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"})
    assert result.returncode == 0 and "train" in result.stdout, result.stdout + result.stderr
    assert not marker.exists()
