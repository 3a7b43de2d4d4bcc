"""drp.acquire.download against a local server (``fault_server`` in tests/conftest.py) that drops connections,
answers 503/429/202/404, stalls, ignores Range or sends a wrong range: every download either ends with the
verified file under its final name, or fails with a clear error and leaves nothing that could be mistaken
for it (a resumable ``.part`` only)."""

from __future__ import annotations

import hashlib
import random
import threading
import time
from pathlib import Path

import pytest

from drp.acquire.download import ChecksumError, DownloadError, default_cache_dir, download

PATH = "/data/expression.csv"
FAST = {"timeout": 2, "retries": 3, "backoff": 0.01, "progress": False}


def payload(size: int = 3 * 2**20 + 12345, seed: int = 0) -> bytes:
    """Random bytes: a resume at a wrong offset cannot go unnoticed, as it could with a repeating pattern."""
    return random.Random(seed).randbytes(size)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def data(fault_server):
    content = payload()
    fault_server.serve(PATH, content)
    return content


@pytest.fixture
def out(tmp_path):
    directory = tmp_path / "out"
    directory.mkdir()
    return directory


def ranges(server, path=PATH):
    return [(request.headers.get("Range"), request.status) for request in server.requests_to(path)]


def names(directory):
    return sorted(path.name for path in directory.iterdir())


# --- resume -------------------------------------------------------------------------------------------------


def test_dropped_connection_resumes_with_range(fault_server, data, out):
    fault_server.drop(PATH, after=700_000)
    entry = download(fault_server.url(PATH), out / "expression.csv", sha256=sha256(data), **FAST)
    assert (out / "expression.csv").read_bytes() == data
    assert ranges(fault_server) == [(None, 200), ("bytes=700000-", 206)]
    assert fault_server.requests_to(PATH)[1].sent == len(data) - 700_000  # only the rest was sent again
    assert entry["resumed"] is True and entry["attempts"] == 2 and entry["bytes"] == len(data)
    assert entry["sha256"] == sha256(data) and entry["md5"] == hashlib.md5(data).hexdigest()
    assert names(out) == ["expression.csv"]


def test_partial_download_is_kept_between_runs_and_resumed(fault_server, data, out):
    fault_server.drop(PATH, after=1_000_000)
    with pytest.raises(DownloadError) as info:
        download(fault_server.url(PATH), out / "expression.csv", sha256=sha256(data), **{**FAST, "retries": 0})
    assert fault_server.url(PATH) in str(info.value) and "expression.csv" in str(info.value)
    assert "1000000 of" in str(info.value)
    assert names(out) == ["expression.csv.part"]  # never the final name before verification
    assert (out / "expression.csv.part").read_bytes() == data[:1_000_000]

    entry = download(fault_server.url(PATH), out / "expression.csv", sha256=sha256(data), **FAST)  # the next run
    assert ranges(fault_server)[-1] == ("bytes=1000000-", 206)
    assert sum(request.sent for request in fault_server.requests_to(PATH)) == len(data)  # each byte sent once
    assert entry["resumed"] is True and entry["attempts"] == 1
    assert (out / "expression.csv").read_bytes() == data and names(out) == ["expression.csv"]


def test_repeated_drops_with_progress_do_not_use_up_the_retries(fault_server, data, out):
    fault_server.drop(PATH, after=500_000, times=3)
    entry = download(fault_server.url(PATH), out / "f", sha256=sha256(data), **{**FAST, "retries": 1})
    assert [r for r, _ in ranges(fault_server)] == [None, "bytes=500000-", "bytes=1000000-", "bytes=1500000-"]
    assert entry["attempts"] == 4 and (out / "f").read_bytes() == data


def test_resume_through_a_redirect(fault_server, data, out):
    # figshare's download links redirect to storage: the Range header must survive the redirect.
    fault_server.always("/ndownloader/files/1", fault_server.Fault(redirect=PATH))
    fault_server.drop(PATH, after=400_000)
    entry = download(fault_server.url("/ndownloader/files/1"), out / "f", sha256=sha256(data), **FAST)
    assert ranges(fault_server) == [(None, 200), ("bytes=400000-", 206)]
    assert [r.status for r in fault_server.requests_to("/ndownloader/files/1")] == [302, 302]
    assert entry["resumed"] and (out / "f").read_bytes() == data


