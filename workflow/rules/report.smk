# Reports: LaTeX tables from the evaluation metrics (every evaluation under results/evaluate).


rule table1:
    input:
        metrics=evaluation_metrics(),
        code=code_of("report"),
    output:
        "reports/table1.tex",
    threads: 1
    log:
        "logs/report/table1.log",
    shell:
        "fcam --log {log} report table1 --results results/evaluate --out {output}"
        f" --preset {PRESET}"
