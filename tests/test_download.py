"""Tests of ``astromer_hf.data.download`` against a real HTTP server on 127.0.0.1 (no mocks).

The server serves an in-memory ``{path: bytes}`` archive with ``Content-Length``, ``Accept-Ranges`` and real ``Range``
handling (206 / 416), and injects faults per path: an HTTP status for the first K requests, a connection dropped after
N body bytes, a stalled body, ranges ignored or answered from the wrong offset. Every request is logged with its
``Range`` header so the tests can assert what the client asked for.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import pickle
import socket
import tarfile
import time
import zipfile
from collections import Counter
from pathlib import Path

import pytest

from fault_server import Archive, Fault
from astromer_hf.data.download import (
    MANIFEST_NAME,
    ArchiveError,
    ChecksumError,
    DownloadError,
    DownloadResult,
    discard,
    download_file,
    join_url,
    read_manifest,
)
from astromer_hf.data.builder import archive_problem
from astromer_hf.hashing import file_digest, normalize_sha256, text_digest


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def payload(size: int, seed: int = 0) -> bytes:
    """Deterministic, non-repeating bytes (a wrong offset anywhere changes the checksum)."""
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"{seed}:{counter}".encode()).digest()
        counter += 1
    return bytes(out[:size])


# -------------------------------------------------------------------------------------------------- the test server


FAST = {"backoff": 0.01, "timeout": 5.0, "progress": False}


# ------------------------------------------------------------------------------------------------------ plain paths


@pytest.mark.parametrize("publish_checksum", [True, False])
def test_plain_download_manifest_and_cache(archive: Archive, tmp_path: Path, publish_checksum: bool) -> None:
    data = payload(100_000)
    archive.files["/macho/F_1.csv"] = data
    dest = tmp_path / "raw" / "F_1.csv"
    checksum = sha(data) if publish_checksum else None

    result = download_file(archive.url("/macho/F_1.csv"), dest, sha256=checksum, **FAST)

    assert result == DownloadResult(dest, archive.url("/macho/F_1.csv"), sha(data), len(data), False, False)
    assert dest.read_bytes() == data
    assert not dest.with_name("F_1.csv.part").exists()
    manifest = read_manifest(dest.parent)
    assert manifest == {
        "F_1.csv": {
            "url": archive.url("/macho/F_1.csv"),
            "sha256": sha(data),
            "size": len(data),
            "verified": publish_checksum,
        }
    }
    assert json.loads((dest.parent / MANIFEST_NAME).read_text()) == manifest
    assert archive.count("/macho/F_1.csv") == 1

    again = download_file(archive.url("/macho/F_1.csv"), dest, sha256=checksum, **FAST)
    assert again.cached and not again.resumed
    assert again.sha256 == sha(data) and again.size == len(data)
    assert archive.count("/macho/F_1.csv") == 1  # served from disk, no request


def test_file_changed_behind_the_manifest_is_downloaded_again(archive: Archive, tmp_path: Path) -> None:
    data = payload(10_000)
    archive.files["/a.bin"] = data
    dest = tmp_path / "a.bin"
    download_file(archive.url("/a.bin"), dest, **FAST)
    dest.write_bytes(b"x" * len(data))  # same size, different content: only the sha256 tells

    result = download_file(archive.url("/a.bin"), dest, **FAST)

    assert not result.cached
    assert dest.read_bytes() == data
    assert archive.count("/a.bin") == 2


def test_manifest_keeps_entries_of_other_files(archive: Archive, tmp_path: Path) -> None:
    archive.files["/one"] = b"first"
    archive.files["/two"] = b"second"
    download_file(archive.url("/one"), tmp_path / "one", **FAST)
    download_file(archive.url("/two"), tmp_path / "two", sha256=sha(b"second"), **FAST)
    manifest = read_manifest(tmp_path)
    assert sorted(manifest) == ["one", "two"]
    assert manifest["one"]["verified"] is False and manifest["two"]["verified"] is True
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]  # no leftover temporary manifest


def test_read_manifest_of_empty_or_broken_folder(tmp_path: Path) -> None:
    assert read_manifest(tmp_path) == {}
    (tmp_path / MANIFEST_NAME).write_text("{not json")
    assert read_manifest(tmp_path) == {}


def test_progress_bar_named_after_the_file(archive: Archive, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars

    switched_off = are_progress_bars_disabled()  # by code an earlier test ran in this process: on here, then back
    enable_progress_bars()
    try:
        archive.files["/ogle/lc_042.dat"] = payload(50_000)
        download_file(archive.url("/ogle/lc_042.dat"), tmp_path / "lc_042.dat", backoff=0.01, progress=True)
        assert "lc_042.dat" in capsys.readouterr().err
        download_file(archive.url("/ogle/lc_042.dat"), tmp_path / "quiet.dat", backoff=0.01, progress=False)
        assert capsys.readouterr().err == ""
    finally:
        if switched_off:
            disable_progress_bars()


def test_hiding_the_weight_loading_bars_keeps_the_download_bars(archive: Archive, tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture) -> None:
    """The commands hide transformers' "Loading weights" bar; transformers' own switch would hide every
    huggingface_hub bar of the process with it, and a survey's or a release's download would show no progress."""
    from huggingface_hub.utils import are_progress_bars_disabled
    from transformers.utils import logging as transformers_logging

    from astromer_hf.loading_bars import hide_weight_loading_bars, weight_loading_bars_hidden

    archive.files["/ogle/lc_043.dat"] = payload(50_000)
    switched_off = are_progress_bars_disabled()  # as in the test above
    transformers_logging.enable_progress_bar()  # (turns huggingface_hub's bars on too)
    try:
        with weight_loading_bars_hidden():
            assert not transformers_logging.is_progress_bar_enabled()
        assert transformers_logging.is_progress_bar_enabled()  # put back after the block
        hide_weight_loading_bars()
        assert not transformers_logging.is_progress_bar_enabled() and not are_progress_bars_disabled()
        download_file(archive.url("/ogle/lc_043.dat"), tmp_path / "lc_043.dat", backoff=0.01, progress=True)
        assert "lc_043.dat" in capsys.readouterr().err
    finally:
        transformers_logging.enable_progress_bar()
        if switched_off:
            transformers_logging.disable_progress_bar()


# ------------------------------------------------------------------------------------------------------------ resume


def test_dropped_connection_is_resumed_with_a_range_request(archive: Archive, tmp_path: Path) -> None:
    data = payload(200_000)
    archive.files["/ztf/big.parquet"] = data
    archive.faults["/ztf/big.parquet"] = Fault(drop_after=70_000, times=1)
    dest = tmp_path / "big.parquet"

    result = download_file(archive.url("/ztf/big.parquet"), dest, sha256=sha(data), chunk_size=16_384, **FAST)

    assert archive.ranges("/ztf/big.parquet") == [None, "bytes=70000-"]
    assert result.resumed and not result.cached
    assert dest.read_bytes() == data
    assert not dest.with_name("big.parquet.part").exists()


def test_part_left_by_a_previous_run_is_resumed(archive: Archive, tmp_path: Path) -> None:
    data = payload(120_000)
    archive.files["/gaia/source.csv"] = data
    dest = tmp_path / "source.csv"
    dest.with_name("source.csv.part").write_bytes(data[:60_000])

    result = download_file(archive.url("/gaia/source.csv"), dest, **FAST)

    assert archive.ranges("/gaia/source.csv") == ["bytes=60000-"]
    assert result.resumed
    assert dest.read_bytes() == data
    assert read_manifest(tmp_path)["source.csv"]["sha256"] == sha(data)


def test_failed_call_leaves_its_part_for_the_next_call(archive: Archive, tmp_path: Path) -> None:
    data = payload(90_000)
    archive.files["/x"] = data
    archive.faults["/x"] = Fault(drop_after=30_000, times=2)
    dest = tmp_path / "x"

    with pytest.raises(DownloadError, match="2 attempts"):
        download_file(archive.url("/x"), dest, retries=1, **FAST)
    assert not dest.exists()
    part = dest.with_name("x.part")
    assert part.read_bytes() == data[:60_000]  # the first request and the resumed one each gave 30 000 bytes

    result = download_file(archive.url("/x"), dest, sha256=sha(data), **FAST)
    assert archive.ranges("/x") == [None, "bytes=30000-", "bytes=60000-"]
    assert result.resumed and dest.read_bytes() == data


def test_server_ignoring_range_restarts_cleanly(archive: Archive, tmp_path: Path) -> None:
    data = payload(80_000)
    archive.files["/ogle/I.dat"] = data
    archive.faults["/ogle/I.dat"] = Fault(ignore_range=True)
    dest = tmp_path / "I.dat"
    dest.with_name("I.dat.part").write_bytes(data[:50_000])

    result = download_file(archive.url("/ogle/I.dat"), dest, sha256=sha(data), retries=0, **FAST)

    assert archive.ranges("/ogle/I.dat") == ["bytes=50000-"]  # the 200 answer was taken from byte zero
    assert not result.resumed
    assert dest.read_bytes() == data


def test_server_ignoring_range_after_a_drop(archive: Archive, tmp_path: Path) -> None:
    data = payload(80_000)
    archive.files["/y"] = data
    # the first request drops mid-body; the retry asks for the rest, and the server answers 200 with everything
    archive.faults["/y"] = [Fault(drop_after=20_000), Fault(ignore_range=True)]
    dest = tmp_path / "y"

    result = download_file(archive.url("/y"), dest, sha256=sha(data), **FAST)

    assert archive.ranges("/y") == [None, "bytes=20000-"]
    assert dest.read_bytes() == data and not result.resumed


def test_range_answered_from_the_wrong_offset_restarts_from_zero(archive: Archive, tmp_path: Path) -> None:
    data = payload(40_000)
    archive.files["/w"] = data
    archive.faults["/w"] = Fault(wrong_range_start=True, times=1)
    dest = tmp_path / "w"
    dest.with_name("w.part").write_bytes(data[:10_000])

    result = download_file(archive.url("/w"), dest, retries=0, **FAST)  # the restart needs no retry

    assert archive.ranges("/w") == ["bytes=10000-", None]
    assert not result.resumed and dest.read_bytes() == data


def test_416_with_a_complete_part_finishes_without_transfer(archive: Archive, tmp_path: Path) -> None:
    data = payload(30_000)
    archive.files["/done"] = data
    dest = tmp_path / "done"
    dest.with_name("done.part").write_bytes(data)

    result = download_file(archive.url("/done"), dest, sha256=sha(data), **FAST)

    assert archive.ranges("/done") == ["bytes=30000-"]
    assert result.resumed and dest.read_bytes() == data


def test_416_with_an_oversized_part_restarts_from_zero(archive: Archive, tmp_path: Path) -> None:
    data = payload(30_000)
    archive.files["/over"] = data
    dest = tmp_path / "over"
    dest.with_name("over.part").write_bytes(payload(45_000, seed=7))

    result = download_file(archive.url("/over"), dest, retries=0, **FAST)

    assert archive.ranges("/over") == ["bytes=45000-", None]
    assert not result.resumed and dest.read_bytes() == data


def test_stalled_body_times_out_and_resumes(archive: Archive, tmp_path: Path) -> None:
    data = payload(60_000)
    archive.files["/slow"] = data
    archive.faults["/slow"] = Fault(stall_after=25_000, stall_seconds=1.0, times=1)
    dest = tmp_path / "slow"

    result = download_file(archive.url("/slow"), dest, sha256=sha(data), backoff=0.01, timeout=0.3, progress=False)

    assert archive.ranges("/slow") == [None, "bytes=25000-"]
    assert result.resumed and dest.read_bytes() == data


def test_five_megabytes_in_many_chunks_with_a_drop(archive: Archive, tmp_path: Path) -> None:
    data = os.urandom(5_000_000)
    archive.files["/macho/field_77.tar"] = data
    archive.faults["/macho/field_77.tar"] = Fault(drop_after=3_000_001, times=1)
    dest = tmp_path / "field_77.tar"

    result = download_file(archive.url("/macho/field_77.tar"), dest, sha256=sha(data), chunk_size=65_536, **FAST)

    assert archive.ranges("/macho/field_77.tar") == [None, "bytes=3000001-"]
    assert result.size == 5_000_000 and result.resumed
    assert sha(dest.read_bytes()) == sha(data)


# ----------------------------------------------------------------------------------------------------------- retries


@pytest.mark.parametrize("status", [503, 500, 502, 429, 408])
def test_transient_statuses_are_retried(archive: Archive, tmp_path: Path, status: int) -> None:
    data = payload(5_000)
    archive.files["/flaky"] = data
    archive.faults["/flaky"] = Fault(status=status, times=2)
    dest = tmp_path / "flaky"

    result = download_file(archive.url("/flaky"), dest, sha256=sha(data), **FAST)

    assert archive.count("/flaky") == 3
    assert dest.read_bytes() == data and not result.cached


def test_persistent_500_gives_up_naming_url_and_attempts(archive: Archive, tmp_path: Path) -> None:
    archive.files["/broken"] = payload(1_000)
    archive.faults["/broken"] = Fault(status=500)
    dest = tmp_path / "broken"

    start = time.monotonic()
    with pytest.raises(DownloadError) as info:
        download_file(archive.url("/broken"), dest, retries=2, **FAST)
    elapsed = time.monotonic() - start

    message = str(info.value)
    assert archive.url("/broken") in message and "3 attempts" in message and "500" in message
    assert info.value.url == archive.url("/broken") and info.value.status == 500
    assert not isinstance(info.value, ChecksumError)
    assert archive.count("/broken") == 3
    assert elapsed >= 0.01 + 0.02  # backoff * 2**0 + backoff * 2**1
    assert not dest.exists()


def test_retries_zero_means_a_single_attempt(archive: Archive, tmp_path: Path) -> None:
    archive.faults["/z"] = Fault(status=503)
    with pytest.raises(DownloadError, match="after 1 attempt;"):
        download_file(archive.url("/z"), tmp_path / "z", retries=0, **FAST)
    assert archive.count("/z") == 1


@pytest.mark.parametrize("status, path", [(404, "/missing.csv"), (403, "/forbidden.csv"), (410, "/gone.csv")])
def test_client_errors_fail_at_once(archive: Archive, tmp_path: Path, status: int, path: str) -> None:
    if status != 404:
        archive.files[path] = b"secret"
        archive.faults[path] = Fault(status=status)
    dest = tmp_path / "out.csv"

    start = time.monotonic()
    with pytest.raises(DownloadError) as info:
        download_file(archive.url(path), dest, retries=3, backoff=5.0, progress=False)

    assert time.monotonic() - start < 2.0  # no backoff sleep
    assert f"HTTP {status}" in str(info.value) and archive.url(path) in str(info.value)
    assert info.value.status == status
    assert archive.count(path) == 1
    assert not dest.exists() and read_manifest(tmp_path) == {}


def test_connection_refused_is_retried_then_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    with socket.socket() as sock:  # a port that nothing listens on once this socket is closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/nothing"
    with pytest.raises(DownloadError) as info:
        download_file(url, tmp_path / "nothing", retries=1, **FAST)
    assert url in str(info.value) and "2 attempts" in str(info.value)


# --------------------------------------------------------------------------------------------------------- checksums


def test_wrong_published_checksum_raises_after_one_fresh_retry(archive: Archive, tmp_path: Path) -> None:
    data = payload(20_000)
    archive.files["/bad"] = data
    dest = tmp_path / "bad"
    wrong = sha(b"something else")

    with pytest.raises(ChecksumError) as info:
        download_file(archive.url("/bad"), dest, sha256=wrong.upper(), **FAST)

    error = info.value
    assert isinstance(error, DownloadError)
    assert error.expected == wrong and error.actual == sha(data)
    assert archive.url("/bad") in str(error) and wrong in str(error) and sha(data) in str(error)
    assert archive.ranges("/bad") == [None, None]  # retried once, from scratch
    assert not dest.exists() and not dest.with_name("bad.part").exists()
    assert read_manifest(tmp_path) == {}


def test_stale_part_with_wrong_bytes_is_redownloaded_from_scratch(archive: Archive, tmp_path: Path) -> None:
    data = payload(20_000)
    archive.files["/stale"] = data
    dest = tmp_path / "stale"
    dest.with_name("stale.part").write_bytes(b"\0" * 5_000)  # a .part from another version of the file

    result = download_file(archive.url("/stale"), dest, sha256=sha(data), **FAST)

    assert archive.ranges("/stale") == ["bytes=5000-", None]
    assert dest.read_bytes() == data and not result.resumed


def test_corrupt_existing_file_is_moved_aside_and_downloaded_again(archive: Archive, tmp_path: Path) -> None:
    data = payload(20_000)
    archive.files["/lc.csv"] = data
    dest = tmp_path / "lc.csv"
    dest.write_bytes(b"truncated")

    result = download_file(archive.url("/lc.csv"), dest, sha256=sha(data), **FAST)

    assert not result.cached
    assert dest.read_bytes() == data
    assert dest.with_name("lc.csv.corrupt").read_bytes() == b"truncated"
    assert archive.count("/lc.csv") == 1
    assert read_manifest(tmp_path)["lc.csv"]["verified"] is True


def test_existing_file_with_the_published_checksum_is_used_without_request(archive: Archive, tmp_path: Path) -> None:
    data = payload(3_000)
    dest = tmp_path / "given.bin"
    dest.write_bytes(data)

    result = download_file(archive.url("/given.bin"), dest, sha256=sha(data), **FAST)

    assert result.cached and result.sha256 == sha(data)
    assert archive.requests == []
    assert read_manifest(tmp_path)["given.bin"] == {
        "url": archive.url("/given.bin"), "sha256": sha(data), "size": len(data), "verified": True,
    }


def test_malformed_checksum_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="64 hexadecimal"):
        download_file("http://127.0.0.1:9/x", tmp_path / "x", sha256="abc", progress=False)


def test_errors_survive_pickling() -> None:
    error = pickle.loads(pickle.dumps(ChecksumError("http://h/x", "a" * 64, "b" * 64)))
    assert isinstance(error, ChecksumError) and error.expected == "a" * 64 and "http://h/x" in str(error)
    plain = pickle.loads(pickle.dumps(DownloadError("HTTP 404 Not Found for http://h/x", url="http://h/x", status=404)))
    assert plain.status == 404 and plain.url == "http://h/x"


# ------------------------------------------------------------------------------------------------- schemes and URLs


def test_file_url_is_copied_atomically_with_manifest(tmp_path: Path) -> None:
    data = payload(300_000)
    source = tmp_path / "mirror dir" / "gaia epoch.csv"
    source.parent.mkdir()
    source.write_bytes(data)
    dest = tmp_path / "out" / "gaia.csv"

    result = download_file(source.as_uri(), dest, sha256=sha(data), chunk_size=4096, progress=False)

    assert dest.read_bytes() == data and result.size == len(data) and not result.cached
    assert not dest.with_name("gaia.csv.part").exists()
    assert read_manifest(dest.parent)["gaia.csv"] == {
        "url": source.as_uri(), "sha256": sha(data), "size": len(data), "verified": True,
    }
    assert download_file(source.as_uri(), dest, progress=False).cached

    with pytest.raises(ChecksumError):
        download_file(source.as_uri(), tmp_path / "out" / "other.csv", sha256=sha(b"nope"), progress=False)
    assert not (tmp_path / "out" / "other.csv").exists()

    missing = (tmp_path / "absent.csv").as_uri()
    with pytest.raises(DownloadError, match="absent.csv"):
        download_file(missing, tmp_path / "out" / "absent.csv", progress=False)


@pytest.mark.parametrize("url", ["ftp://archive.example.org/f.csv", "s3://bucket/key", "relative/path.csv"])
def test_unsupported_scheme(tmp_path: Path, url: str) -> None:
    with pytest.raises(DownloadError) as info:
        download_file(url, tmp_path / "f.csv", progress=False)
    assert url in str(info.value) and info.value.url == url
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(
    "base, parts, expected",
    [
        ("https://mirror.org/data", ("macho", "F_1.csv"), "https://mirror.org/data/macho/F_1.csv"),
        ("https://mirror.org/data/", ("/macho/", "/F_1.csv"), "https://mirror.org/data/macho/F_1.csv"),
        ("https://mirror.org/data//", ("macho//lcs/", "F 1.csv"), "https://mirror.org/data/macho/lcs/F%201.csv"),
        ("https://mirror.org", ("a+b&c?d#e.csv",), "https://mirror.org/a%2Bb%26c%3Fd%23e.csv"),
        ("https://mirror.org/", ("ogle/I/OGLE-LMC-CEP-0001.dat",), "https://mirror.org/ogle/I/OGLE-LMC-CEP-0001.dat"),
        ("https://mirror.org/", ("", "/", "x~y"), "https://mirror.org/x~y"),
        ("https://mirror.org/", (), "https://mirror.org"),
        ("http://127.0.0.1:8000/", ("é.csv",), "http://127.0.0.1:8000/%C3%A9.csv"),
    ],
)
def test_join_url(base: str, parts: tuple[str, ...], expected: str) -> None:
    assert join_url(base, *parts) == expected


def test_join_url_feeds_download(archive: Archive, tmp_path: Path) -> None:
    archive.files["/surveys/ztf%20dr1/lc.csv"] = b"mjd,mag\n"
    result = download_file(join_url(archive.base_url + "/", "surveys", "ztf dr1/lc.csv"), tmp_path / "lc.csv", **FAST)
    assert result.path.read_bytes() == b"mjd,mag\n"
    assert Counter(p for p, _ in archive.requests) == {"/surveys/ztf%20dr1/lc.csv": 1}


# ------------------------------------------------------------------------------------------------ deadline per file


def test_a_dripping_server_meets_the_deadline_and_the_next_call_resumes(archive: Archive, tmp_path: Path) -> None:
    data = payload(2_000)
    archive.files["/drip.csv"] = data
    archive.faults["/drip.csv"] = Fault(drip_seconds=0.2)  # a byte every 0.2 s: no read ever times out
    dest = tmp_path / "drip.csv"

    start = time.monotonic()
    with pytest.raises(DownloadError) as info:
        download_file(archive.url("/drip.csv"), dest, deadline=1.0, retries=3, backoff=0.01, timeout=5.0,
                      progress=False)

    assert time.monotonic() - start < 3.0
    message = str(info.value)
    assert archive.url("/drip.csv") in message and "deadline of 1 s" in message and "drip.csv.part" in message
    assert archive.count("/drip.csv") == 1  # no retry can start after the deadline
    kept = dest.with_name("drip.csv.part").read_bytes()
    assert 0 < len(kept) < len(data) and data.startswith(kept)
    assert not dest.exists() and read_manifest(tmp_path) == {}

    archive.faults.pop("/drip.csv")
    result = download_file(archive.url("/drip.csv"), dest, sha256=sha(data), **FAST)
    assert archive.ranges("/drip.csv")[-1] == f"bytes={len(kept)}-"
    assert result.resumed and dest.read_bytes() == data


def test_the_deadline_also_bounds_retries_and_their_backoff(archive: Archive, tmp_path: Path) -> None:
    archive.faults["/down"] = Fault(status=503)
    start = time.monotonic()
    with pytest.raises(DownloadError, match=r"deadline of 0.5 s passed after 2 attempts") as info:
        download_file(archive.url("/down"), tmp_path / "down", retries=10, backoff=0.2, deadline=0.5, progress=False)
    assert time.monotonic() - start < 1.0  # the third attempt would start after 0.2 + 0.4 s: not begun
    assert info.value.status == 503 and archive.count("/down") == 2


def test_a_stalled_server_is_cut_at_the_deadline_not_at_the_read_timeout(archive: Archive, tmp_path: Path) -> None:
    archive.files["/mute"] = payload(10_000)
    archive.faults["/mute"] = Fault(stall_after=100, stall_seconds=5.0)
    start = time.monotonic()
    with pytest.raises(DownloadError, match="deadline"):
        download_file(archive.url("/mute"), tmp_path / "mute", deadline=0.5, timeout=30.0, progress=False)
    assert time.monotonic() - start < 2.0


@pytest.mark.parametrize("deadline", [0, -1.0])
def test_a_deadline_must_be_positive(tmp_path: Path, deadline: float) -> None:
    with pytest.raises(ValueError, match="deadline"):
        download_file("http://127.0.0.1:9/x", tmp_path / "x", deadline=deadline, progress=False)


# ------------------------------------------------------------------ files checked before caching (the survey archive check)

CHECKED = {**FAST, "check": archive_problem}


def tar_gz(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def zipped(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def test_a_truncated_archive_served_with_200_is_not_cached(archive: Archive, tmp_path: Path) -> None:
    whole = tar_gz({f"phot/I/OGLE-LMC-CEP-{i:04d}.dat": payload(3_000, seed=i) for i in range(5)})
    path = "/lmc/cep/phot.tar.gz"
    archive.files[path] = whole[: len(whole) * 2 // 3]  # the mirror holds a cut copy, served whole with status 200
    dest = tmp_path / "phot.tar.gz"

    with pytest.raises(ArchiveError) as info:
        download_file(archive.url(path), dest, **CHECKED)

    assert archive.url(path) in str(info.value) and "truncated or corrupt" in str(info.value)
    assert isinstance(info.value, DownloadError) and info.value.url == archive.url(path)
    assert archive.count(path) == 2  # fetched once more from scratch before giving up
    assert not dest.exists() and not dest.with_name("phot.tar.gz.part").exists() and read_manifest(tmp_path) == {}

    archive.files[path] = whole  # the mirror is repaired: the next call asks again and caches the good copy
    result = download_file(archive.url(path), dest, **CHECKED)
    assert not result.cached and dest.read_bytes() == whole and archive.count(path) == 3


@pytest.mark.parametrize(
    "name, body, problem",
    [
        ("F_1.3319.gz", gzip.compress(payload(40_000), mtime=0)[:-200], "EOFError"),  # a MACHO tile cut short
        ("answer", zipped({"a.csv": payload(30_000)})[:-500], "BadZipFile"),  # a zipped Gaia answer cut short
        ("phot.tar.gz", b"<!DOCTYPE html><html><body>503 Service Unavailable</body></html>", "not a gzip file"),
        ("phot.tgz", gzip.compress(b"this is not a tar archive\n" * 50, mtime=0), "ReadError"),
        ("lc.zip", b"id,mag\n1,2\n", "not a zip file"),
    ],
    # ids by name: an id made of the bytes would hold gzip's time stamp, and pytest-xdist's workers, collecting in
    # different seconds, would disagree on the test names
    ids=["macho-tile-cut-short", "gaia-answer-cut-short", "html-error-page", "tgz-not-a-tar", "csv-named-zip"],
)
def test_broken_archives_are_refused(archive: Archive, tmp_path: Path, name: str, body: bytes, problem: str) -> None:
    archive.files[f"/{name}"] = body
    with pytest.raises(ArchiveError, match=problem):
        download_file(archive.url(f"/{name}"), tmp_path / name, **CHECKED)
    assert not (tmp_path / name).exists()


@pytest.mark.parametrize(
    "name, body",
    [
        ("F_1.3319.gz", b";1;3319;1;48823.5;plain text from a mirror that decompresses\n"),  # read as text later
        ("F_1.3320.gz", gzip.compress(payload(10_000), mtime=0)),
        ("phot.tar.gz", tar_gz({"phot/I/a.dat": b"1 2 3\n"})),
        ("answer", zipped({"a.csv": b"source_id\n1\n"})),
        ("lc.csv", b"mjd,mag\n"),
    ],
    ids=["plain-text-named-gz", "macho-tile", "tar-gz", "zipped-answer", "csv"],
)
def test_intact_files_pass_the_archive_check(archive: Archive, tmp_path: Path, name: str, body: bytes) -> None:
    archive.files[f"/{name}"] = body
    assert download_file(archive.url(f"/{name}"), tmp_path / name, **CHECKED).path.read_bytes() == body
    assert archive.count(f"/{name}") == 1


def test_a_published_checksum_is_trusted_over_the_archive_check(archive: Archive, tmp_path: Path) -> None:
    body = b"<html>the archive really publishes this</html>"
    archive.files["/odd.tar.gz"] = body
    dest = tmp_path / "odd.tar.gz"
    assert download_file(archive.url("/odd.tar.gz"), dest, sha256=sha(body), **CHECKED).size == len(body)


# --------------------------------------------------------------------------------------------- cache maintenance


def test_discard_forgets_a_cached_file_so_the_next_call_downloads_it(archive: Archive, tmp_path: Path) -> None:
    archive.files["/keep"], archive.files["/drop"] = b"kept", b"dropped"
    download_file(archive.url("/keep"), tmp_path / "keep", **FAST)
    download_file(archive.url("/drop"), tmp_path / "drop", **FAST)

    assert discard(tmp_path / "drop") == archive.url("/drop")

    assert not (tmp_path / "drop").exists() and sorted(read_manifest(tmp_path)) == ["keep"]
    assert discard(tmp_path / "never") is None
    download_file(archive.url("/drop"), tmp_path / "drop", **FAST)
    assert archive.count("/drop") == 2


def test_force_downloads_again_even_when_cached(archive: Archive, tmp_path: Path) -> None:
    archive.files["/f"] = b"first"
    download_file(archive.url("/f"), tmp_path / "f", **FAST)
    archive.files["/f"] = b"second"
    assert download_file(archive.url("/f"), tmp_path / "f", **FAST).cached
    result = download_file(archive.url("/f"), tmp_path / "f", force=True, **FAST)
    assert not result.cached and (tmp_path / "f").read_bytes() == b"second" and archive.count("/f") == 2


def test_offline_mode_fails_at_once_but_cached_files_still_serve(archive: Archive, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    archive.files["/here"], archive.files["/there"] = b"cached", b"not cached"
    download_file(archive.url("/here"), tmp_path / "here", **FAST)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert download_file(archive.url("/here"), tmp_path / "here", **FAST).cached
    with pytest.raises(DownloadError, match="HF_HUB_OFFLINE"):
        download_file(archive.url("/there"), tmp_path / "there", retries=3, **FAST)
    assert archive.count("/there") == 0


def test_the_hashing_helper(tmp_path: Path) -> None:
    data = payload(3_000_000)  # more than one block
    (tmp_path / "f").write_bytes(data)
    assert file_digest(tmp_path / "f") == sha(data)
    assert file_digest(tmp_path / "f", "md5") == hashlib.md5(data).hexdigest()
    assert text_digest("ID=1&FORMAT=csv") == sha(b"ID=1&FORMAT=csv")
    assert normalize_sha256(f"  {sha(data).upper()} ") == sha(data)
    with pytest.raises(ValueError, match="64 hexadecimal"):
        normalize_sha256("abc")