def test_server_ignoring_range_is_read_again_from_zero(fault_server, data, out):
    fault_server.drop(PATH, after=600_000)
    fault_server.always(PATH, fault_server.Fault(ignore_range=True))
    entry = download(fault_server.url(PATH), out / "f", sha256=sha256(data), **FAST)
    assert ranges(fault_server) == [(None, 200), ("bytes=600000-", 200)]
    assert (out / "f").read_bytes() == data  # not the first 600000 bytes twice
    assert entry["resumed"] is False and names(out) == ["f"]


def test_range_ignored_and_dropped_at_the_same_point_gives_up(fault_server, data, out):
    # No attempt gets further than the first, so these are failures without progress: retries run out.
    fault_server.always(PATH, fault_server.Fault(ignore_range=True, drop_after=600_000))
    with pytest.raises(DownloadError, match="gave up after 3 attempt"):
        download(fault_server.url(PATH), out / "f", sha256=sha256(data), **{**FAST, "retries": 2})
    assert len(fault_server.requests_to(PATH)) == 3
    assert names(out) == ["f.part"]


def test_a_range_answer_at_the_wrong_offset_is_not_appended(fault_server, data, out):
    (out / "f.part").write_bytes(data[:1000])
    wrong_start = f"bytes 0-{len(data) - 1001}/{len(data)}"  # the body is from byte 1000; the header says 0
    fault_server.script(PATH, fault_server.Fault(headers={"Content-Range": wrong_start}))
    download(fault_server.url(PATH), out / "f", sha256=sha256(data), **FAST)
    assert ranges(fault_server) == [("bytes=1000-", 206), (None, 200)]
    assert (out / "f").read_bytes() == data


def test_complete_part_from_an_earlier_run_is_verified_not_fetched(fault_server, data, out):
    (out / "f.part").write_bytes(data)  # the earlier run died between the last byte and the rename
    entry = download(fault_server.url(PATH), out / "f", sha256=sha256(data), **FAST)
    assert ranges(fault_server) == [(f"bytes={len(data)}-", 416)]
    assert entry["bytes"] == len(data) and (out / "f").read_bytes() == data and names(out) == ["f"]


def test_part_longer_than_the_file_is_discarded(fault_server, data, out):
    (out / "f.part").write_bytes(data + b"stale tail")
    download(fault_server.url(PATH), out / "f", sha256=sha256(data), **FAST)
    assert ranges(fault_server) == [(f"bytes={len(data) + 10}-", 416), (None, 200)]
    assert (out / "f").read_bytes() == data


# --- transient and permanent HTTP errors ---------------------------------------------------------------------


def test_503_then_success(fault_server, data, out):
    fault_server.fail(PATH, 503, times=2)
    entry = download(fault_server.url(PATH), out / "f", sha256=sha256(data), **FAST)
    assert [status for _, status in ranges(fault_server)] == [503, 503, 200]
    assert entry["attempts"] == 3 and (out / "f").read_bytes() == data


def test_retry_after_is_honoured(fault_server, data, out):
    fault_server.fail(PATH, 429, headers={"Retry-After": "1"})
    started = time.monotonic()
    download(fault_server.url(PATH), out / "f", sha256=sha256(data), **FAST)
    assert time.monotonic() - started >= 1.0  # the back-off alone would be 0.01 s
    assert [status for _, status in ranges(fault_server)] == [429, 200]


def test_figshare_202_while_preparing_is_retried(fault_server, data, out):
    fault_server.fail(PATH, 202)  # a 202 body is not the file: it must not be taken for it
    download(fault_server.url(PATH), out / "f", sha256=sha256(data), **FAST)
    assert [status for _, status in ranges(fault_server)] == [202, 200]
    assert (out / "f").read_bytes() == data


def test_404_fails_at_once_without_retries(fault_server, out):
    started = time.monotonic()
    with pytest.raises(DownloadError) as info:
        download(fault_server.url("/missing.csv"), out / "missing.csv", md5="0" * 32, **{**FAST, "backoff": 5})
    message = str(info.value)
    assert fault_server.url("/missing.csv") in message and "missing.csv" in message and "HTTP 404" in message
    assert len(fault_server.requests_to("/missing.csv")) == 1 and time.monotonic() - started < 2
    assert names(out) == []


