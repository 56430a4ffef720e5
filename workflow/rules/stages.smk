# One rule per stage of fcam's stage table (fcam/pipeline/stages.py), the same table dvc.yaml is
# generated from. A rule's params hold the resolved parameters its job reads, so that Snakemake's
# params trigger reruns exactly the jobs whose values changed.


def declare(name):
    stage = PIPELINE.stage(name)

    rule:
        name:
            name
        input:
            unpack(inputs_of(name)),
        output:
            **outputs_of(name),
        params:
            config=config_of(name),
        threads: PARAMS["threads"] if stage.threads else 1
        resources:
            gpu=GPU if stage.gpu else 0,
        log:
            PIPELINE.log(name),
        wildcard_constraints:
            **fs.constraints(PIPELINE, name),
        localrule: stage.local
        shell:
            snakemake_shell(PIPELINE, name, params_file=PARAMS_FILE, overrides=OVERRIDES)


for name in PIPELINE.stages:
    declare(name)
