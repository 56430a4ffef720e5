"""The MLflow UI as a user sees it: headless chromium renders fcam's runs from a real server.

A store gets the runs of two pipeline invocations, ``fcam.tracking.ui_command`` serves it on a
free loopback port, and Debian's ``chromium`` loads the addresses fcam prints (``fcam ui``'s
start page, a job's run link, one invocation's runs, the runs grouped by invocation) and dumps
the rendered page. Screenshots go to ``FCAM_UI_SCREENSHOTS`` when set, else to ``mlflow-ui/``
under pytest's base temporary folder; the test prints where.
"""

from __future__ import annotations

import html
import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from fcam.tracking import tracked_run, ui_command, ui_start_url, ui_url

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.network,
    pytest.mark.skipif(
        CHROMIUM is None,
        reason="no chromium on PATH (Debian: apt-get install chromium); the UI check needs it",
    ),
]

#: The runs of two pipeline invocations: invocation id -> CAM methods (one evaluate job each).
PIPELINES = {
    "20250614-093012-aaaaaa": ("gradcam", "layercam"),
    "20250615-101500-bbbbbb": ("scorecam", "gradcampp"),
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _text(dom: str) -> str:
    """The visible text of a dumped DOM, its elements separated by `` | ``."""
    dom = re.sub(r"<(script|style)\b[^>]*>.*?</\1>", "", dom, flags=re.S)
    return html.unescape(re.sub(r"(\s*\|\s*)+", " | ", re.sub(r"<[^>]+>", " | ", dom)))


def _render(url: str, expect: str, screenshot: Path | None = None) -> str:
    """Load ``url`` in headless chromium and return the page's text once it shows ``expect``.

    The page is a JavaScript app: chromium runs it for a virtual-time budget before dumping the
    DOM; a slow machine gets a longer budget on the next try.
    """
    text = ""
    for budget in (15_000, 40_000, 90_000):
        with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
            cmd = [
                str(CHROMIUM),
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--hide-scrollbars",
                f"--user-data-dir={profile}",
                "--window-size=1600,1000",
                f"--virtual-time-budget={budget}",
                *([f"--screenshot={screenshot}"] if screenshot else []),
                "--dump-dom",
                url,
            ]
            proc = subprocess.Popen(
                cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True
            )
            try:
                dom, _ = proc.communicate(timeout=240)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.communicate()
                continue
        text = _text(dom)
        if expect in text:
            return text
    pytest.fail(f"chromium did not show {expect!r} at {url}; the page read:\n{text[:3000]}")


@pytest.fixture
def ui(tmp_path, monkeypatch, caplog):
    """A store with the runs of two pipeline invocations, served by the MLflow UI on a free port.

    Yields (base address, tracking URI, experiment id, {run name: run id}, logged run links).
    """
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    monkeypatch.setenv("FCAM_UI_URL", base)
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    runs = {}
    with caplog.at_level(logging.INFO, logger="fcam.tracking"):
        for pipeline, methods in PIPELINES.items():
            monkeypatch.setenv("FCAM_PIPELINE_RUN", pipeline)
            for method in methods:
                tags = {"ds": "synth_boxes", "backbone": "resnet18", "method": method, "variant": "fcam"}
                with tracked_run("evaluate", tags=tags, params={"seed": 0}, tracking_uri=uri) as run:
                    for epoch in range(3):
                        run.log_metrics({"max_box_acc": 50.0 + 10 * epoch}, step=epoch)
                runs[f"evaluate/synth_boxes/resnet18/{method}/fcam"] = run.run_id
    links = re.findall(rf"{re.escape(base)}/#/\S+", caplog.text)
    cmd = ui_command(port=port, tracking_uri=uri, workers=1)
    server = subprocess.Popen(
        cmd, cwd=tmp_path, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(
                    f"{base}/api/2.0/mlflow/experiments/get-by-name?experiment_name=fcam", timeout=5
                ) as r:
                    exp_id = json.load(r)["experiment"]["experiment_id"]
                break
            except OSError:
                assert server.poll() is None, "the MLflow UI exited"
                assert time.monotonic() < deadline, "the MLflow UI did not answer within 180 s"
                time.sleep(0.5)
        yield base, uri, exp_id, runs, links
    finally:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()


def test_ui_shows_fcams_runs_grouped_and_filtered_by_pipeline(ui, tmp_path_factory, capsys):
    base, uri, exp_id, runs, links = ui
    shots = Path(os.environ.get("FCAM_UI_SCREENSHOTS") or tmp_path_factory.getbasetemp() / "mlflow-ui")
    shots.mkdir(parents=True, exist_ok=True)
    port = int(base.rsplit(":", 1)[1])

    # fcam ui's start page: the runs table of the fcam experiment, not the GenAI overview
    text = _render(ui_start_url(port=port, tracking_uri=uri), "matching runs", shots / "runs.png")
    assert all(name in text for name in runs), text[:3000]
    assert "Model training" in text
    assert "Token Usage" not in text
    assert "Group by" in text

    # a job's logged link opens its run
    (name, run_id), *_ = runs.items()
    link = next(u for u in links if run_id in u)
    text = _render(link, "pipeline_run", shots / "run.png")
    assert name in text
    assert "Finished" in text
    assert "20250614-093012-aaaaaa" in text

    # one invocation's runs: the filter tags.pipeline_run = '<id>'
    first, second = PIPELINES
    url = ui_url(exp_id, search_filter=f"tags.pipeline_run = '{first}'", base=base)
    text = _render(url, "matching runs", shots / "filtered.png")
    assert all(f"/{m}/" in text for m in PIPELINES[first]), text[:3000]
    assert not any(f"/{m}/" in text for m in PIPELINES[second]), text[:3000]

    # every invocation as one group: Group by -> tag pipeline_run, the experiment's saved view
    text = _render(ui_url(exp_id, grouped_by_pipeline=True, base=base), "Group:", shots / "grouped.png")
    assert "Group by: pipeline_run" in text
    assert f"Group: {first}" in text
    assert f"Group: {second}" in text
    with capsys.disabled():
        sys.stdout.write(f"\nMLflow UI screenshots: {shots}/{{runs,run,filtered,grouped}}.png\n")