def test_retries_run_out_on_persistent_503(fault_server, data, out):
    fault_server.fail(PATH, 503, times=10)
    with pytest.raises(DownloadError) as info:
        download(fault_server.url(PATH), out / "f", sha256=sha256(data), **{**FAST, "retries": 2})
    assert "HTTP 503" in str(info.value) and fault_server.url(PATH) in str(info.value)
    assert len(fault_server.requests_to(PATH)) == 3 and names(out) == []


def test_timeout_before_the_answer_is_retried(fault_server, data, out):
    fault_server.script(PATH, fault_server.Fault(stall_s=10))
    started = time.monotonic()
    download(fault_server.url(PATH), out / "f", sha256=sha256(data), **{**FAST, "timeout": 1})
    assert len(fault_server.requests_to(PATH)) == 2 and time.monotonic() - started < 8
    assert (out / "f").read_bytes() == data


def test_timeout_in_mid_body_is_retried_and_resumed(fault_server, data, out):
    fault_server.script(PATH, fault_server.Fault(stall_s=10, stall_after=800_000))
    entry = download(fault_server.url(PATH), out / "f", sha256=sha256(data), **{**FAST, "timeout": 1})
    assert ranges(fault_server)[1] == ("bytes=800000-", 206)
    assert entry["resumed"] and (out / "f").read_bytes() == data


# --- checksums -----------------------------------------------------------------------------------------------


def test_wrong_checksum_names_everything_and_leaves_nothing(fault_server, data, out):
    wrong = "ab" * 32
    with pytest.raises(ChecksumError) as info:
        download(fault_server.url(PATH), out / "expression.csv", sha256=wrong, **FAST)
    message = str(info.value)
    for part in (fault_server.url(PATH), "expression.csv", wrong, sha256(data), "pinned by config"):
        assert part in message
    assert len(fault_server.requests_to(PATH)) == 1  # a mismatch is not retried
    assert names(out) == []


def test_wrong_md5_is_caught_too(fault_server, data, out):
    with pytest.raises(ChecksumError, match=f"md5 expected {'0' * 32}, got {hashlib.md5(data).hexdigest()}"):
        download(fault_server.url(PATH), out / "f", md5="0" * 32, **FAST)
    assert names(out) == []


def test_both_checksums_must_agree(fault_server, data, out):
    with pytest.raises(ChecksumError, match="md5 expected"):
        download(fault_server.url(PATH), out / "f", sha256=sha256(data), md5="0" * 32, **FAST)
    assert names(out) == []


def test_partial_is_not_reused_after_a_checksum_error(fault_server, data, out):
    fault_server.drop(PATH, after=900_000)
    with pytest.raises(DownloadError):
        download(fault_server.url(PATH), out / "f", sha256=sha256(data), **{**FAST, "retries": 0})
    changed = payload(seed=1)  # the file changed on the server between the two runs
    fault_server.serve(PATH, changed)
    with pytest.raises(ChecksumError):  # the old prefix plus the new tail: caught, and the .part deleted
        download(fault_server.url(PATH), out / "f", sha256=sha256(data), **FAST)
    assert names(out) == []

    download(fault_server.url(PATH), out / "f", sha256=sha256(changed), **FAST)  # re-pinned: a fresh start
    assert ranges(fault_server)[-1] == (None, 200)
    assert (out / "f").read_bytes() == changed


def test_a_checksum_is_required(fault_server, out):
    with pytest.raises(ValueError, match="no checksum given"):
        download(fault_server.url(PATH), out / "f", **FAST)
    with pytest.raises(ValueError, match="not a 64-digit hex digest"):
        download(fault_server.url(PATH), out / "f", sha256="abc", **FAST)
    assert fault_server.requests == []


# --- cache ---------------------------------------------------------------------------------------------------


def test_cache_fetches_each_file_once(fault_server, data, tmp_path):
    cache = tmp_path / "cache"
    first = tmp_path / "a" / "expression.csv"
    entry = download(fault_server.url(PATH), first, sha256=sha256(data), cache_dir=cache, **FAST)
    assert entry["from_cache"] is False and entry["attempts"] == 1
    assert first.stat().st_ino == (cache / "sha256" / sha256(data)).stat().st_ino  # a hard link, not a copy

    first.unlink()  # the output was deleted; a second source names the same file under another name
    again = download(fault_server.url(PATH), first, sha256=sha256(data), cache_dir=cache, **FAST)
    other = download(fault_server.url(PATH), tmp_path / "b" / "same.csv", sha256=sha256(data), cache_dir=cache,
                     **FAST)
    assert len(fault_server.requests_to(PATH)) == 1
    assert again["from_cache"] and other["from_cache"] and other["attempts"] == 0
    assert first.read_bytes() == data and (tmp_path / "b" / "same.csv").read_bytes() == data


