"""Safe extraction: traversal, absolute paths, links out of the target and device files are refused."""

from __future__ import annotations

import io
import stat
import tarfile
import zipfile

import pytest

from fcam.data.extract import extract_archive
from fcam.errors import DataError
from tests.unit.data._archives import write_tar, write_zip

GOOD = {"top/a.txt": b"alpha", "top/sub/b.bin": bytes(range(256)), "c.txt": b""}


def _tar_with(path, *infos: tuple[tarfile.TarInfo, bytes | None]):
    with tarfile.open(path, "w:gz") as tar:
        for info, data in infos:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _info(name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    return info


@pytest.mark.parametrize("fmt", ["tgz", "tar", "zip"])
def test_good_archive_is_extracted_exactly(tmp_path, fmt):
    if fmt == "zip":
        archive = write_zip(tmp_path / "a.zip", GOOD)
    else:
        archive = write_tar(tmp_path / f"a.{fmt}", GOOD, gz=fmt == "tgz")
    dest = extract_archive(archive, tmp_path / "out", progress=False)
    files = {p.relative_to(dest).as_posix(): p.read_bytes() for p in dest.rglob("*") if p.is_file()}
    assert files == GOOD


def test_inside_links_are_kept(tmp_path):
    archive = _tar_with(
        tmp_path / "links.tgz",
        (_info("d/real.txt"), b"data"),
        (_info("d/sym.txt", tarfile.SYMTYPE, "real.txt"), None),
        (_info("e/up.txt", tarfile.SYMTYPE, "../d/real.txt"), None),
        (_info("hard.txt", tarfile.LNKTYPE, "d/real.txt"), None),
    )
    dest = extract_archive(archive, tmp_path / "out", progress=False)
    assert (dest / "d" / "sym.txt").is_symlink()
    assert (dest / "e" / "up.txt").read_bytes() == b"data"
    assert (dest / "hard.txt").read_bytes() == b"data"


@pytest.mark.parametrize(
    ("member", "reason"),
    [
        (_info("../evil.txt"), "'..' path component"),
        (_info("ok/../../evil.txt"), "'..' path component"),
        (_info("/tmp/fcam-evil.txt"), "absolute path"),
        (_info("link", tarfile.SYMTYPE, "../../etc/passwd"), "symbolic link to '../../etc/passwd' outside"),
        (_info("deep/link", tarfile.SYMTYPE, "/etc/passwd"), "symbolic link to '/etc/passwd' outside"),
        (_info("hard", tarfile.LNKTYPE, "../outside.txt"), "hard link to '../outside.txt' outside"),
        (_info("dev", tarfile.CHRTYPE), "device, FIFO or other special file"),
        (_info("blk", tarfile.BLKTYPE), "device, FIFO or other special file"),
        (_info("fifo", tarfile.FIFOTYPE), "device, FIFO or other special file"),
    ],
)
def test_unsafe_tar_member_is_refused_naming_archive_and_member(tmp_path, member, reason):
    data = b"x" if member.type == tarfile.REGTYPE else None
    archive = _tar_with(tmp_path / "bad.tgz", (_info("fine.txt"), b"fine"), (member, data))
    dest = tmp_path / "work" / "out"
    dest.parent.mkdir()
    with pytest.raises(DataError) as info:
        extract_archive(archive, dest, progress=False)
    message = str(info.value)
    assert str(archive) in message
    assert repr(member.name) in message
    assert reason in message
    assert not dest.exists()
    assert list(dest.parent.iterdir()) == []  # no temporary folder left either
    assert not (tmp_path / "evil.txt").exists()


def test_refused_archive_leaves_existing_target_untouched(tmp_path):
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "old.txt").write_text("old")
    archive = _tar_with(tmp_path / "bad.tgz", (_info("new.txt"), b"new"), (_info("../evil"), b"x"))
    with pytest.raises(DataError):
        extract_archive(archive, dest, progress=False)
    assert [p.name for p in dest.iterdir()] == ["old.txt"]


@pytest.mark.parametrize(
    ("name", "reason"),
    [("../evil.txt", "'..' path component"), ("/abs/evil.txt", "absolute path"), ("..\\evil.txt", "'..'")],
)
def test_unsafe_zip_member_is_refused(tmp_path, name, reason):
    archive = write_zip(tmp_path / "bad.zip", {"fine.txt": b"ok", name: b"x"})
    with pytest.raises(DataError, match=f"bad.zip: refusing unsafe member .*{reason}"):
        extract_archive(archive, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


def test_zip_symlink_out_is_refused(tmp_path):
    archive = tmp_path / "link.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        info = zipfile.ZipInfo("escape")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "../../etc/passwd")
    with pytest.raises(DataError, match=r"'escape': symbolic link to '\.\./\.\./etc/passwd' outside"):
        extract_archive(archive, tmp_path / "out", progress=False)


def test_truncated_and_non_archives_are_data_errors(tmp_path):
    full = write_tar(tmp_path / "full.tgz", {f"f{i}.bin": bytes(range(256)) * 64 for i in range(20)})
    truncated = tmp_path / "truncated.tgz"
    truncated.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    with pytest.raises(DataError, match=r"truncated\.tgz: corrupt or truncated archive"):
        extract_archive(truncated, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()

    html = tmp_path / "page.zip"
    html.write_text("<html>quota exceeded</html>")
    with pytest.raises(DataError, match=r"page\.zip: not a tar or zip archive"):
        extract_archive(html, tmp_path / "out", progress=False)
    with pytest.raises(DataError, match="archive not found"):
        extract_archive(tmp_path / "absent.tgz", tmp_path / "out", progress=False)
