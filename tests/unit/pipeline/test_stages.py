"""The stage table: which jobs each preset runs, and that every job's pieces agree."""

from __future__ import annotations

import copy
import importlib
import itertools
from pathlib import Path

import pytest

from fcam.constants import CAM_METHODS
from fcam.errors import ConfigError
from fcam.pipeline.params import Params, load_params
from fcam.pipeline.stages import STAGES, Output, Pipeline, _fill
from fcam.pipeline.typed import from_mapping
from tests.jobs import REPO

DEFAULT = load_params(REPO / "params.yaml")
SMOKE = load_params(REPO / "workflow" / "presets" / "smoke.yaml")
PAPER = load_params(REPO / "workflow" / "presets" / "paper.yaml")


def _counts(params: Params) -> dict[str, int]:
    pipeline = Pipeline(params)
    return {name: len(pipeline.jobs(name)) for name in pipeline.stages}


def test_default_preset_shares_one_classifier_trajectory_per_dataset_backbone_and_seed():
    counts = _counts(DEFAULT)
    assert counts["classifier"] == 2 * 3 * 3  # datasets x backbones x seeds
    # Twins (CAM = Grad-CAM = XGrad-CAM, Grad-CAM++ = Smooth-Grad-CAM++) share a cache and a
    # decoder: 3 computed methods; every method keeps its evaluations.
    assert counts["cams"] == counts["decoder"] == 2 * 3 * 3 * 3
    assert counts["evaluate_fcam"] == counts["evaluate_baseline"] == 2 * 3 * 6 * 3
    assert "select" not in counts  # one search point: nothing to choose
    assert "download" not in counts
    assert counts["synth"] == 2
    assert counts["figures"] == 2 * 3 * 6


def test_paper_preset_trains_one_classifier_per_method_and_searches_n_minus_and_alpha():
    counts = _counts(PAPER)
    assert counts["classifier"] == 30  # 2 datasets x 3 backbones x 5 computed methods, one seed
    assert counts["decoder"] == 30 * 14  # n- in {0.1..0.7} x alpha in {1, 0.1}
    assert counts["select"] == 30
    assert counts["evaluate_fcam"] == counts["evaluate_baseline"] == 36  # 6 methods
    assert counts["download"] == counts["prepare"] == 2
    assert "synth" not in counts


@pytest.mark.parametrize("params", [DEFAULT, SMOKE, PAPER], ids=["default", "smoke", "paper"])
def test_every_input_is_made_by_exactly_one_job(params):
    """The table is a DAG: each input is some job's output, and no two jobs write one path."""
    pipeline = Pipeline(params)
    made: dict[str, str] = {}
    for name in pipeline.stages:
        for wc in pipeline.jobs(name):
            for value in pipeline.outputs(name).values():
                for out in value if isinstance(value, list) else [value]:
                    path = _fill(out.path, **wc)
                    assert path not in made, f"{path}: written by {made[path]} and {name}"
                    made[path] = pipeline.job_name(name, wc)
    for name in pipeline.stages:
        for wc in pipeline.jobs(name):
            for value in pipeline.inputs(name, wc).values():
                for path in value if isinstance(value, list) else [value]:
                    assert path in made, f"{pipeline.job_name(name, wc)}: nothing makes {path}"


def test_job_names_and_specs():
    # The default preset overrides no dataset: one is added to see it reach the job's config.
    pipeline = Pipeline(load_params(REPO / "params.yaml", {"datasets.synth_masks.decoder": {"epochs": 3}}))
    wc = {
        "ds": "synth_masks",
        "backbone": "vgg16",
        "method": "gradcampp",
        "seed": "2",
        "setting": "nbg0.3-alpha1",
    }
    spec = pipeline.spec("decoder", wc, params_file="params.yaml")
    assert spec.name == "decoder@synth_masks-vgg16-gradcampp-seed2-nbg0.3-alpha1"
    assert spec.path("classifier") == Path("results/classifier/synth_masks/vgg16/gradcampp/seed2/best.pt")
    assert spec.path("best") == Path(
        "results/decoder/synth_masks/vgg16/gradcampp/seed2/nbg0.3-alpha1/best.pt"
    )
    assert spec.log == Path("logs/decoder/synth_masks/vgg16/gradcampp/seed2/nbg0.3-alpha1.log")
    assert spec.config["decoder"]["epochs"] == 3  # datasets.synth_masks.decoder.epochs
    assert spec.config["setting"] == {"name": "nbg0.3-alpha1", "bg_fraction": 0.3, "pce_weight": 1.0}
    shared = pipeline.spec(
        "classifier", {"ds": "synth_boxes", "backbone": "vgg16", "seed": 0}, params_file="p"
    )
    assert shared.paths("best") == tuple(
        Path(f"results/classifier/synth_boxes/vgg16/{m}/seed0/best.pt") for m in CAM_METHODS
    )
    assert shared.config["classifier"]["lr"] == 0.002  # backbones.vgg16.classifier.lr


