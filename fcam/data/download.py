"""Resumable, checksum-verified downloads of the archives in :mod:`fcam.data.sources`.

A download streams into ``<file>.part``. After a dropped connection the next attempt asks for the
rest with an HTTP ``Range`` header: a ``206`` answer is appended, a ``200`` answer (the server
ignored the range) restarts from byte 0. Connection errors, timeouts and 5xx answers are retried
with exponential back-off. The size and checksum are checked *before* the ``.part`` file is
renamed to its final name, so a file under its final name is always complete and verified; a
corrupt download is deleted so that a rerun starts clean. An existing final file is re-verified
before it is trusted.

Archives fetched on another machine enter through :func:`import_archives` (``fcam data import``),
which applies the same checks.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import shutil
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Final

from tqdm import tqdm

from fcam import __version__
from fcam.data.sources import Source, dataset_sources, downloads_dir
from fcam.errors import DataError, DownloadError
from fcam.io import atomic_path

__all__ = ["download", "download_dataset", "import_archives", "verify_file"]

logger = logging.getLogger(__name__)

#: HTTP statuses worth retrying: timeouts, rate limits and server-side failures.
_RETRYABLE_STATUS: Final = frozenset({408, 429, 500, 502, 503, 504})
_CHUNK: Final = 1 << 20
_MAX_SLEEP_S: Final = 60.0


class _IncompleteError(OSError):
    """The connection ended before the announced number of bytes arrived."""


def _digest(path: Path, algorithm: str) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, algorithm).hexdigest()


def verify_file(source: Source, path: Path) -> str:
    """Check the size and checksum of ``path`` against ``source``.

    The sha256 is checked where published, else the md5; a source with neither is only checked
    for its size (when known).

    Args:
        source: the expected file.
        path: the file to check.

    Returns:
        The sha256 of ``path`` (hex), for logging.

    Raises:
        DownloadError: the size or checksum differs; the message names the file, the expected
            and the actual values.
    """
    actual_size = path.stat().st_size
    if source.size is not None and actual_size != source.size:
        raise DownloadError(
            f"{path}: size {actual_size} bytes, expected {source.size} bytes for {source.filename} "
            f"({source.url})"
        )
    sha256 = _digest(path, "sha256")
    if source.sha256 is not None:
        expected, actual, algorithm = source.sha256.lower(), sha256, "sha256"
    elif source.md5 is not None:
        expected, actual, algorithm = source.md5.lower(), _digest(path, "md5"), "md5"
    else:
        return sha256
    if actual != expected:
        raise DownloadError(
            f"{path}: checksum mismatch for {source.filename}: expected {algorithm} {expected}, "
            f"got {actual} ({source.url})"
        )
    return sha256


def _unverifiable_error(source: Source, final: Path) -> DownloadError:
    return DownloadError(
        f"{source.filename}: no checksum is published for this file ({source.url}), so fcam cannot "
        f"check it; set download.<ds>.allow_unverified: true in the parameter file (or pass --no-verify "
        f"to fcam data import) to accept it unverified (its sha256 is logged), or place a copy you "
        f"trust at {final}"
    )


def _offline_error(
    source: Source, final: Path, part: Path, attempts: int, err: BaseException
) -> DownloadError:
    kept = f" The partial download {part} is kept; a rerun resumes it." if part.exists() else ""
    return DownloadError(
        f"{source.filename}: download failed after {attempts} attempt(s) from {source.url} "
        f"({type(err).__name__}: {err}). If this machine has no network, download the file "
        f"elsewhere and put it at {final}, or run `fcam data import <ds> /path/to/{source.filename}` "
        f"to check it and put it there.{kept}"
    )


def _range_start(content_range: str | None) -> int | None:
    """First byte of a ``Content-Range: bytes a-b/n`` header, or ``None`` if malformed."""
    if not content_range or not content_range.startswith("bytes "):
        return None
    first = content_range[len("bytes ") :].split("-", 1)[0]
    return int(first) if first.isdigit() else None


def _fetch_once(source: Source, part: Path, *, timeout: float, progress: bool) -> None:
    """One HTTP request: append to (206) or rewrite (200) ``part``.

    Raises:
        urllib.error.HTTPError, urllib.error.URLError, OSError, http.client.HTTPException: the
            request or the transfer failed (the caller decides whether to retry).
        DownloadError: the answer can never be right (an HTML page instead of the archive).
    """
    offset = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": f"fcam/{__version__}"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    request = urllib.request.Request(source.url, headers=headers)
    with urllib.request.urlopen(request, timeout=timeout) as response:
        if response.status == 206:
            start = _range_start(response.headers.get("Content-Range"))
            if start != offset:  # appending another range would corrupt the file: start over
                part.unlink(missing_ok=True)
                raise _IncompleteError(f"asked for bytes from {offset}, got a range starting at {start}")
            mode = "ab"
            logger.info("%s: resuming at byte %d", source.filename, offset)
        else:
            if offset:
                logger.info("%s: server ignored the Range request; restarting from byte 0", source.filename)
            mode, offset = "wb", 0
        if response.headers.get_content_type() == "text/html" and not source.filename.endswith(".html"):
            raise DownloadError(
                f"{source.filename}: {source.url} answered with an HTML page instead of the file "
                f"(a sign-in, quota or virus-scan page?); download it in a browser and run "
                f"`fcam data import <ds> /path/to/{source.filename}`"
            )
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length is not None and length.isdigit() else source.size
        with (
            part.open(mode) as f,
            tqdm(
                total=total,
                initial=offset,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=source.filename,
                disable=not progress,
            ) as bar,
        ):
            while chunk := response.read(_CHUNK):
                f.write(chunk)
                bar.update(len(chunk))
    received = part.stat().st_size
    # http.client returns b"" rather than raising when a connection drops mid-body.
    if total is not None and received < total:
        raise _IncompleteError(f"connection closed after {received} of {total} bytes")


def download(
    source: Source,
    dest_dir: Path,
    *,
    retries: int = 5,
    backoff: float = 1.0,
    timeout: float = 60.0,
    progress: bool = True,
    allow_unverified: bool = False,
) -> Path:
    """Download ``source`` into ``dest_dir``, resuming and retrying, and verify it.

    Args:
        source: what to fetch.
        dest_dir: folder of the final file ``dest_dir / source.filename`` (created).
        retries: further attempts after a failed one (connection error, timeout, HTTP 5xx/429/408,
            connection dropped mid-file); the total number of attempts is ``retries + 1``.
        backoff: seconds slept before the first retry; doubled before each next one (capped at 60).
        timeout: socket timeout in seconds, per blocking operation.
        progress: show a tqdm progress bar.
        allow_unverified: accept a source that has no published checksum (``--no-verify``); its
            sha256 is logged so that it can be pinned in :mod:`fcam.data.sources`.

    Returns:
        The path of the verified file.

    Raises:
        DownloadError: no checksum is published and ``allow_unverified`` is false; the server
            answered a non-retryable HTTP error or an HTML page; the bytes do not match the
            checksum (the partial file is deleted); or every attempt failed (the message names
            the URL and the exact path to put the file by hand).
    """
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    final = dest_dir / source.filename
    part = final.with_name(final.name + ".part")
    if not source.verifiable and not allow_unverified:
        raise _unverifiable_error(source, final)
    if final.exists():
        try:
            verify_file(source, final)
        except DownloadError as exc:
            logger.warning("%s; deleting it and downloading again", exc)
            final.unlink()
        else:
            logger.info("%s: already downloaded and verified", final)
            return final

    attempts = retries + 1
    for attempt in range(attempts):
        if source.size is not None and part.exists() and part.stat().st_size >= source.size:
            if part.stat().st_size == source.size:
                break  # a previous run got every byte; only the check is left
            part.unlink()
        try:
            _fetch_once(source, part, timeout=timeout, progress=progress)
            break
        except urllib.error.HTTPError as exc:
            if exc.code == 416:  # the .part is no prefix of the file any more: start over
                part.unlink(missing_ok=True)
            elif exc.code not in _RETRYABLE_STATUS:
                raise DownloadError(
                    f"{source.filename}: {source.url} answered HTTP {exc.code} {exc.reason}"
                ) from exc
            error: BaseException = exc
        except (OSError, http.client.HTTPException) as exc:  # URLError, timeouts, resets, IncompleteRead
            error = exc
        if attempt + 1 == attempts:
            raise _offline_error(source, final, part, attempts, error) from error
        delay = min(backoff * 2**attempt, _MAX_SLEEP_S)
        logger.warning(
            "%s: attempt %d/%d failed (%s: %s); retrying in %.1f s",
            source.filename,
            attempt + 1,
            attempts,
            type(error).__name__,
            error,
            delay,
        )
        time.sleep(delay)

    try:
        sha256 = verify_file(source, part)
    except DownloadError as exc:
        part.unlink(missing_ok=True)
        raise DownloadError(f"{exc}; the corrupt download was deleted, rerun to fetch it again") from exc
    if not source.verifiable:
        logger.warning(
            "%s: accepted WITHOUT checksum verification (none is published): %d bytes, sha256 %s",
            source.filename,
            part.stat().st_size,
            sha256,
        )
    part.replace(final)
    logger.info("%s: downloaded from %s and verified", final, source.url)
    return final


def download_dataset(
    ds: str,
    data_root: Path,
    *,
    sources: Mapping[str, Source] | None = None,
    allow_unverified: bool = False,
    retries: int = 5,
    backoff: float = 1.0,
    timeout: float = 60.0,
    progress: bool = True,
) -> list[Path]:
    """Download every archive of dataset ``ds`` into ``<data_root>/downloads``.

    Args:
        ds: ``cub`` or ``openimages``.
        data_root: the data root (see :func:`fcam.data.sources.resolve_data_root`).
        sources: the source table (default :data:`fcam.data.sources.SOURCES`).
        allow_unverified, retries, backoff, timeout, progress: as in :func:`download`.

    Returns:
        The paths of the verified archives, in the order of the dataset's sources.

    Raises:
        ConfigError: unknown dataset.
        DownloadError: as in :func:`download`. Unverifiable sources are refused before anything
            is fetched unless ``allow_unverified``.
    """
    todo = dataset_sources(ds, sources)
    dest = downloads_dir(data_root, ds)
    if not allow_unverified:
        for source in todo:
            if not source.verifiable:
                raise _unverifiable_error(source, dest / source.filename)
    return [
        download(
            source,
            dest,
            retries=retries,
            backoff=backoff,
            timeout=timeout,
            progress=progress,
            allow_unverified=allow_unverified,
        )
        for source in todo
    ]


def _match_source(path: Path, candidates: Sequence[Source]) -> Source:
    """The source ``path`` is a copy of: by file name, else by a published checksum."""
    for source in candidates:
        if path.name == source.filename:
            return source
    size = path.stat().st_size
    sha256: str | None = None
    for source in candidates:
        if source.sha256 is None or (source.size is not None and source.size != size):
            continue
        sha256 = sha256 or _digest(path, "sha256")
        if sha256 == source.sha256.lower():
            return source
    raise DataError(
        f"{path}: cannot tell which archive this is: its name is none of "
        f"{[s.filename for s in candidates]} and its checksum matches no published one"
    )


def import_archives(
    ds: str,
    archives: Sequence[Path],
    data_root: Path,
    *,
    sources: Mapping[str, Source] | None = None,
    allow_unverified: bool = False,
) -> list[Path]:
    """Check archives downloaded elsewhere and place them in ``<data_root>/downloads``.

    Each archive is recognised by its file name (or, if renamed, by its checksum), verified, then
    copied next to its final place and renamed into place; a failed check copies nothing.

    Args:
        ds: ``cub`` or ``openimages``.
        archives: paths of the downloaded files.
        data_root: the data root.
        sources: the source table (default :data:`fcam.data.sources.SOURCES`).
        allow_unverified: accept archives whose source has no published checksum.

    Returns:
        The final paths, one per archive.

    Raises:
        DataError: a path is missing or is no archive of ``ds``.
        DownloadError: size or checksum mismatch, or an unverifiable archive without
            ``allow_unverified``.
    """
    candidates = dataset_sources(ds, sources)
    dest_dir = downloads_dir(data_root, ds)
    placed = []
    for archive in map(Path, archives):
        if not archive.is_file():
            raise DataError(f"{archive}: no such file")
        source = _match_source(archive, candidates)
        final = dest_dir / source.filename
        if not source.verifiable and not allow_unverified:
            raise _unverifiable_error(source, final)
        sha256 = verify_file(source, archive)
        if not (final.exists() and final.resolve() == archive.resolve()):
            with atomic_path(final) as tmp:
                shutil.copyfile(archive, tmp)
        logger.info(
            "%s -> %s (%s, sha256 %s)",
            archive,
            final,
            "verified" if source.verifiable else "UNVERIFIED: no published checksum",
            sha256,
        )
        placed.append(final)
    return placed
