# Datasets: the built-in synthetic benchmark (generated), real datasets (downloaded and split).
# The real ones land in <data_root>/{downloads/<ds>, <ds>, metadata/<ds>} (docs: protocol.md).


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


# Downloads run where Snakemake runs (a cluster's login node): compute nodes often have no internet.
localrules:
    download,


rule download:
    input:
        code=code_of("data/download", "data/sources"),
    output:
        directory(f"{DATA}/downloads/{{ds}}"),
    wildcard_constraints:
        ds=_alternatives(REAL),
    params:
        allow_unverified=lambda w: config["download"][w.ds]["allow_unverified"],
    threads: 1
    log:
        "logs/download/{ds}.log",
    shell:
        "fcam --log {log} data download {wildcards.ds} --data-root {DATA}"
        " --allow-unverified {params.allow_unverified} --no-progress"


rule prepare:
    input:
        archives=f"{DATA}/downloads/{{ds}}",
        code=code_of("data/prepare", "data/extract", "data/verify", "data/metadata"),
    output:
        root=directory(f"{DATA}/{{ds}}"),
        meta=directory(f"{DATA}/metadata/{{ds}}"),
    wildcard_constraints:
        ds=_alternatives(REAL),
    threads: 1
    log:
        "logs/prepare/{ds}.log",
    shell:
        "fcam --log {log} data prepare {wildcards.ds} --data-root {DATA} --no-progress"
