"""Protocol facts shared by every stage: normalisation, dataset kinds, names of things.

Download sources (URLs, sizes, checksums) live in :mod:`fcam.data.sources`.
"""

from __future__ import annotations

from typing import Final, Literal

#: ImageNet channel statistics, used to normalise the input of every backbone.
IMAGENET_MEAN: Final = (0.485, 0.456, 0.406)
IMAGENET_STD: Final = (0.229, 0.224, 0.225)

#: Every map is evaluated at this resolution (protocol.md, "Maps").
EVAL_SIZE: Final = 224

#: Threshold step of validation PxAP. The paper coarsens only the box sweep during training
#: (method.md §6), so the validation step parameter applies to box datasets alone.
MASK_VAL_STEP: Final = 0.001

AnnotationKind = Literal["boxes", "masks"]

#: Datasets fcam knows, with the kind of localisation annotation of their val/test splits:
#: box datasets are scored with MaxBoxAcc, mask datasets with PxAP.
DATASET_KINDS: Final[dict[str, AnnotationKind]] = {
    "synth_boxes": "boxes",
    "synth_masks": "masks",
    "cub": "boxes",
    "openimages": "masks",
}

BACKBONES: Final = ("vgg16", "inceptionv3", "resnet50")

#: CAM methods, spelled as in wildcards, params and MLflow tags.
CAM_METHODS: Final = ("cam", "gradcam", "gradcampp", "smoothgradcampp", "xgradcam", "layercam")

#: Display names as in the paper's tables.
METHOD_TITLES: Final = {
    "cam": "CAM",
    "gradcam": "GradCAM",
    "gradcampp": "GradCAM++",
    "smoothgradcampp": "Smooth-GradCAM++",
    "xgradcam": "XGradCAM",
    "layercam": "LayerCAM",
}
BACKBONE_TITLES: Final = {"vgg16": "VGG16", "inceptionv3": "InceptionV3", "resnet50": "ResNet50"}
DATASET_TITLES: Final = {
    "synth_boxes": "Synth-Boxes",
    "synth_masks": "Synth-Masks",
    "cub": "CUB",
    "openimages": "OpenImages",
}

SPLITS: Final = ("train", "val", "test")
VARIANTS: Final = ("baseline", "fcam")
