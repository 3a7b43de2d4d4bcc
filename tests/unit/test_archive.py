"""drp.acquire.archive.safe_extract: zip / tar / tar.gz archives built by the tests, good and malicious. A refused
or broken archive leaves the target folder absent (or as it was) and nothing outside it."""

from __future__ import annotations

import io
import random
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest

from drp.acquire.archive import ArchiveError, safe_extract

FILES = {"GDSC2/GDSC2.csv": b"cell_line_name,LN_IC50\nA,1.5\n", "GDSC2/drug_fingerprints/map.csv": b"id,bits\n",
         "README.txt": b"harmonized data\n"}


def make_zip(path: Path, entries: dict[str, bytes], symlinks: dict[str, str] | None = None) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
        for name, data in entries.items():
            bundle.writestr(name, data)
        for name, target in (symlinks or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16  # how Info-ZIP stores a symbolic link
            bundle.writestr(info, target)
    return path


def make_tar(path: Path, entries: dict[str, bytes], specials: list[tarfile.TarInfo] = ()) -> Path:
    with tarfile.open(path, "w:gz" if path.name.endswith(".gz") else "w") as bundle:
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            bundle.addfile(info, io.BytesIO(data))
        for info in specials:
            bundle.addfile(info)
    return path


def special(name: str, kind: bytes, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, linkname
    return info


def extracted(directory: Path) -> dict[str, bytes]:
    return {path.relative_to(directory).as_posix(): path.read_bytes()
            for path in directory.rglob("*") if path.is_file()}


def assert_untouched(tmp_path: Path, before: set[str]):
    """Nothing new next to the archive: no target, no staging folder, nothing that escaped."""
    assert {path.name for path in tmp_path.iterdir()} == before


@pytest.mark.parametrize("name", ["data.zip", "data.tar", "data.tar.gz", "data.tgz"])
def test_extracts_every_format(tmp_path, name):
    archive = (make_zip if name.endswith(".zip") else make_tar)(tmp_path / name, FILES)
    files = safe_extract(archive, tmp_path / "out")
    assert extracted(tmp_path / "out") == FILES
    assert files == sorted(tmp_path / "out" / name for name in FILES)
    assert {path.name for path in tmp_path.iterdir()} == {name, "out"}  # no staging folder left


def test_dot_slash_names_and_folder_entries_are_fine(tmp_path):
    folders = [special("./x", tarfile.DIRTYPE), special(".", tarfile.DIRTYPE)]
    archive = make_tar(tmp_path / "a.tar", {"./x/y.txt": b"y"}, folders)
    safe_extract(archive, tmp_path / "out")
    assert extracted(tmp_path / "out") == {"x/y.txt": b"y"}


@pytest.mark.parametrize("evil", ["../evil.txt", "ok/../../evil.txt", "/tmp/evil.txt", "..\\evil.txt", "C:/evil.txt"])
def test_zip_slip_is_refused(tmp_path, evil):
    archive = make_zip(tmp_path / "slip.zip", {"fine.txt": b"fine", evil: b"pwned"})
    with pytest.raises(ArchiveError) as info:
        safe_extract(archive, tmp_path / "sub" / "out")
    assert str(archive) in str(info.value) and repr(evil) in str(info.value)
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "sub" / "out").exists()
    assert list((tmp_path / "sub").iterdir()) == []  # not half-written: no target, no staging folder


@pytest.mark.parametrize("evil", ["../evil.txt", "/tmp/drp-evil.txt"])
def test_tar_escape_is_refused(tmp_path, evil):
    archive = make_tar(tmp_path / "slip.tar.gz", {"fine.txt": b"fine", evil: b"pwned"})
    with pytest.raises(ArchiveError, match="refusing to extract"):
        safe_extract(archive, tmp_path / "out")
    assert not Path("/tmp/drp-evil.txt").exists()
    assert_untouched(tmp_path, {"slip.tar.gz"})


def test_symlink_in_a_tar_is_refused(tmp_path):
    # The classic two-step: a link to a folder outside, then a file written "into" the link.
    outside = tmp_path / "outside"
    outside.mkdir()
    archive = make_tar(tmp_path / "link.tar", {}, [special("data", tarfile.SYMTYPE, str(outside))])
    with tarfile.open(archive, "a") as bundle:
        info = tarfile.TarInfo("data/pwned.txt")
        info.size = 5
        bundle.addfile(info, io.BytesIO(b"pwned"))
    with pytest.raises(ArchiveError) as info:
        safe_extract(archive, tmp_path / "out")
    assert "'data' is a symbolic link" in str(info.value) and str(archive) in str(info.value)
    assert list(outside.iterdir()) == []
    assert_untouched(tmp_path, {"link.tar", "outside"})


def test_internal_symlink_in_a_tar_is_refused_too(tmp_path):
    archive = make_tar(tmp_path / "link.tar.gz", {"a.txt": b"a"}, [special("b.txt", tarfile.SYMTYPE, "a.txt")])
    with pytest.raises(ArchiveError, match="symbolic link"):
        safe_extract(archive, tmp_path / "out")
    assert_untouched(tmp_path, {"link.tar.gz"})


def test_hard_link_in_a_tar_is_refused(tmp_path):
    archive = make_tar(tmp_path / "hard.tar", {"a.txt": b"a"}, [special("b.txt", tarfile.LNKTYPE, "/etc/passwd")])
    with pytest.raises(ArchiveError, match="'b.txt' is a hard link"):
        safe_extract(archive, tmp_path / "out")
    assert_untouched(tmp_path, {"hard.tar"})


@pytest.mark.parametrize("kind", [tarfile.CHRTYPE, tarfile.BLKTYPE, tarfile.FIFOTYPE])
def test_device_files_and_fifos_are_refused(tmp_path, kind):
    archive = make_tar(tmp_path / "dev.tar", {"a.txt": b"a"}, [special("dev", kind)])
    with pytest.raises(ArchiveError, match="device file or FIFO"):
        safe_extract(archive, tmp_path / "out")
    assert_untouched(tmp_path, {"dev.tar"})


def test_symlink_in_a_zip_is_refused(tmp_path):
    archive = make_zip(tmp_path / "link.zip", {"a.txt": b"a"}, symlinks={"passwd": "/etc/passwd"})
    with pytest.raises(ArchiveError, match="'passwd' is a symbolic link"):
        safe_extract(archive, tmp_path / "out")
    assert_untouched(tmp_path, {"link.zip"})


def _big_entries() -> dict[str, bytes]:
    rng = random.Random(3)  # incompressible, so that cutting the archive cuts into the data
    return {"first.csv": rng.randbytes(200_000), "second.csv": rng.randbytes(200_000)}


@pytest.mark.parametrize("name", ["cut.tar.gz", "cut.tar", "cut.zip"])
def test_truncated_archive_names_the_file(tmp_path, name):
    archive = (make_zip if name.endswith(".zip") else make_tar)(tmp_path / name, _big_entries())
    archive.write_bytes(archive.read_bytes()[:300_000])  # into the second entry's data
    with pytest.raises(ArchiveError) as info:
        safe_extract(archive, tmp_path / "out")
    assert str(archive) in str(info.value) and "truncated" in str(info.value)
    assert_untouched(tmp_path, {name})


def test_tar_cut_between_two_entries_is_caught(tmp_path):
    # Cut exactly after the first entry: tarfile itself lists a valid-looking, shorter archive.
    archive = make_tar(tmp_path / "cut.tar", _big_entries())
    first_end = 512 + 200_000 + (-200_000 % 512)
    archive.write_bytes(archive.read_bytes()[:first_end])
    with pytest.raises(ArchiveError, match="end-of-archive marker"):
        safe_extract(archive, tmp_path / "out")
    assert_untouched(tmp_path, {"cut.tar"})


def test_corrupt_zip_entry_leaves_no_half_written_target(tmp_path):
    archive = make_zip(tmp_path / "bad.zip", {"a.txt": b"a" * 1000, "b.bin": random.Random(1).randbytes(50_000)})
    with zipfile.ZipFile(archive) as bundle:
        offset = bundle.getinfo("b.bin").header_offset + 30 + len("b.bin") + 100
    raw = bytearray(archive.read_bytes())
    raw[offset] ^= 0xFF  # a flipped byte inside the second entry's compressed data
    archive.write_bytes(bytes(raw))
    with pytest.raises(ArchiveError, match="truncated or corrupt"):
        safe_extract(archive, tmp_path / "out")
    assert_untouched(tmp_path, {"bad.zip"})  # a.txt was written, but only in the staging folder


def test_existing_target_is_replaced_whole_or_kept(tmp_path):
    target = tmp_path / "out"
    target.mkdir()
    (target / "old.txt").write_text("old")
    safe_extract(make_zip(tmp_path / "new.zip", {"new.txt": b"new"}), target)
    assert extracted(target) == {"new.txt": b"new"}  # no stale file from the previous copy

    bad = make_zip(tmp_path / "bad.zip", {"ok.txt": b"ok", "../evil": b"x"})
    with pytest.raises(ArchiveError):
        safe_extract(bad, target)
    assert extracted(target) == {"new.txt": b"new"}  # the previous complete copy is still there
    assert {path.name for path in tmp_path.iterdir()} == {"new.zip", "bad.zip", "out"}


def test_unsupported_archive_type(tmp_path):
    (tmp_path / "data.rar").write_bytes(b"Rar!")
    with pytest.raises(ArchiveError, match="data.rar: not a supported archive"):
        safe_extract(tmp_path / "data.rar", tmp_path / "out")


@pytest.mark.parametrize("name", ["bomb.zip", "bomb.tar.gz"])
def test_a_decompression_bomb_is_refused_before_writing(tmp_path, name):
    """SYNTHETIC: 40 MB of zeros pack into ~40 KB (ratio ~1000, over the limit of 200)."""
    maker = make_zip if name.endswith(".zip") else make_tar
    archive = maker(tmp_path / name, {"data/zeros.bin": bytes(40 * 2**20)})
    before = {p.name for p in tmp_path.iterdir()}
    with pytest.raises(ArchiveError, match=r"would take 41,943,040 bytes from .* likely decompression bomb"):
        safe_extract(archive, tmp_path / "out")
    assert_untouched(tmp_path, before)


def test_a_zip_entry_larger_than_declared_is_refused(tmp_path, monkeypatch):
    """SYNTHETIC: a zip whose entry declares fewer bytes than it holds: the size limits read the declared size,
    and extraction stops there and fails (nothing larger than declared is written)."""
    archive = make_zip(tmp_path / "liar.zip", {"a.txt": b"x" * 5000})
    original = zipfile.ZipFile.infolist

    def lying(self):
        infos = original(self)
        for info in infos:
            info.file_size = 10
        return infos

    monkeypatch.setattr(zipfile.ZipFile, "infolist", lying)
    with pytest.raises(ArchiveError, match=r"truncated or corrupt \(BadZipFile: Bad CRC-32 for file 'a.txt'\)"):
        safe_extract(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name", ["clash.zip", "clash.tar"])
def test_a_file_that_is_also_a_folder_is_refused(tmp_path, name):
    """SYNTHETIC: entries 'X' and 'X/y' gave a raw FileExistsError."""
    maker = make_zip if name.endswith(".zip") else make_tar
    archive = maker(tmp_path / name, {"X": b"file", "X/y": b"inner"})
    with pytest.raises(ArchiveError, match=r"'X' is both a file and the folder of 'X/y'"):
        safe_extract(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()
