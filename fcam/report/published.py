"""The numbers published in the F-CAM paper (Belharbi et al., WACV 2022), shipped with the package.

Table 1: MaxBoxAcc (%) on CUB-200-2011 and PxAP (%) on OpenImages30k, for six CAM methods alone
("baseline") and with the F-CAM decoder ("fcam"), with three backbones and their mean as printed.
Table 2: Top-1 and Top-5 localisation accuracy (%, IoU 50) on CUB-200-2011.

The CSV text below is copied from the paper's tables (the project's ``paper/table1.csv`` and
``table2.csv``; a unit test checks the copy). Method names are the paper's spellings; the loaders
translate them to fcam's method keys (``GradCAMpp`` -> ``gradcampp``) and the ``fcam`` 0/1 flag
to the variant names of :data:`fcam.constants.VARIANTS`.

One printed mean does not equal the average of its row (XGradCAM + F-CAM on CUB: 88.8 printed,
87.2 computed); the loaders keep the printed value.
"""

from __future__ import annotations

import io
from typing import Final

import pandas as pd

__all__ = [
    "PAPER_DATASETS",
    "PAPER_METHOD_KEYS",
    "PAPER_METRIC",
    "load_table1",
    "load_table2",
    "published_long",
]

#: The paper's datasets, each with the Table 1 metric it is scored with.
PAPER_DATASETS: Final = ("cub", "openimages")
PAPER_METRIC: Final = {"cub": "max_box_acc", "openimages": "pxap"}

#: Paper spelling of a method -> fcam's method key.
PAPER_METHOD_KEYS: Final = {
    "CAM": "cam",
    "GradCAM": "gradcam",
    "GradCAMpp": "gradcampp",
    "SmoothGradCAMpp": "smoothgradcampp",
    "XGradCAM": "xgradcam",
    "LayerCAM": "layercam",
}

_TABLE1_CSV: Final = """\
method,fcam,cub_vgg16,cub_inceptionv3,cub_resnet50,cub_mean,openimages_vgg16,openimages_inceptionv3,openimages_resnet50,openimages_mean
CAM,0,61.6,58.8,71.5,63.9,53.0,62.7,56.8,57.5
GradCAM,0,69.3,62.3,73.1,68.2,59.6,63.9,60.1,61.2
GradCAMpp,0,84.1,63.3,81.9,76.4,60.5,64.0,60.2,61.5
SmoothGradCAMpp,0,69.7,66.9,76.3,70.9,52.2,61.7,54.3,56.0
XGradCAM,0,69.3,60.9,72.7,67.6,59.0,63.9,60.2,61.0
LayerCAM,0,84.3,66.5,85.2,78.6,59.5,63.5,61.1,61.3
CAM,1,87.3,82.0,90.3,86.5,67.8,71.9,72.1,70.6
GradCAM,1,87.5,84.4,90.5,87.4,68.6,70.0,70.9,69.8
GradCAMpp,1,91.5,84.6,91.0,89.0,64.8,67.1,66.3,66.0
SmoothGradCAMpp,1,89.1,86.8,90.7,88.8,60.3,65.4,64.4,63.3
XGradCAM,1,86.8,84.4,90.4,88.8,68.7,71.3,70.4,70.1
LayerCAM,1,91.0,85.3,92.4,89.7,64.3,64.9,65.3,64.8
"""

_TABLE2_CSV: Final = """\
method,fcam,top1_vgg16,top1_inceptionv3,top1_resnet50,top5_vgg16,top5_inceptionv3,top5_resnet50
CAM,0,33.5,40.9,47.8,52.7,54.8,66.5
GradCAM,0,18.5,41.6,32.3,41.7,56.2,56.4
GradCAMpp,0,20.8,41.4,34.7,47.5,56.8,61.4
SmoothGradCAMpp,0,17.7,44.4,33.1,40.2,60.2,57.7
XGradCAM,0,18.5,40.9,48.3,41.7,55.2,67.3
LayerCAM,0,24.8,43.9,44.2,47.8,59.7,70.3
CAM,1,44.0,54.6,59.1,70.1,73.8,82.6
GradCAM,1,22.1,56.1,38.8,50.0,75.4,68.5
GradCAMpp,1,23.2,55.9,39.0,52.0,76.0,68.9
SmoothGradCAMpp,1,22.9,57.3,38.9,51.2,77.6,68.6
XGradCAM,1,22.0,55.8,59.3,49.6,75.3,82.7
LayerCAM,1,23.1,56.4,47.7,51.9,76.6,76.1
"""


def _read(csv_text: str) -> pd.DataFrame:
    df = pd.read_csv(io.StringIO(csv_text), comment="#")
    variant = df.pop("fcam").map({0: "baseline", 1: "fcam"})
    df["method"] = df["method"].map(PAPER_METHOD_KEYS)
    df.insert(1, "variant", variant)
    return df


def load_table1() -> pd.DataFrame:
    """The paper's Table 1.

    Returns:
        12 rows (6 methods x 2 variants); columns ``method`` (fcam key, e.g. ``gradcampp``),
        ``variant`` (``baseline`` | ``fcam``), then ``cub_<backbone>``, ``cub_mean`` (MaxBoxAcc, %)
        and ``openimages_<backbone>``, ``openimages_mean`` (PxAP, %), float64.
    """
    return _read(_TABLE1_CSV)


def load_table2() -> pd.DataFrame:
    """The paper's Table 2 (CUB only).

    Returns:
        12 rows; columns ``method``, ``variant``, ``top1_<backbone>`` and ``top5_<backbone>`` (%).
    """
    return _read(_TABLE2_CSV)


def published_long() -> pd.DataFrame:
    """Tables 1 and 2 in long form, one published number per row.

    Returns:
        Columns ``ds`` (``cub`` | ``openimages``), ``backbone`` (a backbone key, or ``mean`` for
        Table 1's printed means), ``method``, ``variant``, ``metric`` (``max_box_acc``, ``pxap``,
        ``top1_loc``, ``top5_loc``: the keys of ``metrics.json``) and ``value`` (%).
    """
    t1 = load_table1().melt(id_vars=["method", "variant"], var_name="column", value_name="value")
    t1[["ds", "backbone"]] = t1["column"].str.split("_", n=1, expand=True)
    t1["metric"] = t1["ds"].map(PAPER_METRIC)
    t2 = load_table2().melt(id_vars=["method", "variant"], var_name="column", value_name="value")
    t2[["metric", "backbone"]] = t2["column"].str.split("_", n=1, expand=True)
    t2["metric"] = t2["metric"] + "_loc"
    t2["ds"] = "cub"
    cols = ["ds", "backbone", "method", "variant", "metric", "value"]
    return pd.concat([t1[cols], t2[cols]], ignore_index=True)
