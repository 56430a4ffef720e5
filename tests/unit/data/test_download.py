"""Downloads against a local HTTP server: resume, restart, retries, corruption, no network."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from fcam.data.download import download, verify_file
from fcam.data.sources import Source
from fcam.errors import DownloadError
from tests.unit.data._archives import FileServer, closed_port_url, source_for

pytestmark = [pytest.mark.network, pytest.mark.timeout(60)]

PAYLOAD = np.random.default_rng(0).integers(0, 256, 50_000, dtype=np.uint8).tobytes()
NAME = "archive.tgz"


@pytest.fixture
def server():
    with FileServer({NAME: PAYLOAD}) as fs:
        yield fs


@pytest.fixture
def source(server, tmp_path) -> Source:
    good = tmp_path / "reference" / NAME
    good.parent.mkdir()
    good.write_bytes(PAYLOAD)
    return source_for("test", good, server.url(NAME))


def fetch(source: Source, dest, **kwargs):
    return download(
        source, dest, retries=kwargs.pop("retries", 3), backoff=0, timeout=5, progress=False, **kwargs
    )


def test_download_writes_verified_file_and_no_part(server, source, tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="fcam.data.download"):
        path = fetch(source, tmp_path / "downloads")
    assert f"{path}: downloaded from {server.url(NAME)} and verified" in caplog.text  # provenance
    assert path == tmp_path / "downloads" / NAME
    assert path.read_bytes() == PAYLOAD
    assert not path.with_name(NAME + ".part").exists()
    assert server.requests == [(NAME, None, 200)]


def test_dropped_connection_resumes_with_range(server, source, tmp_path, caplog):
    server.drop_once[NAME] = 12_345
    with caplog.at_level(logging.INFO, logger="fcam.data.download"):
        path = fetch(source, tmp_path)
    assert path.read_bytes() == PAYLOAD
    assert server.requests == [(NAME, None, 200), (NAME, "bytes=12345-", 206)]
    assert "resuming at byte 12345" in caplog.text
    assert "attempt 1/4 failed" in caplog.text


def test_server_ignoring_range_restarts_from_zero(server, source, tmp_path, caplog):
    server.drop_once[NAME] = 20_000
    server.ignore_range = True
    with caplog.at_level(logging.INFO, logger="fcam.data.download"):
        path = fetch(source, tmp_path)
    assert path.read_bytes() == PAYLOAD  # not the first 20 kB twice
    assert server.requests == [(NAME, None, 200), (NAME, "bytes=20000-", 200)]
    assert "restarting from byte 0" in caplog.text


def test_corrupt_bytes_raise_leave_nothing_and_a_rerun_recovers(server, source, tmp_path):
    server.corrupt.add(NAME)
    dest = tmp_path / "downloads"
    with pytest.raises(DownloadError) as info:
        fetch(source, dest)
    message = str(info.value)
    assert NAME in message
    assert f"expected sha256 {source.sha256}" in message
    corrupted = bytearray(PAYLOAD)
    corrupted[len(PAYLOAD) // 2] ^= 0xFF
    import hashlib

    assert f"got {hashlib.sha256(corrupted).hexdigest()}" in message
    assert list(dest.iterdir()) == []  # neither the final file nor a .part

    server.corrupt.clear()
    assert fetch(source, dest).read_bytes() == PAYLOAD


def test_no_network_names_url_path_and_import(tmp_path):
    source = Source(name="x", url=closed_port_url(NAME), filename=NAME, size=3, sha256="0" * 64)
    dest = tmp_path / "downloads"
    with pytest.raises(DownloadError) as info:
        fetch(source, dest, retries=2)
    message = str(info.value)
    assert source.url in message
    assert str(dest / NAME) in message
    assert "fcam data import" in message
    assert "after 3 attempt(s)" in message
    assert not (dest / NAME).exists()


def test_server_errors_are_retried(server, source, tmp_path):
    server.fail_status = [503, 500]
    assert fetch(source, tmp_path).read_bytes() == PAYLOAD
    assert [status for *_, status in server.requests] == [503, 500, 200]


def test_missing_file_is_not_retried(server, tmp_path):
    source = Source(name="x", url=server.url("nope.tgz"), filename="nope.tgz", sha256="0" * 64)
    with pytest.raises(DownloadError, match="HTTP 404"):
        fetch(source, tmp_path)
    assert len(server.requests) == 1


def test_existing_good_file_is_trusted_only_after_verification(server, source, tmp_path):
    (tmp_path / NAME).write_bytes(PAYLOAD)
    assert fetch(source, tmp_path).read_bytes() == PAYLOAD
    assert server.requests == []

    (tmp_path / NAME).write_bytes(PAYLOAD[:-1] + b"\0")  # same size, wrong bytes
    assert fetch(source, tmp_path).read_bytes() == PAYLOAD
    assert len(server.requests) == 1


def test_complete_part_from_an_earlier_run_is_verified_without_a_request(server, source, tmp_path):
    (tmp_path / (NAME + ".part")).write_bytes(PAYLOAD)
    assert fetch(source, tmp_path).read_bytes() == PAYLOAD
    assert server.requests == []
    assert not (tmp_path / (NAME + ".part")).exists()


def test_partial_part_from_an_earlier_run_is_resumed(server, source, tmp_path):
    (tmp_path / (NAME + ".part")).write_bytes(PAYLOAD[:777])
    assert fetch(source, tmp_path).read_bytes() == PAYLOAD
    assert server.requests == [(NAME, "bytes=777-", 206)]


def test_unverifiable_source_needs_explicit_override(server, tmp_path, caplog):
    source = Source(name="x", url=server.url(NAME), filename=NAME)
    with pytest.raises(DownloadError, match="--no-verify"):
        fetch(source, tmp_path)
    assert server.requests == []
    with caplog.at_level(logging.WARNING, logger="fcam.data.download"):
        path = fetch(source, tmp_path, allow_unverified=True)
    assert path.read_bytes() == PAYLOAD
    assert "WITHOUT checksum verification" in caplog.text


def test_html_page_instead_of_archive_is_refused(server, source, tmp_path):
    server.content_type = "text/html"
    with pytest.raises(DownloadError, match="HTML page"):
        fetch(source, tmp_path)
    assert len(server.requests) == 1


def test_md5_is_used_when_no_sha256_is_published(tmp_path):
    import hashlib

    path = tmp_path / "f.bin"
    path.write_bytes(b"abc")
    good = Source(
        name="x", url="http://127.0.0.1:9/f.bin", filename="f.bin", md5=hashlib.md5(b"abc").hexdigest()
    )
    assert verify_file(good, path) == hashlib.sha256(b"abc").hexdigest()
    bad = Source(name="x", url=good.url, filename="f.bin", md5="0" * 32)
    with pytest.raises(DownloadError, match=r"expected md5 0{32}, got"):
        verify_file(bad, path)
    wrong_size = Source(name="x", url=good.url, filename="f.bin", size=4, md5=good.md5)
    with pytest.raises(DownloadError, match="size 3 bytes, expected 4"):
        verify_file(wrong_size, path)
