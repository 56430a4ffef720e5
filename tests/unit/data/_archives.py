"""Test helpers for the real-dataset pipeline: tiny archives in the exact layouts of CUB-200-2011,
CUBV2, OpenImages30k and wsolevaluation's metadata, and a local HTTP file server with faults.

The expected metadata below is worked out by hand from the raw tables (see each comment).
"""

from __future__ import annotations

import hashlib
import io
import re
import tarfile
import threading
import zipfile
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import cv2
import numpy as np

from fcam.data.sources import WSOLEVAL_COMMIT, Source

# ----------------------------------------------------------------------------- files and archives


def jpeg_bytes(width: int, height: int, seed: int) -> bytes:
    """A real JPEG of the given size (random colours)."""
    img = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    ok, buf = cv2.imencode(".jpg", img)
    assert ok
    return buf.tobytes()


def png_mask_bytes(width: int, height: int, box: tuple[int, int, int, int]) -> bytes:
    """A binary PNG mask (0/255) with ``box`` = x0, y0, x1, y1 (exclusive) set."""
    mask = np.zeros((height, width), dtype=np.uint8)
    x0, y0, x1, y1 = box
    mask[y0:y1, x0:x1] = 255
    ok, buf = cv2.imencode(".png", mask)
    assert ok
    return buf.tobytes()


