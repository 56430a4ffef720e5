# Datasets: the built-in synthetic benchmark (generated), real datasets (downloaded and split).


rule synth:
    input:
        code=code_of("data/synthetic"),
    output:
        root=directory(f"{DATA}/{{ds}}"),
        meta=directory(f"{DATA}/metadata/{{ds}}"),
    wildcard_constraints:
        ds=_alternatives(SYNTHETIC),
    params:
        classes=lambda w: config["synth"][w.ds]["classes"],
        size=lambda w: config["synth"][w.ds]["size"],
        train=lambda w: config["synth"][w.ds]["train"],
        val=lambda w: config["synth"][w.ds]["val"],
        test=lambda w: config["synth"][w.ds]["test"],
        seed=lambda w: config["synth"][w.ds]["seed"],
    threads: 1
    log:
        "logs/synth/{ds}.log",
    shell:
        "fcam --log {log} data synth --ds {wildcards.ds} --root {output.root} --metadata-root {output.meta}"
        " --classes {params.classes} --size {params.size} --train {params.train} --val {params.val}"
        " --test {params.test} --seed {params.seed}"