@pytest.mark.parametrize(
    ("wildcards", "message"),
    [
        ({"ds": "synth_boxes", "backbone": "vgg16"}, "missing: ['seed']"),
        ({"ds": "synth_boxes", "backbone": "vgg16", "seed": 0, "method": "cam"}, "not taken: ['method']"),
        (
            {"ds": "synth_boxes", "backbone": "vgg16", "seed": 7},
            "seed '7' is not enabled for stage classifier",
        ),
        ({"ds": "cub", "backbone": "vgg16", "seed": 0}, "ds 'cub' is not enabled"),
    ],
)
def test_a_job_that_the_parameters_do_not_run_is_refused(wildcards, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        Pipeline(DEFAULT).spec("classifier", wildcards, params_file="params.yaml")


def test_twins_keep_their_evaluations_and_read_their_computed_methods_files():
    pipeline = Pipeline(DEFAULT)
    wc = {"ds": "synth_boxes", "backbone": "resnet50", "method": "smoothgradcampp", "seed": "1"}
    baseline = pipeline.spec("evaluate_baseline", wc, params_file="params.yaml")
    fcam = pipeline.spec("evaluate_fcam", wc, params_file="params.yaml")
    assert baseline.path("cams") == Path("results/cams/synth_boxes/resnet50/gradcampp/seed1/test.pt")
    assert fcam.path("classifier") == Path("results/classifier/synth_boxes/resnet50/gradcampp/seed1/best.pt")
    assert fcam.path("best").parent == Path(
        "results/decoder/synth_boxes/resnet50/gradcampp/seed1/nbg0.3-alpha1"
    )
    assert fcam.path("metrics") == Path(
        "results/evaluate/synth_boxes/resnet50/smoothgradcampp/seed1/fcam/metrics.json"
    )
    assert fcam.tags["computed_as"] == "gradcampp"
    with pytest.raises(ConfigError, match=r"'xgradcam' is computed as 'cam' .*: use --method cam"):
        pipeline.spec("decoder", {**wc, "method": "xgradcam", "setting": "nbg0.3-alpha1"}, params_file="p")


def test_stages_the_parameters_do_not_enable_are_refused():
    with pytest.raises(ConfigError, match="stage 'select' is not part of this configuration"):
        Pipeline(DEFAULT).stage("select")


def _leaves(value, path=()):
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _leaves(item, (*path, key))
    else:
        yield path


def _perturb(value):
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, float):
        return value / 2
    if isinstance(value, str):
        return value + "x"
    if value is None:
        return 3
    if isinstance(value, list):
        return value[:-1] if len(value) > 1 else value + value
    return value


#: Keys the pipeline itself consumes (which jobs exist, where they run), not a job's config.
_STRUCTURE = {
    "seeds",
    "device",
    "threads",
    "workers",
    "data_root",
    "methods",
    "datasets",
    "backbones",
    "search",
    "ablation",
}


def _typed_configs(params: Params) -> dict[str, object]:
    """Every job's config, built through its stage's typed dataclass where it has one."""
    pipeline = Pipeline(params)
    configs = {}
    for name, stage in pipeline.stages.items():
        for wc in pipeline.jobs(name):
            config = pipeline.job_config(name, wc)
            module = importlib.import_module(stage.runner.partition(":")[0])
            job_types = [
                getattr(module, attr)
                for attr in ("ClassifierJob", "CamJob", "DecoderJob", "AblationJob", "EvaluateJob")
                if hasattr(module, attr)
            ]
            built = config
            for job_type in job_types:
                try:
                    built = from_mapping(
                        job_type,
                        {
                            **config,
                            **(
                                {"size": None}
                                if job_type.__name__ == "EvaluateJob" and "size" not in config
                                else {}
                            ),
                        },
                    )
                    break
                except ConfigError:
                    continue
            configs[pipeline.job_name(name, wc)] = built
    return configs


