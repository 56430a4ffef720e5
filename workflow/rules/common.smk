# The parameter file, the stage table and the glue Snakemake needs; all logic lives in fcam.pipeline.
from fcam.pipeline import snakemake as fs
from fcam.pipeline.handoff import snakemake_shell
from fcam.pipeline.stages import Pipeline

# A preset is a whole configuration: --configfile replaces params.yaml (no key is inherited from it).
PARAMS_FILE, OVERRIDES = fs.config_source(
    workflow.config_settings.configfiles, workflow.config_settings.config
)
PARAMS = fs.load(PARAMS_FILE, OVERRIDES)
config.clear()
config.update(PARAMS.data)
PIPELINE = Pipeline(PARAMS)
GPU = fs.gpu_units(PARAMS["device"])
fs.ensure_fcam_on_path()


def flagged(output, name):
    """An output template with Snakemake's flags (folders; files shown in the HTML report)."""
    if output.directory:
        return directory(output.path)
    if output.report:
        return report(output.path, caption=f"../report/{name}.rst", category=output.report)
    return output.path


def outputs_of(name):
    return {
        key: [flagged(o, name) for o in value] if isinstance(value, list) else flagged(value, name)
        for key, value in PIPELINE.outputs(name).items()
    }


def inputs_of(name):
    return lambda w: {**PIPELINE.inputs(name, dict(w.items())), "code": PIPELINE.code_files(name)}


def config_of(name):
    return lambda w: PIPELINE.job_config(name, dict(w.items()))


onstart:
    fs.on_start(workflow)


onsuccess:
    fs.on_success(PIPELINE, workflow.dag.jobs, params_file=PARAMS_FILE, overrides=OVERRIDES)


onerror:
    fs.on_error()
