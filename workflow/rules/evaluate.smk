# Threshold-sweep evaluation on the test split: interpolated CAMs (baseline) and F-CAM.


rule evaluate_baseline:
    input:
        root=f"{DATA}/{{ds}}",
        meta=f"{DATA}/metadata/{{ds}}",
        cams="results/cams/{ds}/{backbone}/{method}/test.pt",
        code=code_of("evaluate", "metrics", "train/localisation", "data", "tracking"),
    output:
        metrics="results/evaluate/{ds}/{backbone}/{method}/baseline/metrics.json",
        curves="results/evaluate/{ds}/{backbone}/{method}/baseline/curves.json",
        samples="results/evaluate/{ds}/{backbone}/{method}/baseline/samples.npz",
    params:
        out_dir=subpath(output.metrics, parent=True),
        step=config["evaluate"]["step"],
        samples=config["evaluate"]["samples"],
        batch_size=config["evaluate"]["batch_size"],
        seed=config["seed"],
        device=config["device"],
    threads: 1
    log:
        "logs/evaluate/{ds}/{backbone}/{method}/baseline.log",
    shell:
        "fcam --log {log} evaluate --variant baseline --ds {wildcards.ds} --backbone {wildcards.backbone}"
        " --method {wildcards.method} --dataset-root {input.root} --metadata-root {input.meta}"
        " --cams {input.cams} --step {params.step} --samples {params.samples} --batch-size {params.batch_size}"
        " --seed {params.seed} --device {params.device} --threads {threads} --preset"
        f" {PRESET} --out-dir {{params.out_dir}}"


rule evaluate_fcam:
    input:
        root=f"{DATA}/{{ds}}",
        meta=f"{DATA}/metadata/{{ds}}",
        clf="results/classifier/{ds}/{backbone}/{method}/best.pt",
        best="results/decoder/{ds}/{backbone}/{method}/best.pt",
        last="results/decoder/{ds}/{backbone}/{method}/last.pt",
        code=code_of("evaluate", "metrics", "train", "models", "data", "tracking"),
    output:
        metrics="results/evaluate/{ds}/{backbone}/{method}/fcam/metrics.json",
        curves="results/evaluate/{ds}/{backbone}/{method}/fcam/curves.json",
        samples="results/evaluate/{ds}/{backbone}/{method}/fcam/samples.npz",
    params:
        out_dir=subpath(output.metrics, parent=True),
        size=config["classifier"]["crop_size"],
        step=config["evaluate"]["step"],
        samples=config["evaluate"]["samples"],
        batch_size=config["evaluate"]["batch_size"],
        seed=config["seed"],
        device=config["device"],
    threads: config["threads"]
    resources:
        gpu=GPU,
    log:
        "logs/evaluate/{ds}/{backbone}/{method}/fcam.log",
    shell:
        "fcam --log {log} evaluate --variant fcam --ds {wildcards.ds} --backbone {wildcards.backbone}"
        " --method {wildcards.method} --dataset-root {input.root} --metadata-root {input.meta}"
        " --classifier {input.clf} --decoder-best {input.best} --decoder-last {input.last} --size {params.size}"
        " --step {params.step} --samples {params.samples} --batch-size {params.batch_size}"
        " --seed {params.seed} --device {params.device} --threads {threads} --preset"
        f" {PRESET} --out-dir {{params.out_dir}}"
