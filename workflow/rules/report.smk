# Reports: LaTeX tables from the evaluation metrics.


rule table1:
    input:
        metrics=evaluation_metrics(),
        code=code_of("report"),
    output:
        "reports/table1.tex",
    params:
        datasets=" ".join(DATASETS),
        backbones=" ".join(BACKBONES),
        methods=" ".join(METHODS),
    threads: 1
    log:
        "logs/report/table1.log",
    shell:
        "fcam --log {log} report table1 --results results/evaluate --out {output} --datasets {params.datasets}"
        f" --backbones {{params.backbones}} --methods {{params.methods}} --preset {PRESET}"
