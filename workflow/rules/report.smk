# Reports from the evaluation outputs. Tables gather every evaluation under results/evaluate.


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


rule table2:
    input:
        metrics=evaluation_metrics(),
        code=code_of("report"),
    output:
        "reports/table2.tex",
    threads: 1
    log:
        "logs/report/table2.log",
    shell:
        "fcam --log {log} report table2 --results results/evaluate --out {output}"
        f" --preset {PRESET}"


rule comparison:
    input:
        metrics=evaluation_metrics(),
        code=code_of("report"),
    output:
        "reports/comparison.md",
    threads: 1
    log:
        "logs/report/comparison.log",
    shell:
        "fcam --log {log} report comparison --results results/evaluate --out {output}"
        f" --preset {PRESET}"


rule figures:
    input:
        baseline="results/evaluate/{ds}/{backbone}/{method}/baseline/samples.npz",
        fcam="results/evaluate/{ds}/{backbone}/{method}/fcam/samples.npz",
        code=code_of("report"),
    output:
        expand(
            "reports/figures/{{ds}}_{{backbone}}_{{method}}_{kind}.{ext}",
            kind=FIGURE_KINDS,
            ext=["pdf", "png"],
        ),
    params:
        samples=config["evaluate"]["samples"],
    threads: 1
    log:
        "logs/report/figures/{ds}_{backbone}_{method}.log",
    shell:
        "fcam --log {log} report figures --results results/evaluate --ds {wildcards.ds}"
        " --backbone {wildcards.backbone} --method {wildcards.method} --out-dir reports/figures"
        f" --max-rows {{params.samples}} --preset {PRESET}"


rule paper:
    input:
        tables=["reports/table1.tex", "reports/table2.tex"],
        figures=figure_files("pdf"),
        code=code_of("report"),
    output:
        "reports/paper.tex",
    threads: 1
    log:
        "logs/report/paper.log",
    shell:
        "fcam --log {log} report paper --out {output} --tables {input.tables} --figures-dir reports/figures"
        f" --preset {PRESET}"


rule paper_pdf:
    input:
        tex="reports/paper.tex",
        tables=["reports/table1.tex", "reports/table2.tex"],
        figures=figure_files("pdf"),
        code=code_of("report"),
    output:
        "reports/paper.pdf",
    threads: 1
    log:
        "logs/report/paper_pdf.log",
    shell:
        f"fcam --log {{log}} report pdf --tex {{input.tex}} --preset {PRESET}"
