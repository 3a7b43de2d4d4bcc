# One download rule per configured source. It runs on the submitting host (compute nodes often have
# no network) and records url, checksums and size of every file in resources/<source>/manifest.json.
# Files marked `extract: true` are archives extracted into a folder, hence directory() outputs.
for _source in config["sources"]:

    rule:
        name:
            f"download_{_source}"
        localrule: True
        output:
            **{
                _key: directory(_path) if config["sources"][_source]["files"][_key].get("extract") else _path
                for _key, _path in source_file_outputs(_source).items()
            },
            manifest=f"resources/{_source}/manifest.json",
        params:
            source=config["sources"][_source],
        log:
            f"logs/download_{_source}.log",
        benchmark:
            f"benchmarks/download_{_source}.tsv"
        conda:
            "../../envs/data.yaml"
        script:
            "../../scripts/download_source.py"


# One build rule per configured data set, since its views (and so its output files) come from config.
for _dataset, _spec in config["datasets"].items():
    if "folder" in _spec or sample_sets.is_holdout_dataset(config, _dataset):  # built below / by build_holdout_<set>
        continue

    rule:
        name:
            f"build_dataset_{_dataset}"
        input:
            **source_file_outputs(_spec["source"]),
            # The omics source's files, named by drp.input_names.omics (build_dataset.py splits them off).
            **{input_names.omics(key): path for key, path in
               (source_file_outputs(_spec["omics_source"]) if _spec.get("omics_source") else {}).items()},
            # the manifests: every downloaded file is checked against its recorded checksum before the build
            download_manifest=f"resources/{_spec['source']}/manifest.json",
            **({"download_manifest_omics": f"resources/{_spec['omics_source']}/manifest.json"}
               if _spec.get("omics_source") else {}),
        output:
            meta=f"results/{_dataset}/data/dataset.json",
            response=f"results/{_dataset}/data/response.parquet",
            drugs=f"results/{_dataset}/data/drugs.tsv",
            cell_lines=f"results/{_dataset}/data/cell_lines.tsv",
            **{view: f"results/{_dataset}/data/{view}.h5ad" for view in _spec["views"]},
        params:
            dataset=_spec,
            source_type=config["sources"][_spec["source"]]["type"],
        log:
            f"logs/{_dataset}/build_dataset.log",
        benchmark:
            f"benchmarks/{_dataset}/build_dataset.tsv"
        conda:
            "../../envs/data.yaml"
        script:
            "../../scripts/build_dataset.py"


# The omics of the cell lines that a data set's screen never measured (a profile in every view, no response),
# for models with models.<name>.unlabelled_cell_lines (drp.unlabelled). A rule of its own, not outputs of the
# build: the data set's files and everything made from them stay as they are. Built only when a training job
# asks for them; only for sources that can write them (drp.unlabelled.BUILDERS).
for _dataset, _spec in config["datasets"].items():
    if not unlabelled.builds_unlabelled(config, _dataset) or sample_sets.is_holdout_dataset(config, _dataset):
        continue

    rule:
        name:
            f"build_unlabelled_{_dataset}"
        input:
            **source_file_outputs(_spec["source"]),
            download_manifest=f"resources/{_spec['source']}/manifest.json",
        output:
            **{view: unlabelled.path(_dataset, view) for view in _spec["views"]},
        params:
            dataset=_spec,
            source_type=config["sources"][_spec["source"]]["type"],
        log:
            f"logs/{_dataset}/build_unlabelled.log",
        benchmark:
            f"benchmarks/{_dataset}/build_unlabelled.tsv"
        conda:
            "../../envs/data.yaml"
        script:
            "../../scripts/build_unlabelled.py"


# Plug-in data sets (datasets.<name>.folder, format in config/README.md). The inputs are the folder's files,
# looked up when the job is scheduled (a missing one fails there with a precise message), so editing one of
# them reruns the build.
def folder_files(spec):
    from drp.sources.folder import resolve_files  # pandas: imported only when a folder data set is scheduled

    return {key: str(path) for key, path in resolve_files(spec).items()}


for _dataset, _spec in config["datasets"].items():
    if "folder" not in _spec or sample_sets.is_holdout_dataset(config, _dataset):
        continue

    rule:
        name:
            f"build_dataset_{_dataset}"
        input:
            unpack(lambda wildcards, spec=_spec: folder_files(spec)),
        output:
            meta=f"results/{_dataset}/data/dataset.json",
            response=f"results/{_dataset}/data/response.parquet",
            drugs=f"results/{_dataset}/data/drugs.tsv",
            cell_lines=f"results/{_dataset}/data/cell_lines.tsv",
            **{view: f"results/{_dataset}/data/{view}.h5ad" for view in _spec["views"]},
        params:
            dataset=_spec,
        log:
            f"logs/{_dataset}/build_dataset.log",
        benchmark:
            f"benchmarks/{_dataset}/build_dataset.tsv"
        conda:
            "../../envs/data.yaml"
        script:
            "../../scripts/build_folder_dataset.py"


# Optional drug-perturbation pairs (LINCS L1000) for data sets that name them. Level 3 (instances, paired
# with same-plate vehicle controls) reads inst_info, level 5 (signatures) sig_info; the config schema has
# already filled `level` (3 with inst_info, else 5). The data set's expression view, when it has one, is
# read only to record how many LINCS genes it shares.
for _dataset, _spec in config["datasets"].items():
    if "perturbations" not in _spec:
        continue
    _lincs = _spec["perturbations"]
    _lincs_meta = "inst_info" if _lincs.get("level", 3 if "inst_info" in _lincs else 5) == 3 else "sig_info"

    rule:
        name:
            f"build_perturbations_{_dataset}"
        input:
            gctx=_lincs["gctx"],
            **{_lincs_meta: _lincs[_lincs_meta]},
            gene_info=_lincs["gene_info"],
            cell_lines=f"results/{_dataset}/data/cell_lines.tsv",
            drugs=f"results/{_dataset}/data/drugs.tsv",
            **({"expression": f"results/{_dataset}/data/expression.h5ad"}
               if "expression" in (_spec.get("views") or []) else {}),
        output:
            f"results/{_dataset}/data/perturbations.h5ad",
        params:
            settings=_lincs,
        log:
            f"logs/{_dataset}/build_perturbations.log",
        benchmark:
            f"benchmarks/{_dataset}/build_perturbations.tsv"
        conda:
            "../../envs/data.yaml"
        script:
            "../../scripts/build_perturbations.py"