def write_tar(path: Path, members: dict[str, bytes], *, gz: bool = True) -> Path:
    """A tar (gzip-compressed if ``gz``) holding ``members`` (name -> bytes), folders implied."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz" if gz else "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def write_zip(path: Path, members: dict[str, bytes]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def source_for(name: str, path: Path, url: str, *, checksum: bool = True) -> Source:
    """A :class:`Source` describing the local file ``path`` served at ``url``."""
    if not checksum:
        return Source(name=name, url=url, filename=path.name)
    return Source(name=name, url=url, filename=path.name, size=path.stat().st_size, sha256=sha256(path))


# ----------------------------------------------------------------------------- mini CUB

CUB_CLASSES = ("001.Black_footed_Albatross", "002.Laysan_Albatross")
# (CUB image id, path, label 1-based, is_training_image, (width, height), "x y width height")
CUB_IMAGES = (
    (1, "001.Black_footed_Albatross/Black_Footed_Albatross_0046_18.jpg", 1, 0, (48, 40), "2.0 3.0 30.0 20.0"),
    (2, "001.Black_footed_Albatross/Black_Footed_Albatross_0009_34.jpg", 1, 1, (40, 32), "1.5 2.7 20.6 15.2"),
    (3, "001.Black_footed_Albatross/Black_Footed_Albatross_0002_55.jpg", 1, 0, (36, 30), "0.0 0.0 36.0 30.0"),
    (4, "002.Laysan_Albatross/Laysan_Albatross_0002_1027.jpg", 2, 1, (50, 30), "10.0 5.0 20.0 10.0"),
    (5, "002.Laysan_Albatross/Laysan_Albatross_0082_524.jpg", 2, 1, (30, 50), "3.9 4.1 10.2 30.5"),
    (6, "002.Laysan_Albatross/Laysan_Albatross_0044_784.jpg", 2, 0, (44, 44), "5.0 6.0 7.0 8.0"),
)
# CUBV2 val images: (path, label 0-based, (width, height), boxes x0, y0, x1, y1)
CUBV2_IMAGES = (
    ("001.Black_footed_Albatross/30107316117.jpg", 0, (60, 45), ((10, 5, 40, 30),)),
    ("002.Laysan_Albatross/25513167677.jpg", 1, (45, 60), ((0, 10, 44, 59), (5, 5, 20, 20))),
)

# Hand-derived: train = images 2, 4, 5 and test = 1, 3, 6 in images.txt order; labels - 1;
# boxes (int(x), int(y), int(x + w), int(y + h)): 1.5+20.6=22.1 -> 22, 2.7+15.2=17.9 -> 17,
# 3.9+10.2=14.1 -> 14, 4.1+30.5=34.6 -> 34; image 3's box ends on the border (36, 30).
EXPECTED_CUB = {
    "train": {
        "image_ids.txt": "001.Black_footed_Albatross/Black_Footed_Albatross_0009_34.jpg\n"
        "002.Laysan_Albatross/Laysan_Albatross_0002_1027.jpg\n"
        "002.Laysan_Albatross/Laysan_Albatross_0082_524.jpg\n",
        "class_labels.txt": "001.Black_footed_Albatross/Black_Footed_Albatross_0009_34.jpg,0\n"
        "002.Laysan_Albatross/Laysan_Albatross_0002_1027.jpg,1\n"
        "002.Laysan_Albatross/Laysan_Albatross_0082_524.jpg,1\n",
        "image_sizes.txt": "001.Black_footed_Albatross/Black_Footed_Albatross_0009_34.jpg,40,32\n"
        "002.Laysan_Albatross/Laysan_Albatross_0002_1027.jpg,50,30\n"
        "002.Laysan_Albatross/Laysan_Albatross_0082_524.jpg,30,50\n",
        "localization.txt": "001.Black_footed_Albatross/Black_Footed_Albatross_0009_34.jpg,1,2,22,17\n"
        "002.Laysan_Albatross/Laysan_Albatross_0002_1027.jpg,10,5,30,15\n"
        "002.Laysan_Albatross/Laysan_Albatross_0082_524.jpg,3,4,14,34\n",
    },
    "test": {
        "image_ids.txt": "001.Black_footed_Albatross/Black_Footed_Albatross_0046_18.jpg\n"
        "001.Black_footed_Albatross/Black_Footed_Albatross_0002_55.jpg\n"
        "002.Laysan_Albatross/Laysan_Albatross_0044_784.jpg\n",
        "class_labels.txt": "001.Black_footed_Albatross/Black_Footed_Albatross_0046_18.jpg,0\n"
        "001.Black_footed_Albatross/Black_Footed_Albatross_0002_55.jpg,0\n"
        "002.Laysan_Albatross/Laysan_Albatross_0044_784.jpg,1\n",
        "image_sizes.txt": "001.Black_footed_Albatross/Black_Footed_Albatross_0046_18.jpg,48,40\n"
        "001.Black_footed_Albatross/Black_Footed_Albatross_0002_55.jpg,36,30\n"
        "002.Laysan_Albatross/Laysan_Albatross_0044_784.jpg,44,44\n",
        "localization.txt": "001.Black_footed_Albatross/Black_Footed_Albatross_0046_18.jpg,2,3,32,23\n"
        "001.Black_footed_Albatross/Black_Footed_Albatross_0002_55.jpg,0,0,36,30\n"
        "002.Laysan_Albatross/Laysan_Albatross_0044_784.jpg,5,6,12,14\n",
    },
    "val": {
        "image_ids.txt": "001.Black_footed_Albatross/30107316117.jpg\n002.Laysan_Albatross/25513167677.jpg\n",
        "class_labels.txt": "001.Black_footed_Albatross/30107316117.jpg,0\n"
        "002.Laysan_Albatross/25513167677.jpg,1\n",
        "image_sizes.txt": "001.Black_footed_Albatross/30107316117.jpg,60,45\n"
        "002.Laysan_Albatross/25513167677.jpg,45,60\n",
        "localization.txt": "001.Black_footed_Albatross/30107316117.jpg,10,5,40,30\n"
        "002.Laysan_Albatross/25513167677.jpg,0,10,44,59\n"
        "002.Laysan_Albatross/25513167677.jpg,5,5,20,20\n",
    },
}
CUB_SIZES = {"train": 3, "val": 2, "test": 3}


def cub_archive_members() -> dict[str, bytes]:
    """Members of a mini ``CUB_200_2011.tgz``, laid out as the real one."""
    top = "CUB_200_2011/"
    members = {
        top + "README": b"mini CUB-200-2011 for tests\n",
        top + "classes.txt": "".join(f"{i} {c}\n" for i, c in enumerate(CUB_CLASSES, 1)).encode(),
        top + "images.txt": "".join(f"{i} {p}\n" for i, p, *_ in CUB_IMAGES).encode(),
        top + "image_class_labels.txt": "".join(f"{i} {lab}\n" for i, _, lab, *_ in CUB_IMAGES).encode(),
        top + "train_test_split.txt": "".join(f"{i} {t}\n" for i, _, _, t, *_ in CUB_IMAGES).encode(),
        top + "bounding_boxes.txt": "".join(f"{i} {b}\n" for i, *_, b in CUB_IMAGES).encode(),
    }
    for i, path, _, _, (w, h), _ in CUB_IMAGES:
        members[top + "images/" + path] = jpeg_bytes(w, h, seed=i)
    return members


def cubv2_archive_members() -> dict[str, bytes]:
    """Members of a mini ``CUBV2.tar``: class folders at the top, as wsolevaluation extracts it."""
    return {path: jpeg_bytes(w, h, seed=100 + k) for k, (path, _, (w, h), _) in enumerate(CUBV2_IMAGES)}


# ----------------------------------------------------------------------------- mini OpenImages30k

# (path, label, (width, height), [(mask path, ignore path or "", mask box)])
OI_TRAIN = (
    ("train/01226z/0a9b7df4d832baf7.jpg", 0, (32, 24)),
    ("train/0138tl/0abee225b2418fe7.jpg", 1, (24, 32)),
    ("train/0138tl/1cd9ac0169ec7df0.jpg", 1, (40, 20)),
)
OI_EVAL = {
    "val": (
        (
            "val/01226z/32fdab44f6e415f1.jpg",
            0,
            (36, 28),
            (
                (
                    "val/01226z/32fdab44f6e415f1_m01226z_7dab3053.png",
                    "val/01226z/32fdab44f6e415f1_ignore.png",
                ),
                ("val/01226z/32fdab44f6e415f1_m01226z_cde75368.png", ""),
            ),
        ),
        (
            "val/0138tl/d6fc94e452045cd7.jpg",
            1,
            (28, 36),
            (("val/0138tl/d6fc94e452045cd7_m0138tl_685f8420.png", "val/0138tl/d6fc94e452045cd7_ignore.png"),),
        ),
    ),
    "test": (
        (
            "test/01226z/0a51958fcd523ae4.jpg",
            0,
            (30, 30),
            (
                (
                    "test/01226z/0a51958fcd523ae4_m01226z_41344f12.png",
                    "test/01226z/0a51958fcd523ae4_ignore.png",
                ),
            ),
        ),
        # no ignore mask at all: the field stays empty, as wsolevaluation allows
        (
            "test/0138tl/3a29f0b33894d4a6.jpg",
            1,
            (26, 22),
            (("test/0138tl/3a29f0b33894d4a6_m0138tl_3581e3ae.png", ""),),
        ),
    ),
}
OI_SIZES = {"train": 3, "val": 2, "test": 2}


def _oi_reference() -> dict[str, dict[str, str]]:
    ref = {
        "train": {
            "image_ids.txt": "".join(f"{p}\n" for p, _, _ in OI_TRAIN),
            "class_labels.txt": "".join(f"{p},{lab}\n" for p, lab, _ in OI_TRAIN),
        }
    }
    for split, images in OI_EVAL.items():
        ref[split] = {
            "image_ids.txt": "".join(f"{p}\n" for p, *_ in images),
            "class_labels.txt": "".join(f"{p},{lab}\n" for p, lab, *_ in images),
            "localization.txt": "".join(f"{p},{m},{g}\n" for p, _, _, masks in images for m, g in masks),
        }
    return ref


def expected_openimages() -> dict[str, dict[str, str]]:
    """wsolevaluation's files, plus image_sizes.txt from the sizes the images were written with."""
    expected = _oi_reference()
    expected["train"]["image_sizes.txt"] = "".join(f"{p},{w},{h}\n" for p, _, (w, h) in OI_TRAIN)
    for split, images in OI_EVAL.items():
        expected[split]["image_sizes.txt"] = "".join(f"{p},{w},{h}\n" for p, _, (w, h), _ in images)
    return expected


