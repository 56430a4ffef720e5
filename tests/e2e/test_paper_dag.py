"""The paper preset's DAG starts from the download rules and covers every stage for both datasets."""

from __future__ import annotations

import re

from tests.e2e.test_dags_agree import _dvc_jobs, _edges, _snakemake_jobs
from tests.e2e.workspace import BIN, make_workspace, run


def test_paper_preset_lists_the_full_dag(tmp_path):
    ws = make_workspace(tmp_path, "paper", dvc=True)
    out = run([str(BIN / "snakemake"), "-n", "--cores", "8", "reports/table1.tex"], ws).stdout
    counts = {
        k: int(v) for k, v in re.findall(r"^(\w+)\s+(\d+)\s*$", out.split("Job stats:", 1)[1], flags=re.M)
    }
    # 2 datasets x 3 backbones x 6 methods (one CAM cache job writes the train and test splits)
    assert counts == {
        "download": 2,
        "prepare": 2,
        "classifier": 6,
        "cams": 36,
        "decoder": 36,
        "evaluate_baseline": 36,
        "evaluate_fcam": 36,
        "table1": 1,
        "total": 155,
    }
    smk = _snakemake_jobs(ws)
    dvc = {log: job for log, job in _dvc_jobs(ws).items() if log in smk}
    assert sorted(smk) == sorted(dvc)
    assert _edges(smk) == _edges(dvc)