def test_md5_pinned_file_is_found_again_by_its_sha256(fault_server, data, tmp_path):
    cache = tmp_path / "cache"
    download(fault_server.url(PATH), tmp_path / "x", md5=hashlib.md5(data).hexdigest(), cache_dir=cache, **FAST)
    entry = download(fault_server.url(PATH), tmp_path / "y", sha256=sha256(data), cache_dir=cache, **FAST)
    assert entry["from_cache"] and len(fault_server.requests_to(PATH)) == 1


def test_damaged_cache_entry_is_fetched_again(fault_server, data, tmp_path, caplog):
    cache = tmp_path / "cache"
    download(fault_server.url(PATH), None, sha256=sha256(data), cache_dir=cache, **FAST)
    entry_path = cache / "sha256" / sha256(data)
    entry_path.unlink()
    entry_path.write_bytes(data[:-1] + b"\0")  # bit rot, or someone edited the file in place
    entry = download(fault_server.url(PATH), tmp_path / "f", sha256=sha256(data), cache_dir=cache, **FAST)
    assert entry["from_cache"] is False and len(fault_server.requests_to(PATH)) == 2
    assert (tmp_path / "f").read_bytes() == data and "damaged" in caplog.text


def test_partial_download_into_the_cache_is_resumed(fault_server, data, tmp_path):
    cache, destination = tmp_path / "cache", tmp_path / "out" / "f"
    fault_server.drop(PATH, after=1_200_000)
    with pytest.raises(DownloadError):
        download(fault_server.url(PATH), destination, sha256=sha256(data), cache_dir=cache, **{**FAST, "retries": 0})
    assert (cache / "sha256" / f"{sha256(data)}.part").stat().st_size == 1_200_000
    assert not destination.exists()
    download(fault_server.url(PATH), destination, sha256=sha256(data), cache_dir=cache, **FAST)
    assert ranges(fault_server)[-1] == ("bytes=1200000-", 206) and destination.read_bytes() == data
    assert not (cache / "sha256" / f"{sha256(data)}.part").exists()


def test_two_jobs_fetching_the_same_file_download_it_once(fault_server, data, tmp_path):
    # The first job is slowed down mid-file; the second waits for the cache entry's lock, then finds it.
    fault_server.script(PATH, fault_server.Fault(stall_s=0.5, stall_after=100_000))
    results, errors = {}, []

    def job(name):
        try:
            results[name] = download(fault_server.url(PATH), tmp_path / name / "f", sha256=sha256(data),
                                     cache_dir=tmp_path / "cache", **FAST)
        except Exception as error:  # noqa: BLE001 (reported by the assertion below)
            errors.append(error)

    threads = [threading.Thread(target=job, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
        time.sleep(0.1)
    for thread in threads:
        thread.join(timeout=30)
    assert errors == [] and len(fault_server.requests_to(PATH)) == 1
    assert sorted(result["from_cache"] for result in results.values()) == [False, True]
    assert (tmp_path / "a" / "f").read_bytes() == data == (tmp_path / "b" / "f").read_bytes()


def test_cache_dir_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("DRP_DOWNLOAD_CACHE", raising=False)
    assert default_cache_dir() == Path("resources") / ".cache"
    monkeypatch.setenv("DRP_DOWNLOAD_CACHE", str(tmp_path / "shared"))
    assert default_cache_dir() == tmp_path / "shared"


def test_file_url_from_a_local_mirror(tmp_path, data):
    (tmp_path / "mirror.csv").write_bytes(data)
    (tmp_path / "f.part").write_bytes(data[:1000])  # file:// ignores Range: must be read again from zero
    entry = download((tmp_path / "mirror.csv").as_uri(), tmp_path / "f", sha256=sha256(data), **FAST)
    assert (tmp_path / "f").read_bytes() == data and entry["resumed"] is False


# --- progress ------------------------------------------------------------------------------------------------


def test_progress_bar_names_the_file(fault_server, data, out, capsys):
    download(fault_server.url(PATH), out / "expression.csv", sha256=sha256(data), **{**FAST, "progress": True})
    assert "expression.csv" in capsys.readouterr().err