def openimages_images_members() -> dict[str, bytes]:
    """Members of a mini ``OpenImages_images.zip``: train/, val/, test/ at the top."""
    members = {p: jpeg_bytes(w, h, seed=200 + k) for k, (p, _, (w, h)) in enumerate(OI_TRAIN)}
    for split, images in OI_EVAL.items():
        for k, (p, _, (w, h), _) in enumerate(images):
            members[p] = jpeg_bytes(w, h, seed=300 + k + (10 if split == "test" else 0))
    return members


def openimages_masks_members() -> dict[str, bytes]:
    """Members of a mini ``OpenImages_annotations.zip``, under one top folder ``OpenImages/``."""
    members = {}
    for images in OI_EVAL.values():
        for _, _, (w, h), masks in images:
            for k, (mask, ignore) in enumerate(masks):
                members["OpenImages/" + mask] = png_mask_bytes(w, h, (k, k, w // 2, h // 2))
                if ignore:
                    members["OpenImages/" + ignore] = png_mask_bytes(w, h, (0, 0, w, 2))
    return members


# ----------------------------------------------------------------------------- wsolevaluation metadata


def wsoleval_members(cub: dict[str, dict[str, str]] | None = None) -> dict[str, bytes]:
    """Members of a mini GitHub archive of wsolevaluation: ``wsolevaluation-<sha>/metadata/...``.

    ``cub`` replaces the CUB reference files (default: :data:`EXPECTED_CUB`).
    """
    top = f"wsolevaluation-{WSOLEVAL_COMMIT}/"
    members = {top + "README.md": b"# wsolevaluation (mini)\n"}
    for ds, splits in (("CUB", EXPECTED_CUB if cub is None else cub), ("OpenImages", _oi_reference())):
        for split, files in splits.items():
            for name, text in files.items():
                members[f"{top}metadata/{ds}/{split}/{name}"] = text.encode()
    return members


@dataclass
class MiniArchives:
    """Paths of the mini archives of both datasets, named as the real ones."""

    folder: Path
    paths: dict[str, Path] = field(default_factory=dict)

    def sources(self, base_url: str | None = None, *, checksum: bool = True) -> dict[str, Source]:
        """Source table of these archives (served under ``base_url`` or a dummy URL)."""
        base = base_url or "http://127.0.0.1:9/"
        return {n: source_for(n, p, base + p.name, checksum=checksum) for n, p in self.paths.items()}


def build_archives(folder: Path, *, cub_reference: dict[str, dict[str, str]] | None = None) -> MiniArchives:
    """Write every mini archive into ``folder``."""
    out = MiniArchives(folder)
    out.paths["cub_200_2011"] = write_tar(folder / "CUB_200_2011.tgz", cub_archive_members())
    out.paths["cubv2"] = write_tar(folder / "CUBV2.tar", cubv2_archive_members(), gz=False)
    out.paths["openimages_images"] = write_zip(folder / "OpenImages_images.zip", openimages_images_members())
    out.paths["openimages_masks"] = write_zip(
        folder / "OpenImages_annotations.zip", openimages_masks_members()
    )
    out.paths["wsoleval_metadata"] = write_tar(
        folder / f"wsolevaluation-{WSOLEVAL_COMMIT}.tar.gz", wsoleval_members(cub_reference)
    )
    return out


def read_metadata(meta_root: Path) -> dict[str, dict[str, str]]:
    """Every metadata file under ``meta_root`` as ``{split: {name: text}}``."""
    return {
        split.name: {f.name: f.read_text() for f in sorted(split.iterdir())}
        for split in sorted(meta_root.iterdir())
    }


# ----------------------------------------------------------------------------- HTTP server


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        fs = self.server.fs
        name = self.path.split("?", 1)[0].lstrip("/")
        range_header = self.headers.get("Range")
        with fs.lock:
            fail = fs.fail_status.pop(0) if fs.fail_status else None
            drop = fs.drop_once.pop(name, None)
        if fail is not None or name not in fs.files:
            status = fail if fail is not None else 404
            fs.requests.append((name, range_header, status))
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        data = fs.files[name]
        if name in fs.corrupt:
            middle = len(data) // 2
            data = data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1 :]
        start, status = 0, 200
        match = re.fullmatch(r"bytes=(\d+)-", range_header or "")
        if match and not fs.ignore_range:
            start, status = int(match.group(1)), 206
        fs.requests.append((name, range_header, status))
        body = data[start:]
        self.send_response(status)
        self.send_header("Content-Type", fs.content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes")
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.end_headers()
        if drop is not None:  # send part of the body, then hang up
            self.wfile.write(body[:drop])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fs: FileServer


class FileServer:
    """Serves ``files`` (name -> bytes) on 127.0.0.1, with switchable faults.

    Attributes:
        drop_once: name -> number of body bytes after which the next answer for it hangs up.
        corrupt: names whose bytes are served with one byte flipped.
        ignore_range: answer 200 with the whole file even to a Range request.
        fail_status: statuses answered to the next requests, one each (e.g. [503]).
        content_type: Content-Type of every file.
        requests: (name, Range header, status) of every request, in order.
    """

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = dict(files)
        self.drop_once: dict[str, int] = {}
        self.corrupt: set[str] = set()
        self.ignore_range = False
        self.fail_status: list[int] = []
        self.content_type = "application/octet-stream"
        self.requests: list[tuple[str, str | None, int]] = []
        self.lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @classmethod
    def of_paths(cls, paths: list[Path]) -> FileServer:
        return cls({p.name: p.read_bytes() for p in paths})

    @property
    def base_url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}/"

    def url(self, name: str) -> str:
        return self.base_url + name

    def __enter__(self) -> FileServer:
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.fs = self
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05})
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None
        assert self._thread is not None
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
        assert not self._thread.is_alive(), "server thread did not stop"


def closed_port_url(name: str) -> str:
    """A URL on 127.0.0.1 where nothing listens: connection refused."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/{name}"
