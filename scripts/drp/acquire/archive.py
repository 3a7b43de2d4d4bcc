"""Extract downloaded archives (zip, tar, tar.gz) without letting an entry write outside its folder.

Every entry is checked before anything is written: absolute paths, ``..`` components, symbolic and hard
links, device files and FIFOs are refused, because a crafted (or corrupted) archive could otherwise
overwrite files elsewhere ("zip-slip") or plant a link that a later entry writes through. The archive is
extracted into a temporary sibling folder that is renamed onto the target only once every entry has been
written, so the target folder is either absent, the previous complete copy, or the new complete copy.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import re
import shutil
import stat
import tarfile
import tempfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath

ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz")

# Limits against decompression bombs (a 300 KB archive that becomes 300 MB, or 300 GB): the largest public
# omics archives we read are a few GB with compression ratios near 10, so these leave an order of magnitude.
MAX_TOTAL_BYTES = 64 * 2**30  # all entries together, uncompressed
MAX_FILE_BYTES = 32 * 2**30  # one entry
MAX_RATIO = 200  # uncompressed bytes per byte of archive

# What a truncated or corrupted archive raises while it is listed or read, by format.
_CORRUPT = (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile)


class ArchiveError(RuntimeError):
    pass


def archive_kind(path: str | Path) -> str:
    """'zip' or 'tar' (tar handles .tar.gz transparently), from the file name."""
    name = Path(path).name.lower()
    if name.endswith(".zip"):
        return "zip"
    if name.endswith((".tar", ".tar.gz", ".tgz")):
        return "tar"
    raise ArchiveError(f"{path}: not a supported archive (expected one of {', '.join(ARCHIVE_SUFFIXES)})")


def safe_extract(archive: str | Path, target_dir: str | Path, name: str | None = None) -> list[Path]:
    """Extract ``archive`` into ``target_dir`` after checking every entry; return the extracted files.

    ``name`` is the archive's file name when its path does not end with it (a cache entry is named by
    its checksum): it tells the format and appears in error messages. Raises ArchiveError naming the
    archive and the offending entry. On any error nothing is left under ``target_dir`` that was not
    there before.
    """
    path, target_dir = Path(archive), Path(target_dir)
    kind = archive_kind(name or path)
    # What error messages call the archive: the download's name and where the bytes are.
    archive = f"{name} ({path})" if name and name != path.name else str(path)
    target_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target_dir.name}.", suffix=".extracting", dir=target_dir.parent))
    try:
        try:
            (_extract_zip if kind == "zip" else _extract_tar)(path, archive, staging)
        except _CORRUPT as error:
            raise ArchiveError(f"{archive}: the archive is truncated or corrupt ({type(error).__name__}: {error}); "
                               f"delete it (and its cache entry) to fetch it again") from error
        _replace_dir(staging, target_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # gone already after a successful rename
    return sorted(path for path in target_dir.rglob("*") if path.is_file())


def _member_path(archive: str, name: str) -> PurePosixPath | None:
    """The entry's relative path, or None for the archive's root itself; refuses escaping names."""
    if "\x00" in name:
        raise ArchiveError(f"{archive}: entry {name!r} has a NUL byte in its name; refusing to extract")
    # Backslashes count as separators too: a Windows-made archive may use them, and '..\\x' must not slip by.
    parts = [part for part in re.split(r"[\\/]+", name) if part not in ("", ".")]
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        raise ArchiveError(f"{archive}: entry {name!r} has an absolute path; refusing to extract")
    if ".." in parts:
        raise ArchiveError(f"{archive}: entry {name!r} points outside the target folder ('..'); refusing to extract")
    return PurePosixPath(*parts) if parts else None


def _check_layout(archive: str, path: Path, entries: list[tuple[str, int, bool]]) -> None:
    """Before anything is written: sizes within the limits (a zip entry's declared size binds: zipfile reads no
    further and fails the CRC check), and no entry that is a file and the folder of another entry (``X`` and ``X/y``). ``entries``:
    (name, uncompressed bytes, is a folder)."""
    files = {}
    for name, size, is_dir in entries:
        relative = _member_path(archive, name)
        if relative is None or is_dir:
            continue
        if size > MAX_FILE_BYTES:
            raise ArchiveError(f"{archive}: entry {name!r} would take {size:,} bytes, over the limit of {MAX_FILE_BYTES:,} "
                               "for one file; refusing to extract")
        files[relative] = size
    total, packed = sum(files.values()), max(path.stat().st_size, 1)
    if total > MAX_TOTAL_BYTES or total > MAX_RATIO * packed:
        raise ArchiveError(f"{archive}: its {len(files)} files would take {total:,} bytes from {packed:,} bytes of "
                           f"archive (limits: {MAX_TOTAL_BYTES:,} bytes, {MAX_RATIO} times the archive's size); "
                           "refusing to extract a likely decompression bomb")
    for relative in files:
        for parent in relative.parents:
            if parent in files:
                raise ArchiveError(f"{archive}: {str(parent)!r} is both a file and the folder of {str(relative)!r}; "
                                   "refusing to extract")


def _extract_zip(path: Path, archive: str, staging: Path) -> None:
    with zipfile.ZipFile(path) as bundle:
        infos = bundle.infolist()
        for info in infos:  # check every entry before writing the first one
            _check_zip_entry(archive, info)
        _check_layout(archive, path, [(info.filename, info.file_size, info.is_dir()) for info in infos])
        for info in infos:
            relative = _member_path(archive, info.filename)
            if relative is None:
                continue
            destination = staging / relative
            if info.is_dir():
                destination.mkdir(parents=True, exist_ok=True)
                continue
            destination.parent.mkdir(parents=True, exist_ok=True)
            # Reading the whole entry checks its CRC-32, so a corrupted entry raises BadZipFile here; zipfile
            # stops at the declared size, so an entry that holds more fails that check too.
            with bundle.open(info) as source, open(destination, "wb") as out:
                shutil.copyfileobj(source, out, 1 << 20)


def _check_zip_entry(archive: str, info: zipfile.ZipInfo) -> None:
    _member_path(archive, info.filename)
    mode = info.external_attr >> 16  # Unix mode bits, when the archive was made on Unix
    kind = stat.S_IFMT(mode)
    if stat.S_ISLNK(mode):
        raise ArchiveError(f"{archive}: entry {info.filename!r} is a symbolic link; refusing to extract")
    if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
        raise ArchiveError(f"{archive}: entry {info.filename!r} is not a regular file or folder "
                           f"(mode {oct(mode)}); refusing to extract")


def _extract_tar(path: Path, archive: str, staging: Path) -> None:
    with tarfile.open(path) as bundle:
        members = bundle.getmembers()  # reads the whole archive: a truncated one fails here, before writing
        _check_tar_end(archive, bundle)
        for member in members:
            _check_tar_entry(archive, member)
        _check_layout(archive, path, [(member.name, member.size, member.isdir()) for member in members])
        wanted = [member for member in members if _member_path(archive, member.name) is not None]
        # The 'data' filter (Python >= 3.11.4) is a second line of defence; it also drops set-uid bits.
        options = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
        try:
            bundle.extractall(staging, members=wanted, **options)
        except getattr(tarfile, "FilterError", ()) as error:  # not corruption: say that the filter refused it
            raise ArchiveError(f"{archive}: entry {error.tarinfo.name!r} refused ({error}); "
                               f"refusing to extract") from error


def _check_tar_end(archive: str, bundle: tarfile.TarFile) -> None:
    """A tar cut off exactly between two entries lists as a shorter, valid-looking archive; only the
    missing end-of-archive marker (zero blocks) gives it away."""
    bundle.fileobj.seek(bundle.offset)
    if bundle.fileobj.read(tarfile.BLOCKSIZE) != bytes(tarfile.BLOCKSIZE):
        raise ArchiveError(f"{archive}: the archive ends without its end-of-archive marker; it is truncated "
                           f"(delete it, and its cache entry, to fetch it again)")


def _check_tar_entry(archive: str, member: tarfile.TarInfo) -> None:
    _member_path(archive, member.name)
    if member.issym() or member.islnk():
        kind = "symbolic link" if member.issym() else "hard link"
        raise ArchiveError(f"{archive}: entry {member.name!r} is a {kind} (to {member.linkname!r}); "
                           f"refusing to extract")
    if not (member.isreg() or member.isdir()):
        raise ArchiveError(f"{archive}: entry {member.name!r} is a device file or FIFO; refusing to extract")


def _replace_dir(staging: Path, target: Path) -> None:
    """Rename ``staging`` onto ``target``; an existing target is moved aside first and removed after."""
    os.chmod(staging, 0o777 & ~_umask())  # mkdtemp makes 0700; give the folder the usual permissions
    if not target.exists() and not target.is_symlink():
        os.replace(staging, target)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
    os.rmdir(old)
    os.replace(target, old)
    try:
        os.replace(staging, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.replace(old, target)  # put the previous copy back rather than leave no target at all
        raise
    if old.is_dir() and not old.is_symlink():
        shutil.rmtree(old, ignore_errors=True)
    else:
        old.unlink()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
