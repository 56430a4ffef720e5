"""Safe extraction of ``.tgz``/``.tar``/``.zip`` archives.

Archives come from the network, so every member is checked before it is written: absolute
paths, ``..`` components, symbolic or hard links that point outside the target, and device or
FIFO files are refused with a :class:`~fcam.errors.DataError` naming the archive and the member.
Everything is extracted into a temporary folder beside the target, which is renamed into place
only when the whole archive went through; a refused, truncated or corrupt archive leaves the
target as it was.
"""

from __future__ import annotations

import gzip
import logging
import posixpath
import re
import stat
import tarfile
import zipfile
import zlib
from pathlib import Path
from typing import Final

from tqdm import tqdm

from fcam.errors import DataError
from fcam.io import atomic_dir

__all__ = ["extract_archive"]

logger = logging.getLogger(__name__)

#: Sentinel root for resolving link targets as strings, without touching the file system.
_ROOT: Final = "__root__"
_DRIVE: Final = re.compile(r"^[A-Za-z]:")


def _unsafe(archive: Path, name: str, reason: str) -> DataError:
    return DataError(f"{archive}: refusing unsafe member {name!r}: {reason}")


def _check_name(archive: Path, name: str) -> None:
    """Refuse absolute names, drive letters, NUL bytes and ``..`` components."""
    normalised = name.replace("\\", "/")  # a Windows separator must not smuggle in a "..\\"
    if "\x00" in name:
        raise _unsafe(archive, name, "NUL byte in the name")
    if normalised.startswith("/") or _DRIVE.match(normalised):
        raise _unsafe(archive, name, "absolute path")
    if ".." in normalised.split("/"):
        raise _unsafe(archive, name, "'..' path component")


def _inside(link_from: str, target: str) -> bool:
    """Whether ``target``, relative to folder ``link_from`` of the archive, stays inside it."""
    if target.startswith("/") or _DRIVE.match(target):
        return False
    resolved = posixpath.normpath(posixpath.join(_ROOT, link_from, target.replace("\\", "/")))
    return resolved == _ROOT or resolved.startswith(_ROOT + "/")


def _check_tar_member(archive: Path, member: tarfile.TarInfo) -> None:
    _check_name(archive, member.name)
    if member.issym():
        if not _inside(posixpath.dirname(member.name), member.linkname):
            raise _unsafe(archive, member.name, f"symbolic link to {member.linkname!r} outside the target")
    elif member.islnk():
        if not _inside("", member.linkname):
            raise _unsafe(archive, member.name, f"hard link to {member.linkname!r} outside the target")
    elif not (member.isfile() or member.isdir()):
        raise _unsafe(archive, member.name, "device, FIFO or other special file")


def _extract_tar(archive: Path, dest: Path, progress: bool) -> int:
    count = 0
    with tarfile.open(archive, "r:*") as tar:
        for member in tqdm(tar, desc=f"extract {archive.name}", unit=" files", disable=not progress):
            _check_tar_member(archive, member)
            # filter="data" (PEP 706) re-checks links against the real file system and drops
            # set-uid bits and foreign owners: a second line of defence.
            tar.extract(member, dest, filter="data")
            count += 1
    return count


def _extract_zip(archive: Path, dest: Path, progress: bool) -> int:
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        for info in tqdm(infos, desc=f"extract {archive.name}", unit=" files", disable=not progress):
            _check_name(archive, info.filename)
            mode = info.external_attr >> 16  # Unix mode, when the archiver recorded one
            if stat.S_ISLNK(mode):
                target = zf.read(info).decode("utf-8", errors="replace")
                if not _inside(posixpath.dirname(info.filename.rstrip("/")), target):
                    raise _unsafe(archive, info.filename, f"symbolic link to {target!r} outside the target")
                link = dest / info.filename
                link.parent.mkdir(parents=True, exist_ok=True)
                link.symlink_to(target)  # zipfile would write the target text as a plain file
            elif stat.S_IFMT(mode) not in (0, stat.S_IFREG, stat.S_IFDIR):
                raise _unsafe(archive, info.filename, "device, FIFO or other special file")
            else:
                zf.extract(info, dest)
        return len(infos)


def extract_archive(archive: Path, dest: Path, *, progress: bool = True) -> Path:
    """Extract a tar (optionally gzip/bz2/xz-compressed) or zip archive safely.

    The archive's members become the contents of ``dest``. The format is told from the bytes,
    not the file name.

    Args:
        archive: the ``.tgz``/``.tar``/``.zip`` file.
        dest: target folder; created, or replaced as a whole once extraction succeeded.
        progress: show a tqdm progress bar over the members.

    Returns:
        ``dest``.

    Raises:
        DataError: the archive is missing, is no tar/zip archive, is truncated or corrupt, or has
            an unsafe member (absolute path, ``..``, link out of ``dest``, device file); the
            message names the archive and the member. ``dest`` is left untouched.
    """
    archive, dest = Path(archive), Path(dest)
    if not archive.is_file():
        raise DataError(f"{archive}: archive not found")
    is_tar = tarfile.is_tarfile(archive)
    if not is_tar and not zipfile.is_zipfile(archive):
        raise DataError(f"{archive}: not a tar or zip archive (truncated, corrupt, or an HTML page?)")
    try:
        with atomic_dir(dest) as tmp:
            count = _extract_tar(archive, tmp, progress) if is_tar else _extract_zip(archive, tmp, progress)
    except tarfile.FilterError as exc:  # caught by the checks above first; kept for defence in depth
        raise _unsafe(archive, exc.tarinfo.name, str(exc)) from exc
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise DataError(f"{archive}: corrupt or truncated archive ({type(exc).__name__}: {exc})") from exc
    logger.info("%s: extracted %d members into %s", archive, count, dest)
    return dest
