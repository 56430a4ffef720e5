"""dvc.yaml is generated from the stage table; the committed file is the fresh generation."""

from __future__ import annotations

import re

import pytest
import yaml

from fcam.errors import ConfigError
from fcam.pipeline.dvc import check_dvc_yaml, dvc_yaml
from fcam.pipeline.params import load_params
from fcam.pipeline.stages import Pipeline, _fill
from tests.jobs import REPO, write_params


def test_committed_dvc_yaml_is_the_fresh_generation():
    """Fails when dvc.yaml is stale: run `fcam dvc-yaml` and commit it."""
    pipeline = Pipeline(load_params(REPO / "params.yaml"))
    assert (REPO / "dvc.yaml").read_text() == dvc_yaml(pipeline), "dvc.yaml is stale: run `fcam dvc-yaml`"


def test_stage_names_say_what_they_are():
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    assert "synth_boxes-resnet50-seed0" in stages["classifier"]["foreach"]
    assert "synth_masks-vgg16-gradcampp-seed2-nbg0.3-alpha1" in stages["decoder"]["foreach"]
    assert "paper_pdf" not in stages  # Snakemake only: DVC cannot make LaTeX optional


def _render(template, item: dict) -> object:
    if isinstance(template, str):
        return re.sub(r"\$\{item\.(\w+)\}", lambda m: str(item[m.group(1)]), template)
    if isinstance(template, list):
        return [_render(t, item) for t in template]
    return {k: _render(v, item) for k, v in template.items()}


@pytest.mark.parametrize("preset", ["params.yaml", "workflow/presets/paper.yaml"])
def test_each_foreach_template_renders_each_job_exactly(preset):
    """The template DVC expands gives every job the inputs, outputs and command of the stage table."""
    pipeline = Pipeline(load_params(REPO / preset))
    stages = yaml.safe_load(dvc_yaml(pipeline))["stages"]
    for name in pipeline.stages:
        if name not in stages:
            continue
        entry = stages[name]
        jobs = pipeline.jobs(name)
        items = entry["foreach"].values() if "foreach" in entry else [{}]
        assert len(items) == len(jobs)
        for item, wc in zip(items, jobs, strict=True):
            rendered = _render(entry.get("do", entry), item)
            inputs = [
                p for v in pipeline.inputs(name, wc).values() for p in (v if isinstance(v, list) else [v])
            ]
            assert rendered["deps"][: len(dict.fromkeys(inputs))] == list(dict.fromkeys(inputs))
            outs = [
                _fill(o.path, **wc)
                for v in pipeline.outputs(name).values()
                for o in (v if isinstance(v, list) else [v])
            ]
            assert rendered["outs"] == outs
            log = _fill(pipeline.log(name), **wc)
            assert rendered["cmd"] == pipeline.command(name, wc, log=log, params_file="params.yaml")


def test_a_stale_dvc_yaml_is_named_with_the_fix(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_params(tmp_path)
    pipeline = Pipeline(load_params("params.yaml"))
    (tmp_path / "dvc.yaml").write_text(dvc_yaml(pipeline))
    check_dvc_yaml(pipeline)
    changed = Pipeline(load_params(write_params(tmp_path, {"seeds": [0, 1]})))
    with pytest.raises(
        ConfigError, match=r"does not match the structure of .*run `fcam dvc-yaml`, then `dvc repro`"
    ):
        check_dvc_yaml(changed)


def test_values_do_not_change_dvc_yaml(tmp_path):
    """Only the structure is in dvc.yaml: editing a value needs no regeneration."""
    base = dvc_yaml(Pipeline(load_params(write_params(tmp_path))))
    edited = dvc_yaml(
        Pipeline(load_params(write_params(tmp_path, {"decoder.lr": 0.5, "classifier.epochs": 7})))
    )
    assert base == edited
