# Phase 2: F-CAM decoder fine-tuning on the frozen classifier, from the cached train CAMs.


rule decoder:
    input:
        root=f"{DATA}/{{ds}}",
        meta=f"{DATA}/metadata/{{ds}}",
        clf="results/classifier/{ds}/{backbone}/{method}/best.pt",
        cams="results/cams/{ds}/{backbone}/{method}/train.pt",
        code=code_of("train", "models", "losses", "data", "metrics", "tracking"),
    output:
        best="results/decoder/{ds}/{backbone}/{method}/best.pt",
        last="results/decoder/{ds}/{backbone}/{method}/last.pt",
        history="results/decoder/{ds}/{backbone}/{method}/history.json",
    params:
        out_dir=subpath(output.best, parent=True),
        epochs=decoder_epochs,
        batch_size=config["decoder"]["batch_size"],
        lr=config["decoder"]["lr"],
        momentum=config["decoder"]["momentum"],
        nesterov=config["decoder"]["nesterov"],
        weight_decay=config["decoder"]["weight_decay"],
        resize_size=config["classifier"]["resize_size"],
        crop_size=config["classifier"]["crop_size"],
        val_step=config["classifier"]["val_step"],
        seeds=config["decoder"]["seeds"],
        loss=loss_flags(config["decoder"]["loss"]),
        terms="pce crf size",
        barrier=config["decoder"]["barrier"],
        seed=config["seed"],
        device=config["device"],
    threads: config["threads"]
    resources:
        gpu=GPU,
    log:
        "logs/decoder/{ds}/{backbone}/{method}.log",
    shell:
        "fcam --log {log} train-decoder --ds {wildcards.ds} --backbone {wildcards.backbone} --method {wildcards.method}"
        " --dataset-root {input.root} --metadata-root {input.meta} --classifier {input.clf} --cams {input.cams}"
        " --out-dir {params.out_dir} --epochs {params.epochs} --batch-size {params.batch_size} --lr {params.lr}"
        " --momentum {params.momentum} --nesterov {params.nesterov} --weight-decay {params.weight_decay}"
        " --resize-size {params.resize_size} --crop-size {params.crop_size} --val-step {params.val_step}"
        " --n-fg {params.seeds[n_fg]} --n-bg {params.seeds[n_bg]} --bg-fraction {params.seeds[bg_fraction]}"
        " --erosion {params.seeds[erosion]} --dilation {params.seeds[dilation]} {params.loss} --terms {params.terms}"
        " --barrier-t0 {params.barrier[t0]} --barrier-factor {params.barrier[factor]}"
        " --barrier-t-max {params.barrier[t_max]} --seed {params.seed} --device {params.device}"
        f" --threads {{threads}} --preset {PRESET}"
