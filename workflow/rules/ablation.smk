# Loss ablation: the decoder of one (backbone, method) retrained with subsets of its loss terms.


use rule decoder as ablation_decoder with:
    output:
        best="results/ablation/decoder/{ds}/{backbone}/{method}/{variant}/best.pt",
        last="results/ablation/decoder/{ds}/{backbone}/{method}/{variant}/last.pt",
        history="results/ablation/decoder/{ds}/{backbone}/{method}/{variant}/history.json",
    params:
        terms=ablation_terms,
    log:
        "logs/ablation/{ds}/{backbone}/{method}/{variant}/decoder.log",


use rule evaluate_fcam as ablation_evaluate with:
    input:
        root=f"{DATA}/{{ds}}",
        meta=f"{DATA}/metadata/{{ds}}",
        clf="results/classifier/{ds}/{backbone}/{method}/best.pt",
        best="results/ablation/decoder/{ds}/{backbone}/{method}/{variant}/best.pt",
        last="results/ablation/decoder/{ds}/{backbone}/{method}/{variant}/last.pt",
        code=code_of("evaluate", "metrics", "train", "models", "data", "tracking"),
    output:
        metrics="results/ablation/evaluate/{ds}/{backbone}/{method}/{variant}/metrics.json",
        curves="results/ablation/evaluate/{ds}/{backbone}/{method}/{variant}/curves.json",
        samples="results/ablation/evaluate/{ds}/{backbone}/{method}/{variant}/samples.npz",
    log:
        "logs/ablation/{ds}/{backbone}/{method}/{variant}/evaluate.log",


rule ablation_table:
    input:
        metrics=ablation_metrics(),
        code=code_of("report"),
    output:
        "reports/ablation.tex",
    threads: 1
    log:
        "logs/report/ablation.log",
    shell:
        "fcam --log {log} report ablation --results results/ablation/evaluate --out {output}"
        f" --preset {PRESET}"
