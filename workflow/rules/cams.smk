# CAM caching: low-resolution CAMs of the frozen classifier per (dataset, backbone, method); one job
# caches the train split (read by the decoder) and the test split (read by the baseline evaluation).


rule cams:
    input:
        root=f"{DATA}/{{ds}}",
        meta=f"{DATA}/metadata/{{ds}}",
        ckpt="results/classifier/{ds}/{backbone}/{method}/best.pt",
        code=code_of("cams", "models", "data", "tracking"),
    output:
        train="results/cams/{ds}/{backbone}/{method}/train.pt",
        test="results/cams/{ds}/{backbone}/{method}/test.pt",
    params:
        out_dir=subpath(output.train, parent=True),
        resize_size=config["classifier"]["resize_size"],
        crop_size=config["classifier"]["crop_size"],
        batch_size=config["cams"]["batch_size"],
        cam_reference=config["cams"]["reference"],
        seed=config["seed"],
        device=config["device"],
    threads: config["threads"]
    resources:
        gpu=GPU,
    log:
        "logs/cams/{ds}/{backbone}/{method}.log",
    shell:
        "fcam --log {log} cache-cams --ds {wildcards.ds} --backbone {wildcards.backbone} --method {wildcards.method}"
        " --splits train test --dataset-root {input.root} --metadata-root {input.meta}"
        " --checkpoint {input.ckpt} --resize-size {params.resize_size} --crop-size {params.crop_size} --batch-size {params.batch_size}"
        " --cam-reference {params.cam_reference} --seed {params.seed} --device {params.device}"
        f" --threads {{threads}} --preset {PRESET} --out-dir {{params.out_dir}}"
