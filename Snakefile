# Drug response prediction pipeline: download -> build_dataset -> make_splits -> features -> train ->
# predict -> evaluate -> report, then final models -> predictions for new samples (samples.smk), biomarkers
# (biomarkers.smk) and synthetic cell lines (synthetic.smk).
# README.md describes the architecture; config/README.md every key.

configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/splits.smk"
include: "workflow/rules/features.smk"
include: "workflow/rules/models.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/latent.smk"
include: "workflow/rules/samples.smk"
include: "workflow/rules/biomarkers.smk"
include: "workflow/rules/synthetic.smk"


rule all:
    default_target: True
    input:
        all_targets(),
