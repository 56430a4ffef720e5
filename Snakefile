# fcam: the F-CAM pipeline. Default target: the tables, the comparison, the document, the ablation.
#   snakemake --cores 8 reports/table1.tex
#   snakemake --cores 8 reports/table1.tex --configfile workflow/presets/paper.yaml   (a whole preset)
from snakemake.utils import min_version

min_version("9.0")


include: "workflow/rules/common.smk"
include: "workflow/rules/stages.smk"


rule all:
    default_target: True
    input:
        PIPELINE.targets(),
