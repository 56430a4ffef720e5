"""Localise objects in users' own images with a trained F-CAM (frozen classifier + decoder).

For each image (any size; greyscale and RGBA are converted to RGB, the stored pixel grid is used
and EXIF orientation ignored, as everywhere in fcam) this writes, under ``out_dir``:

- ``<name>_map.png``: the foreground probability ``S^1 = softmax(decoder logits)[1]`` (F-CAM,
  Belharbi et al., WACV 2022) at the image's own resolution, as 8-bit grey ``round(255 * S^1)``;
- ``<name>_overlay.png``: the map as a JET heat map blended 50/50 with the image, boxes drawn;
- ``<name>_boxes.json``: the boxes (see below).

plus ``summary.json`` (every input, ok or failed, with its outputs or its error). A file that
cannot be read (missing, empty, corrupt, truncated, not an image) or that is larger than
:data:`fcam.data.images.MAX_IMAGE_PIXELS` (refused from its header, before decoding) is logged and
listed in the summary with its error, and the other images are still processed.

How a map is made: the RGB image is resized to ``input_size`` x ``input_size`` (bilinear with
antialiasing, aspect not kept: the evaluation transform of the pipeline), ImageNet-normalised, and
batched through F-CAM; the (S, S) foreground map is resized bilinearly back to the original
(H, W) for the PNGs, and to the protocol's 224 x 224 for the boxes.

Boxes follow the WSOL box protocol (docs/protocol.md) at 224 x 224: pixels with
``uint8(255 * map) > int(tau * max(uint8(255 * map)))`` are foreground, so ``tau`` is relative to
the map's maximum. F-CAM's map is a probability (not min-max normalised, protocol.md "Maps"); on
an image with a confident object its maximum is close to 1 and the default ``tau = 0.5`` means
"more likely foreground than background". ``box`` is the box of the largest contour
(:func:`fcam.metrics.boxes_from_map`, the MaxBoxAcc box) and ``boxes`` holds one box per object,
i.e. per outer contour (8-connected foreground component), largest area first; the protocol's
hole contours (MaxBoxAccV2) are left out because a hole is background, not an object.

Box convention in the JSON: ``[x0, y0, x1, y1]`` pixel-edge coordinates of the original image
(torchvision's ``xyxy``), ``0 <= x0 < x1 <= width``, ``0 <= y0 < y1 <= height``: the box is
``image[y0:y1, x0:x1]``. A protocol box ``(x, y, x + w, y + h)`` at 224 is rescaled to
``floor(x * W / 224)`` and ``ceil((x + w) * W / 224)`` (so it covers every original pixel that the
224 box covers); the protocol clips right/bottom ends to 223, which is read as the image border.
``scores`` are the mean foreground probability inside each box (full resolution). A map with no
foreground pixel (``uint8`` maximum 0) has ``box: null`` and no boxes.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from fcam.constants import EVAL_SIZE, IMAGENET_MEAN, IMAGENET_STD
from fcam.data.images import read_image_rgb
from fcam.errors import CheckpointError, ConfigError, DataError
from fcam.evaluate.scoring import to_eval_maps
from fcam.io import atomic_path, load_checkpoint, save_json
from fcam.metrics import boxes_from_map
from fcam.metrics.protocol import contour_boxes, to_uint8
from fcam.models import FCAM
from fcam.models.checkpoints import load_fcam
from fcam.runtime import resolve_device

__all__ = [
    "DEFAULT_TAU",
    "IMAGE_SUFFIXES",
    "MIN_INPUT_SIZE",
    "LocalizationResult",
    "ResolvedModel",
    "box_scores",
    "boxes_in_image",
    "collect_images",
    "localize",
    "output_names",
    "rescale_boxes",
    "resolve_model",
]

log = logging.getLogger(__name__)

#: Suffixes (lower case) taken from a folder; other files there are skipped with a warning.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")
#: Box threshold, relative to the map's maximum (see the module docstring).
DEFAULT_TAU = 0.5
#: The encoders' total stride: a smaller input leaves no spatial feature map.
MIN_INPUT_SIZE = 32

_RUN_ID = re.compile(r"[0-9a-f]{32}")

Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class ResolvedModel:
    """The checkpoints behind a ``model`` argument of :func:`localize`.

    Attributes:
        decoder: the decoder checkpoint (``best.pt`` / ``last.pt``).
        classifier: the classifier checkpoint it was trained on, resolved to an existing file.
        run_id: the MLflow run it came from, or None when given as a path.
        info: ``backbone``, ``ds``, ``method``, ``epoch``, ``score`` and, when recorded,
            ``crop_size`` of the decoder checkpoint.
    """

    decoder: Path
    classifier: Path
    run_id: str | None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def crop_size(self) -> int | None:
        """The input size the decoder was trained at, if the checkpoint records it."""
        value = self.info.get("crop_size")
        return int(value) if value is not None else None


@dataclass(frozen=True)
class LocalizationResult:
    """What :func:`localize` did with one input image.

    Attributes:
        image: the input path, as given.
        name: the output stem (``<name>_map.png`` ...), unique within one call.
        width, height: the original size in pixels (None when the image could not be read).
        box: the largest contour's ``[x0, y0, x1, y1]`` (module docstring), or None.
        boxes: one box per object, largest first; ``scores`` their mean foreground probability.
        map_path, overlay_path, boxes_path: the written files (None on failure).
        error: why the image failed (a message naming the file), or None.
    """

    image: Path
    name: str
    width: int | None = None
    height: int | None = None
    box: Box | None = None
    boxes: tuple[Box, ...] = ()
    scores: tuple[float, ...] = ()
    map_path: Path | None = None
    overlay_path: Path | None = None
    boxes_path: Path | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        """True when every output of the image was written."""
        return self.error is None

    def to_json(self) -> dict[str, Any]:
        """The summary entry of this image (paths as strings)."""
        out: dict[str, Any] = {"image": str(self.image), "name": self.name, "ok": self.ok}
        if self.error is not None:
            out["error"] = self.error
            return out
        out.update(
            width=self.width,
            height=self.height,
            box=None if self.box is None else list(self.box),
            n_boxes=len(self.boxes),
            outputs={
                "map": str(self.map_path),
                "overlay": str(self.overlay_path),
                "boxes": str(self.boxes_path),
            },
        )
        return out


def _resolve_classifier(recorded: str, decoder: Path) -> Path:
    """Find the classifier checkpoint a decoder checkpoint names.

    The decoder job records the path it was given, relative to the repository it ran in (e.g.
    ``results/classifier/cub/resnet50/cam/best.pt``). A relative path is looked up from the
    decoder checkpoint's folder upwards: the first ancestor ``A`` such that ``A / path`` is a
    file is the repository. This works wherever the repository was moved or copied, and from any
    working directory. An absolute path is used as is.
    """
    path = Path(recorded)
    if path.is_absolute():
        if not path.is_file():
            raise CheckpointError(f"{decoder}: its classifier checkpoint {path} does not exist")
        return path
    for base in decoder.resolve().parents:
        if (base / path).is_file():
            return base / path
    raise CheckpointError(
        f"{decoder}: its classifier checkpoint {path} (relative to the repository it was trained in) "
        f"was not found under any parent folder of {decoder.resolve().parent}"
    )


def _checkpoint_dir_of_run(run_id: str, tracking_uri: str | None) -> Path:
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    from fcam.tracking import default_tracking_uri

    uri = tracking_uri or default_tracking_uri()
    try:
        run = MlflowClient(tracking_uri=uri).get_run(run_id)
    except MlflowException as exc:
        raise CheckpointError(f"MLflow run {run_id} not found in {uri}: {exc.message}") from exc
    tags = run.data.tags
    if tags.get("stage") != "decoder":
        raise CheckpointError(
            f"MLflow run {run_id} is a {tags.get('stage')!r} run, not a decoder run (stage=decoder)"
        )
    if "checkpoint_dir" not in tags:
        raise CheckpointError(
            f"MLflow run {run_id} ({run.info.status}) has no checkpoint_dir tag: "
            "the decoder job did not finish"
        )
    return Path(tags["checkpoint_dir"])


def resolve_model(model: str | Path, *, tracking_uri: str | None = None) -> ResolvedModel:
    """Turn :func:`localize`'s ``model`` argument into checkpoint paths.

    Args:
        model: a decoder checkpoint file, or the id (32 hex digits) of an MLflow run of stage
            ``decoder``, whose ``checkpoint_dir`` tag names the folder holding ``best.pt``.
            An existing file wins over a run id.
        tracking_uri: MLflow store of the run; default :func:`fcam.tracking.default_tracking_uri`.

    Returns:
        The decoder and classifier checkpoints (classifier resolved as in
        :func:`_resolve_classifier`: absolute as is, relative from the decoder's folder upwards).

    Raises:
        CheckpointError: no such file or run, a run that is not a finished decoder run, a
            checkpoint that is not a decoder's, or a missing classifier checkpoint.
    """
    path, run_id = Path(model), None
    if not path.is_file():
        if not _RUN_ID.fullmatch(str(model)):
            raise CheckpointError(
                f"{model}: no such checkpoint file, and not an MLflow run id (32 hex digits)"
            )
        run_id = str(model)
        path = _checkpoint_dir_of_run(run_id, tracking_uri) / "best.pt"
        if not path.is_file():
            raise CheckpointError(f"MLflow run {run_id}: checkpoint {path} does not exist")
    ckpt = load_checkpoint(path)
    if ckpt.get("kind") != "decoder":
        raise CheckpointError(f"{path}: not a decoder checkpoint (kind={ckpt.get('kind')!r})")
    if not ckpt.get("classifier"):
        raise CheckpointError(f"{path}: decoder checkpoint does not name its classifier checkpoint")
    info = {k: ckpt[k] for k in ("backbone", "ds", "method", "epoch", "score", "crop_size") if k in ckpt}
    return ResolvedModel(path, _resolve_classifier(str(ckpt["classifier"]), path), run_id, info)


def collect_images(inputs: Sequence[Path], *, exclude: Path | None = None) -> list[Path]:
    """Expand files and folders into the list of images to localise.

    Args:
        inputs: image files (kept whatever their suffix; unreadable ones fail later, per file)
            and folders (their files with a suffix in :data:`IMAGE_SUFFIXES`, any case, sorted;
            not recursive). A missing path is kept, to be reported as a failed image.
        exclude: a folder whose files are never taken from a scanned folder (the output folder,
            so that a second run does not localise the maps of the first).

    Returns:
        The image paths, in the order given (folders expanded in place).

    Raises:
        ConfigError: no image at all.
    """
    skip = exclude.resolve() if exclude is not None else None
    images: list[Path] = []
    for item in map(Path, inputs):
        if not item.is_dir():
            images.append(item)
            continue
        if skip is not None and item.resolve() == skip:
            log.warning("%s: skipped, it is the output folder", item)
            continue
        for child in sorted(item.iterdir()):
            if child.is_dir():
                log.debug("%s: sub-folder skipped (folders are not scanned recursively)", child)
            elif child.suffix.lower() in IMAGE_SUFFIXES:
                images.append(child)
            else:
                log.warning("%s: skipped, not an image (%s)", child, ", ".join(IMAGE_SUFFIXES))
    if not images:
        raise ConfigError(f"no images found in {', '.join(str(p) for p in inputs) or 'the inputs'}")
    return images


def output_names(images: Sequence[Path]) -> list[str]:
    """A distinct output stem per image: the file's stem, suffixed ``_1``, ``_2``... on a clash.

    Clashes are found case-insensitively (macOS and Windows file systems), in input order, and
    a generated name never takes a stem that a later input has of its own right.
    """
    taken = {Path(p).stem.casefold() for p in images}
    used: set[str] = set()
    names = []
    for image in images:
        stem = Path(image).stem or "image"
        name, i = stem, 0
        while name.casefold() in used or (i > 0 and name.casefold() in taken):
            i += 1
            name = f"{stem}_{i}"
        used.add(name.casefold())
        names.append(name)
    return names


def rescale_boxes(boxes: np.ndarray, width: int, height: int, size: int = EVAL_SIZE) -> np.ndarray:
    """Protocol boxes of a ``size`` x ``size`` map to pixel-edge boxes of a ``width`` x ``height`` image.

    Args:
        boxes: (n, 4) int ``(x, y, x + w, y + h)`` from ``cv2.boundingRect``, right/bottom clipped
            to ``size - 1`` (the protocol's boxes).
        width, height: original size.
        size: side of the map the boxes come from.

    Returns:
        (n, 4) int64 ``[x0, y0, x1, y1]``, ``0 <= x0 < x1 <= width``, ``0 <= y0 < y1 <= height``:
        ``x0 = floor(x * width / size)``, ``x1 = ceil((x + w) * width / size)``, and a clipped end
        (``size - 1``) becomes the border.
    """
    b = np.asarray(boxes, dtype=np.int64).reshape(-1, 4)
    scale = np.array([width, height, width, height], dtype=np.int64)
    ends = b[:, 2:].copy()
    ends[ends >= size - 1] = size  # the protocol's clip to the last pixel: the box reaches the border
    start = b[:, :2] * scale[:2] // size
    stop = -(-ends * scale[2:] // size)  # integer ceil
    return np.concatenate([start, np.maximum(stop, start + 1)], axis=1)


def boxes_in_image(map224: np.ndarray, tau: float, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """The largest contour's box and one box per object of a 224 x 224 map, in original pixels.

    Args:
        map224: (224, 224) float in [0, 1].
        tau: threshold relative to the map's maximum, in [0, 1).
        width, height: original size.

    Returns:
        ``(largest, objects)``: (k, 4) with k = 1, or 0 when the map has no foreground pixel,
        and (n, 4) int64 outer-contour boxes by decreasing ``cv2.contourArea`` (stable order),
        both as :func:`rescale_boxes` gives them.
    """
    largest = boxes_from_map(map224, tau)
    u = to_uint8(np.asarray(map224, dtype=np.float64))
    if u.max() == 0:  # boxes_from_map's (0, 0, 0, 0): nothing to localise
        empty = np.zeros((0, 4), np.int64)
        return empty, empty
    # The same binary map as boxes_from_map, for every contour with its nesting.
    contours = contour_boxes((u > int(np.float64(tau) * u.max())).view(np.uint8))
    outer = ~contours.holes
    order = np.argsort(-contours.areas[outer], kind="stable")
    objects = contours.boxes[outer][order]
    return rescale_boxes(largest, width, height), rescale_boxes(objects, width, height)


def box_scores(prob: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Mean of a map inside each pixel-edge box, from one integral image.

    Args:
        prob: (H, W) float map.
        boxes: (n, 4) int ``[x0, y0, x1, y1]`` with ``x0 < x1 <= W``, ``y0 < y1 <= H``.

    Returns:
        (n,) float64.
    """
    b = np.asarray(boxes, dtype=np.int64).reshape(-1, 4)
    integral = cv2.integral(np.ascontiguousarray(prob, dtype=np.float64))  # (H + 1, W + 1)
    x0, y0, x1, y1 = b.T
    total = integral[y1, x1] - integral[y0, x1] - integral[y1, x0] + integral[y0, x0]
    return total / ((x1 - x0) * (y1 - y0))


def _to_input(rgb: np.ndarray, size: int) -> torch.Tensor:
    """(H, W, 3) uint8 RGB -> (3, size, size) float32 ImageNet-normalised (the eval transform)."""
    x = torch.from_numpy(rgb).permute(2, 0, 1).float()[None]
    if x.shape[-2:] != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    x = x.clamp_(0.0, 255.0)[0] / 255.0
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return (x - mean) / std


def _encode_png(path: Path, image: np.ndarray) -> None:
    ok, data = cv2.imencode(".png", image)
    if not ok:
        raise DataError(f"{path}: OpenCV could not encode the PNG")
    # The temporary name ends in .tmp, so encode in memory instead of cv2.imwrite (which picks the
    # format from the suffix).
    with atomic_path(path) as tmp:
        tmp.write_bytes(data.tobytes())


def _overlay(rgb: np.ndarray, map_u8: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """(H, W, 3) BGR: JET heat map blended 50/50 with the image, object boxes in white."""
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    out = cv2.addWeighted(bgr, 0.5, cv2.applyColorMap(map_u8, cv2.COLORMAP_JET), 0.5, 0.0)
    thickness = max(1, round(min(rgb.shape[:2]) / 200))
    for x0, y0, x1, y1 in boxes.tolist():
        cv2.rectangle(out, (x0, y0), (x1 - 1, y1 - 1), (255, 255, 255), thickness)
    return out


def _as_box(row: np.ndarray) -> Box:
    x0, y0, x1, y1 = (int(v) for v in row)
    return x0, y0, x1, y1


def _write_outputs(
    image: Path, name: str, rgb: np.ndarray, prob: np.ndarray, map224: np.ndarray,
    tau: float, input_size: int, out_dir: Path,
) -> LocalizationResult:
    height, width = rgb.shape[:2]
    largest, objects = boxes_in_image(map224, tau, width, height)
    scores = box_scores(prob, objects)
    map_u8 = np.rint(prob * 255.0).astype(np.uint8)
    paths = {kind: out_dir / f"{name}_{kind}{ext}" for kind, ext in
             (("map", ".png"), ("overlay", ".png"), ("boxes", ".json"))}
    _encode_png(paths["map"], map_u8)
    _encode_png(paths["overlay"], _overlay(rgb, map_u8, objects))
    box = _as_box(largest[0]) if len(largest) else None
    save_json(
        {
            "image": str(image),
            "width": width,
            "height": height,
            "tau": tau,
            "input_size": input_size,
            "max_foreground": float(prob.max()),
            "convention": "x0, y0, x1, y1 pixel edges: the box is image[y0:y1, x0:x1]",
            "box": None if box is None else list(box),
            "boxes": objects.tolist(),
            "scores": [round(float(s), 6) for s in scores],
        },
        paths["boxes"],
    )
    return LocalizationResult(
        image=image,
        name=name,
        width=width,
        height=height,
        box=box,
        boxes=tuple(_as_box(b) for b in objects),
        scores=tuple(float(s) for s in scores),
        map_path=paths["map"],
        overlay_path=paths["overlay"],
        boxes_path=paths["boxes"],
    )


@torch.inference_mode()
def _run_batch(model: FCAM, inputs: list[torch.Tensor], sizes: list[tuple[int, int]],
               device: torch.device) -> tuple[list[np.ndarray], np.ndarray]:
    """Foreground maps of a batch: each at its original (H, W) float32, and all at 224 float64."""
    fg = model.foreground(torch.stack(inputs).to(device))  # (B, S, S) in [0, 1]
    full = [
        F.interpolate(m[None, None], size=hw, mode="bilinear", align_corners=False, antialias=True)[0, 0]
        .clamp_(0.0, 1.0).cpu().numpy()
        for m, hw in zip(fg, sizes, strict=True)
    ]
    return full, to_eval_maps(fg)


def _check_args(batch_size: int, input_size: int | None, tau: float) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size: expected a positive integer, got {batch_size!r}")
    if input_size is not None and (
        isinstance(input_size, bool) or not isinstance(input_size, int) or input_size < MIN_INPUT_SIZE
    ):
        raise ConfigError(f"input_size: expected an integer >= {MIN_INPUT_SIZE}, got {input_size!r}")
    if not (isinstance(tau, int | float) and 0.0 <= tau < 1.0):
        raise ConfigError(f"tau: expected a threshold in [0, 1), got {tau!r}")


def localize(
    images: Sequence[Path],
    model: str | Path,
    out_dir: Path,
    *,
    device: str = "auto",
    batch_size: int = 8,
    input_size: int | None = None,
    tau: float | None = None,
    tracking_uri: str | None = None,
    progress: bool = True,
) -> list[LocalizationResult]:
    """Localise the object in each image with F-CAM; write maps, overlays and boxes (module docstring).

    Args:
        images: image files of any size; greyscale and RGBA become RGB.
        model: a decoder checkpoint (``best.pt`` / ``last.pt``) or a decoder run's MLflow id
            (:func:`resolve_model`).
        out_dir: output folder (created); outputs are written atomically, existing ones replaced.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        batch_size: images per forward pass.
        input_size: side of the network input; default the checkpoint's ``crop_size`` when it
            records one, else 224 (the evaluation size of every preset).
        tau: box threshold in [0, 1), relative to the map's maximum; default :data:`DEFAULT_TAU`.
        tracking_uri: MLflow store, for a run id.
        progress: show a tqdm bar over the images.

    Returns:
        One result per input, in order. An image that cannot be read (missing, empty, corrupt,
        truncated, not an image, above :data:`fcam.data.images.MAX_IMAGE_PIXELS`) is a failed
        result with its error; the others are processed.
        ``out_dir / "summary.json"`` lists all of them.

    Raises:
        ConfigError: invalid ``batch_size``, ``input_size``, ``tau`` or ``device``.
        CheckpointError: the model cannot be found or loaded.
    """
    tau = DEFAULT_TAU if tau is None else tau
    _check_args(batch_size, input_size, tau)
    resolved = resolve_model(model, tracking_uri=tracking_uri)
    size = input_size or resolved.crop_size or EVAL_SIZE
    torch_device = resolve_device(device)
    fcam = load_fcam(resolved.decoder, resolved.classifier, torch_device)
    log.info(
        "F-CAM %s (classifier %s) at %d px on %s", resolved.decoder, resolved.classifier, size, torch_device
    )

    images = [Path(p) for p in images]
    names = output_names(images)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    results: list[LocalizationResult | None] = [None] * len(images)
    with tqdm(total=len(images), desc="localize", unit="img", disable=not progress) as bar:
        for start in range(0, len(images), batch_size):
            batch: list[tuple[int, np.ndarray]] = []
            for i in range(start, min(start + batch_size, len(images))):
                try:
                    batch.append((i, read_image_rgb(images[i])))
                except DataError as exc:
                    error = str(exc) if str(images[i]) in str(exc) else f"{images[i]}: {exc}"
                    log.warning("%s", error)
                    results[i] = LocalizationResult(images[i], names[i], error=error)
            if batch:
                full, maps224 = _run_batch(
                    fcam, [_to_input(rgb, size) for _, rgb in batch],
                    [rgb.shape[:2] for _, rgb in batch], torch_device,
                )
                for (i, rgb), prob, map224 in zip(batch, full, maps224, strict=True):
                    results[i] = _write_outputs(images[i], names[i], rgb, prob, map224, tau, size, out_dir)
            bar.update(min(batch_size, len(images) - start))
    done = [r for r in results if r is not None]
    assert len(done) == len(images)
    failed = [r for r in done if not r.ok]
    save_json(
        {
            "model": str(model),
            "decoder": str(resolved.decoder),
            "classifier": str(resolved.classifier),
            "run_id": resolved.run_id,
            "checkpoint": resolved.info,
            "input_size": size,
            "tau": tau,
            "device": str(torch_device),
            "n_images": len(done),
            "n_failed": len(failed),
            "images": [r.to_json() for r in done],
        },
        out_dir / "summary.json",
    )
    if failed:
        names_failed = ", ".join(str(r.image) for r in failed)
        log.warning("%d of %d images failed: %s", len(failed), len(done), names_failed)
    return done