def test_where_jobs_run_comes_with_the_job_not_its_config():
    """device, threads and workers change where and how fast a job runs, not its result."""
    where = {"threads": 2, "workers": 3, "device": "cpu"}
    changed = Params(data={**DEFAULT.data, **where}, source="t")
    wildcards = {
        "ds": "synth_boxes",
        "backbone": "vgg16",
        "method": "cam",
        "seed": "0",
        "setting": "nbg0.3-alpha1",
    }
    spec = Pipeline(changed).spec("decoder", wildcards, params_file="p")
    assert (spec.device, spec.threads, spec.workers) == ("cpu", 2, 3)
    table = Pipeline(changed).spec("table1", {}, params_file="p")
    assert (table.threads, table.workers) == (1, 0)  # no network: one thread, no loader processes


@pytest.mark.parametrize("preset", [DEFAULT, PAPER], ids=["default", "paper"])
def test_every_parameter_reaches_a_job(preset):
    """Change any one value of the file: some job's typed config changes (nothing is dropped)."""
    base = copy.deepcopy(dict(preset.data))
    before = _typed_configs(preset)
    for path in _leaves(base):
        if path[0] in _STRUCTURE or path[0] == "preset":
            continue
        changed = copy.deepcopy(base)
        node = changed
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = _perturb(node[path[-1]])
        try:
            params = Params(data=changed, source="test")
            after = _typed_configs(params)
        except ConfigError:
            continue  # an invalid value (e.g. crop > resize): the schema guards it
        assert any(before.get(k) != v for k, v in after.items()), f"{'.'.join(map(str, path))} reaches no job"


def test_typed_configs_take_every_key_of_every_job():
    """from_mapping is strict: a job's resolved parameters fill its dataclass exactly."""
    for params in (DEFAULT, PAPER):
        for name, built in _typed_configs(params).items():
            stage = name.partition("@")[0]
            if stage in (
                "classifier",
                "cams",
                "decoder",
                "ablation_decoder",
                "evaluate_baseline",
                "evaluate_fcam",
            ):
                assert not isinstance(built, dict), f"{name}: its config does not build its job dataclass"


@pytest.mark.parametrize("params", [DEFAULT, PAPER], ids=["default", "paper"])
def test_each_stage_is_defined_once_for_its_parameters(params):
    names = [s.name for s in STAGES if s.enabled(params)]
    assert len(names) == len(set(names))


def test_outputs_are_templates_over_the_stage_wildcards():
    for params in (DEFAULT, PAPER):
        pipeline = Pipeline(params)
        for name, stage in pipeline.stages.items():
            for value in pipeline.outputs(name).values():
                for out in value if isinstance(value, list) else [value]:
                    assert isinstance(out, Output)
                    fields = {f for f in _fields(out.path)}
                    assert fields <= set(stage.wildcards), (name, out.path)
                    if stage.wildcards:
                        jobs = pipeline.jobs(name)
                        paths = {_fill(out.path, **wc) for wc in jobs}
                        # an output template that ignored a wildcard would collide across jobs
                        assert len(paths) == len(jobs) or not fields, (name, out.path)


def _fields(template: str) -> list[str]:
    import re

    return re.findall(r"\{(\w+)\}", template)


def test_dvc_and_snakemake_commands_differ_only_by_threads():
    from fcam.pipeline.handoff import snakemake_shell

    pipeline = Pipeline(DEFAULT)
    for name, _stage in pipeline.stages.items():
        for wc in itertools.islice(pipeline.jobs(name), 2):
            smk = snakemake_shell(pipeline, name, params_file="params.yaml")
            smk = smk.replace("{log}", _fill(pipeline.log(name), **wc))
            smk = (
                smk.format(wildcards=type("W", (), wc), threads=1)
                if "{wildcards" in smk
                else smk.replace("{threads}", "1")
            )
            dvc = pipeline.command(name, wc, log=_fill(pipeline.log(name), **wc), params_file="params.yaml")
            assert smk == f"{dvc} --threads 1", name
