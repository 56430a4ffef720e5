# fcam: the F-CAM pipeline. Targets: reports/table1.tex (default), reports/table2.tex, ...
# Presets: snakemake --configfile workflow/presets/smoke.yaml ...   (see README.md)
from snakemake.utils import min_version

min_version("9.0")


configfile: "params.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/classifier.smk"
include: "workflow/rules/cams.smk"
include: "workflow/rules/decoder.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/ablation.smk"


rule all:
    input:
        "reports/table1.tex",
        "reports/table2.tex",
        "reports/comparison.md",
        "reports/paper.tex",
        "reports/ablation.tex",
