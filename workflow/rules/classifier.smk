# Phase 1: one training trajectory per (dataset, backbone), best epoch selected for every CAM method
# (so that enabling another method never retrains a classifier).


rule classifier:
    input:
        root=f"{DATA}/{{ds}}",
        meta=f"{DATA}/metadata/{{ds}}",
        code=code_of("train", "models", "cams", "data", "metrics", "tracking"),
    output:
        last="results/classifier/{ds}/{backbone}/last.pt",
        best=expand("results/classifier/{{ds}}/{{backbone}}/{method}/best.pt", method=CAM_METHODS),
        history="results/classifier/{ds}/{backbone}/history.json",
    params:
        out_dir=subpath(output.last, parent=True),
        pretrained=config["classifier"]["pretrained"],
        epochs=config["classifier"]["epochs"],
        batch_size=config["classifier"]["batch_size"],
        lr=classifier_lr,
        momentum=config["classifier"]["momentum"],
        nesterov=config["classifier"]["nesterov"],
        weight_decay=config["classifier"]["weight_decay"],
        step_size=config["classifier"]["step_size"],
        gamma=config["classifier"]["gamma"],
        resize_size=config["classifier"]["resize_size"],
        crop_size=config["classifier"]["crop_size"],
        val_step=config["classifier"]["val_step"],
        cam_reference=config["cams"]["reference"],
        seed=config["seed"],
        device=config["device"],
    threads: config["threads"]
    resources:
        gpu=GPU,
    log:
        "logs/classifier/{ds}/{backbone}.log",
    shell:
        "fcam --log {log} train-classifier --ds {wildcards.ds} --backbone {wildcards.backbone}"
        " --dataset-root {input.root} --metadata-root {input.meta} --out-dir {params.out_dir}"
        " --pretrained {params.pretrained} --epochs {params.epochs} --batch-size {params.batch_size}"
        " --lr {params.lr} --momentum {params.momentum} --nesterov {params.nesterov}"
        " --weight-decay {params.weight_decay} --step-size {params.step_size} --gamma {params.gamma}"
        " --resize-size {params.resize_size} --crop-size {params.crop_size} --val-step {params.val_step}"
        " --cam-reference {params.cam_reference} --seed {params.seed} --device {params.device}"
        f" --threads {{threads}} --preset {PRESET}"
