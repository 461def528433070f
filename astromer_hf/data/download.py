"""Robust downloads of survey archive files (MACHO, OGLE, ZTF, Gaia...) over HTTP(S).

Survey archives are large, slow and sometimes flaky, so :func:`download_file` is careful about what ends up on disk:

* **Atomic.** Bytes are written to ``<destination>.part`` and renamed to ``destination`` only once the transfer is
  complete (as long as the server announced a ``Content-Length``) and the checksum, when one is published, matches.
  Nothing half-written is ever left under the final name.
* **Resumable.** A ``.part`` left by an interrupted run, or by an earlier attempt of the same call, is continued with
  an HTTP ``Range`` request. Servers that ignore ranges (``200``) or answer with a different start are handled by
  restarting from zero; ``416 Range Not Satisfiable`` is taken to mean that the ``.part`` may already be complete.
* **Retried.** Connection errors, timeouts, connections dropped mid-body, HTTP 5xx, 408 and 429 are retried with
  exponential backoff, each retry resuming from the bytes already received. Other HTTP errors (404, 403...) fail at
  once.
* **Checked.** Checksums are *verified where published, recorded where not*: every download is recorded, with its
  sha256 and size, in ``download_manifest.json`` beside the file (see :func:`read_manifest`), so later calls can
  recognise an intact copy even when the archive publishes no checksum.

Only the standard library is used for the transfer, plus ``tqdm`` for the progress bar. Proxies configured through the
usual ``http_proxy`` / ``https_proxy`` / ``no_proxy`` environment variables are honoured (``urllib`` defaults).
"""

from __future__ import annotations

import hashlib
import http.client
import json
import logging
import os
import re
import ssl
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from tqdm.auto import tqdm

__all__ = [
    "MANIFEST_NAME",
    "ChecksumError",
    "DownloadError",
    "DownloadResult",
    "download_file",
    "join_url",
    "read_manifest",
]

logger = logging.getLogger(__name__)

#: Name of the JSON file, beside the downloaded files, that records every successful download.
MANIFEST_NAME = "download_manifest.json"

_SUPPORTED_SCHEMES = ("http", "https", "file")
_RETRYABLE_STATUS = frozenset({408, 429})
_HASH_BLOCK = 1 << 20
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_CONTENT_RANGE_RE = re.compile(r"^\s*bytes\s+(?:(\d+)-(\d+)|\*)/(\d+|\*)\s*$", re.IGNORECASE)
_USER_AGENT = "astromer_hf-downloader (Python urllib)"

# Serialises the read-modify-write of manifests between threads of this process. Concurrent *processes* writing the
# same manifest can still lose each other's entries (the last writer wins), which only costs a later re-download.
_MANIFEST_LOCK = threading.Lock()


class DownloadError(RuntimeError):
    """A download failed. The message always names the URL, and the HTTP status or the underlying cause.

    Attributes:
        url: the URL that could not be downloaded (None only when unknown).
        status: the last HTTP status received, when the failure came from one.
    """

    def __init__(self, message: str, *, url: str | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.url = url
        self.status = status


class ChecksumError(DownloadError):
    """The downloaded bytes do not have the published sha256 (even after one fresh download from scratch)."""

    def __init__(self, url: str, expected: str, actual: str) -> None:
        super().__init__(
            f"sha256 mismatch for {url}: expected {expected}, got {actual}",
            url=url,
        )
        self.expected = expected
        self.actual = actual

    def __reduce__(self) -> tuple[Any, ...]:
        # The constructor does not take the message, so tell pickle how to rebuild the error (multiprocessing).
        return (type(self), (self.url, self.expected, self.actual))


@dataclass(frozen=True)
class DownloadResult:
    """What :func:`download_file` produced.

    Attributes:
        path: the downloaded file (the ``destination`` argument, as a :class:`~pathlib.Path`).
        url: the URL it was requested from.
        sha256: hex sha256 of the file on disk.
        size: its size in bytes.
        resumed: True when the file was completed from bytes of an earlier attempt or run (a ``.part``).
        cached: True when an existing, intact file was returned without any transfer.
    """

    path: Path
    url: str
    sha256: str
    size: int
    resumed: bool
    cached: bool


class _TransientError(Exception):
    """A failure worth retrying (kept private: callers only ever see :class:`DownloadError`)."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


# ----------------------------------------------------------------------------------------------------------- helpers


def join_url(base_url: str, *parts: str) -> str:
    """Join a base URL (an archive or one of its mirrors) with path parts.

    Exactly one ``/`` separates the pieces, whatever slashes the base and the parts start or end with (runs of
    slashes inside a part are collapsed too). Parts are raw text and are percent-quoted, keeping ``/`` so that a part
    may hold several path segments; do not pass parts that are already quoted (``%`` would be quoted again). The base
    URL is used as given, apart from its trailing slashes.

    >>> join_url("https://mirror.example.org/macho/", "/lcs/", "F_1.3319 lc.csv")
    'https://mirror.example.org/macho/lcs/F_1.3319%20lc.csv'
    """
    pieces = [base_url.rstrip("/")]
    for part in parts:
        segments = [segment for segment in str(part).split("/") if segment]
        if segments:
            pieces.append(urllib.parse.quote("/".join(segments), safe="/"))
    return "/".join(pieces)


def read_manifest(folder: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """The download manifest of ``folder``: ``{file name: {"url", "sha256", "size", "verified"}}``.

    ``verified`` is True when the sha256 was checked against a published checksum, False when it was only recorded.
    A missing manifest reads as ``{}``; so does an unreadable one (with a warning), since it is only a cache index and
    is rewritten by the next successful download.
    """
    path = Path(folder) / MANIFEST_NAME
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        logger.warning("ignoring unreadable download manifest %s: %s", path, err)
        return {}
    if not isinstance(data, dict):
        logger.warning("ignoring download manifest %s: not a JSON object", path)
        return {}
    return data


def _record_in_manifest(destination: Path, entry: dict[str, Any]) -> None:
    """Add or replace the manifest entry of ``destination``, atomically (temporary file + ``os.replace``)."""
    folder = destination.parent
    with _MANIFEST_LOCK:
        manifest = read_manifest(folder)
        if manifest.get(destination.name) == entry:
            return
        manifest[destination.name] = entry
        fd, tmp_name = tempfile.mkstemp(dir=folder, prefix=f".{MANIFEST_NAME}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(manifest, handle, indent=2, sort_keys=True)
                handle.write("\n")
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp_name, folder / MANIFEST_NAME)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise


def _hash_file(path: Path) -> tuple[Any, int]:
    """A sha256 object fed with the whole file, and the file size."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as handle:
        while block := handle.read(_HASH_BLOCK):
            digest.update(block)
            size += len(block)
    return digest, size


def _normalize_sha256(sha256: str) -> str:
    value = sha256.strip().lower()
    if not _SHA256_RE.match(value):
        raise ValueError(f"sha256 must be 64 hexadecimal characters, got {sha256!r}")
    return value


def _check_url(url: str) -> str:
    """The URL's scheme, lower-cased, after checking that it is one we download from."""
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in _SUPPORTED_SCHEMES:
        raise DownloadError(
            f"unsupported URL scheme {parts.scheme or '(none)'!r} for {url}: only http://, https:// and file:// "
            "URLs can be downloaded",
            url=url,
        )
    if scheme in ("http", "https") and not parts.netloc:
        raise DownloadError(f"no host in URL {url}", url=url)
    if scheme == "file" and parts.netloc not in ("", "localhost"):
        raise DownloadError(f"file:// URLs must name a local path (no host), got {url}", url=url)
    return scheme


def _header_int(value: str | None) -> int | None:
    try:
        number = int(value) if value is not None else None
    except ValueError:
        return None
    return number if number is not None and number >= 0 else None


def _parse_content_range(value: str | None) -> tuple[int | None, int | None]:
    """``(start, total)`` from a ``Content-Range`` header; each None when absent or ``*``."""
    match = _CONTENT_RANGE_RE.match(value or "")
    if not match:
        return None, None
    start, _end, total = match.groups()
    return (int(start) if start is not None else None), (int(total) if total != "*" else None)


def _is_retryable_status(status: int) -> bool:
    return status in _RETRYABLE_STATUS or 500 <= status <= 599


# ---------------------------------------------------------------------------------------------------------- transfer


def _stream(
    source: BinaryIO, part: Path, *, append: bool, digest: Any, chunk_size: int, bar: tqdm, url: str
) -> None:
    """Copy ``source`` into ``part`` (appending or truncating), feeding ``digest`` and the progress bar."""
    # ``read1`` returns whatever has arrived (up to chunk_size) instead of waiting to fill a whole chunk: with ``read``,
    # a timeout or reset in the middle of a large chunk would throw away the bytes already received for it.
    read = getattr(source, "read1", source.read)
    with open(part, "ab" if append else "wb") as handle:
        try:
            while chunk := read(chunk_size):
                handle.write(chunk)
                digest.update(chunk)
                bar.update(len(chunk))
        except (OSError, http.client.HTTPException) as err:
            # Timeouts, resets and IncompleteRead (chunked bodies) mid-body; what was written stays in the .part.
            raise _TransientError(f"connection lost while reading {url}: {err!r}") from err


def _http_attempt(
    url: str, part: Path, *, expected_sha256: str | None, timeout: float, chunk_size: int, bar: tqdm
) -> tuple[str, int, bool]:
    """One attempt at completing ``part`` from ``url``: ``(sha256, size, resumed)``.

    Raises :class:`_TransientError` for what is worth retrying and :class:`DownloadError` for what is not.
    """
    restarted = False

    def restart(reason: str) -> None:
        # Drop the .part and ask again from byte zero, at most once per attempt (then let the retry loop decide).
        nonlocal restarted
        part.unlink(missing_ok=True)
        if restarted:
            raise _TransientError(f"{reason} (again) for {url}")
        logger.info("%s for %s; restarting from zero", reason, url)
        restarted = True

    while True:
        offset = part.stat().st_size if part.exists() else 0
        headers = {"User-Agent": _USER_AGENT, "Accept-Encoding": "identity"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
        request = urllib.request.Request(url, headers=headers)
        try:
            response = urllib.request.urlopen(request, timeout=timeout)
        except urllib.error.HTTPError as err:
            with err:
                status, reason, content_range = err.code, err.reason, err.headers.get("Content-Range")
            if status == 416 and offset:
                # The .part may already hold the whole file: trust the announced total, else the checksum.
                _, total = _parse_content_range(content_range)
                digest, size = _hash_file(part)
                if total == size or (total is None and expected_sha256 == digest.hexdigest()):
                    bar.reset(total=size)
                    bar.update(size)
                    return digest.hexdigest(), size, True
                restart(f"HTTP 416 for a {offset}-byte partial file (total {total})")
                continue
            if _is_retryable_status(status):
                raise _TransientError(f"HTTP {status} {reason}", status=status) from err
            raise DownloadError(f"HTTP {status} {reason} for {url}", url=url, status=status) from err
        except urllib.error.URLError as err:
            if isinstance(err.reason, ssl.SSLCertVerificationError):
                raise DownloadError(f"TLS certificate verification failed for {url}: {err.reason}", url=url) from err
            raise _TransientError(f"cannot connect: {err.reason!r}") from err
        except (OSError, http.client.HTTPException) as err:
            raise _TransientError(f"request failed: {err!r}") from err

        with response:
            status = response.status
            length = None if "chunked" in response.headers.get("Transfer-Encoding", "").lower() else (
                _header_int(response.headers.get("Content-Length"))
            )
            if status == 206:
                start, total = _parse_content_range(response.headers.get("Content-Range"))
                if start != offset:
                    if not offset:
                        raise DownloadError(
                            f"HTTP 206 with unexpected Content-Range {response.headers.get('Content-Range')!r} "
                            f"for {url} (no range was requested)",
                            url=url,
                            status=status,
                        )
                    restart(f"server answered range start {start} instead of {offset}")
                    continue
                append = offset > 0
                expected_total = total if total is not None else (offset + length if length is not None else None)
            else:
                # 200 (the server ignores ranges, or none was asked for): start over.
                append = False
                expected_total = length

            if append:
                digest, _ = _hash_file(part)
            else:
                digest = hashlib.sha256()
            bar.reset(total=expected_total)
            if append:
                bar.update(offset)
            _stream(response, part, append=append, digest=digest, chunk_size=chunk_size, bar=bar, url=url)

        size = part.stat().st_size
        if expected_total is not None and size < expected_total:
            raise _TransientError(f"connection dropped after {size} of {expected_total} bytes")
        if expected_total is not None and size > expected_total:
            part.unlink(missing_ok=True)
            raise _TransientError(f"received {size} bytes, more than the {expected_total} announced")
        return digest.hexdigest(), size, append


def _http_download(
    url: str,
    part: Path,
    *,
    expected_sha256: str | None,
    retries: int,
    backoff: float,
    timeout: float,
    chunk_size: int,
    bar: tqdm,
) -> tuple[str, int, bool]:
    """Run :func:`_http_attempt` up to ``retries + 1`` times with exponential backoff."""
    attempts = retries + 1
    last: _TransientError | None = None
    for attempt in range(attempts):
        if attempt:
            delay = backoff * 2 ** (attempt - 1)
            logger.warning(
                "download of %s failed (%s); retry %d/%d in %.2f s", url, last, attempt, retries, delay
            )
            time.sleep(delay)
        try:
            return _http_attempt(
                url, part, expected_sha256=expected_sha256, timeout=timeout, chunk_size=chunk_size, bar=bar
            )
        except _TransientError as err:
            last = err
    assert last is not None
    plural = "attempt" if attempts == 1 else "attempts"
    raise DownloadError(
        f"giving up on {url} after {attempts} {plural}; last error: {last}", url=url, status=last.status
    ) from last


def _file_copy(url: str, part: Path, *, chunk_size: int, bar: tqdm) -> tuple[str, int, bool]:
    """Copy the file behind a ``file://`` URL into ``part``: ``(sha256, size, resumed=False)``."""
    source = Path(urllib.request.url2pathname(urllib.parse.urlsplit(url).path))
    digest = hashlib.sha256()
    try:
        handle = open(source, "rb")
    except OSError as err:
        raise DownloadError(f"cannot read {url}: {err}", url=url) from err
    with handle:
        bar.reset(total=os.fstat(handle.fileno()).st_size)
        try:
            _stream(handle, part, append=False, digest=digest, chunk_size=chunk_size, bar=bar, url=url)
        except _TransientError as err:
            raise DownloadError(str(err), url=url) from err.__cause__
    return digest.hexdigest(), part.stat().st_size, False


def _cached(url: str, destination: Path, expected_sha256: str | None) -> DownloadResult | None:
    """The existing ``destination`` when it is known to be intact, else None (moving a corrupt file aside)."""
    if not destination.exists():
        return None
    if not destination.is_file():
        raise DownloadError(f"cannot download {url}: {destination} exists and is not a regular file", url=url)
    if expected_sha256 is not None:
        digest, size = _hash_file(destination)
        actual = digest.hexdigest()
        if actual == expected_sha256:
            _record_in_manifest(
                destination, {"url": url, "sha256": actual, "size": size, "verified": True}
            )
            return DownloadResult(destination, url, actual, size, resumed=False, cached=True)
        corrupt = destination.with_name(destination.name + ".corrupt")
        logger.warning(
            "%s does not have the published sha256 (%s, expected %s); moving it to %s and downloading again",
            destination, actual, expected_sha256, corrupt.name,
        )
        os.replace(destination, corrupt)
        return None
    record = read_manifest(destination.parent).get(destination.name)
    if not isinstance(record, dict) or record.get("size") != destination.stat().st_size:
        return None
    digest, size = _hash_file(destination)
    if record.get("sha256") != digest.hexdigest():
        return None
    return DownloadResult(destination, url, digest.hexdigest(), size, resumed=False, cached=True)


# ------------------------------------------------------------------------------------------------------- public API


def download_file(
    url: str,
    destination: str | os.PathLike[str],
    *,
    sha256: str | None = None,
    retries: int = 3,
    backoff: float = 0.5,
    timeout: float = 30.0,
    progress: bool = True,
    chunk_size: int = 1 << 20,
) -> DownloadResult:
    """Download ``url`` to ``destination`` robustly: atomic, resumable, retried and checksummed.

    An existing ``destination`` is returned as is (``cached=True``, no request made) when it is known to be intact:
    it has the given ``sha256``, or, without one, the sha256 recorded for it in the folder's manifest. A file that
    does *not* have the given ``sha256`` is treated as corrupt: it is moved aside to ``<name>.corrupt`` (replacing an
    older one) and downloaded again. Without ``sha256`` or a matching manifest record the file is downloaded again,
    and replaces the existing one only once complete.

    The transfer goes to ``<destination>.part``, resumed with a ``Range`` request when that file exists, and is renamed
    to ``destination`` only when complete and verified. Connection errors, timeouts, bodies cut short, HTTP 5xx, 408
    and 429 are retried up to ``retries`` more times, after ``backoff * 2**k`` seconds (k = 0, 1, ...), each retry
    resuming from the bytes already received; a failed call leaves its ``.part`` for the next call to resume. A body
    whose length cannot be known (no ``Content-Length``) is taken as complete when the connection closes.

    If the finished file does not match ``sha256``, the ``.part`` is deleted and the file downloaded once more from
    scratch; a second mismatch raises :class:`ChecksumError`. Every success is recorded in
    ``<destination folder>/download_manifest.json`` (see :func:`read_manifest`).

    ``file://`` URLs are copied, with the same atomic rename, checksum and manifest (no retries, no resume).

    Args:
        url: ``http://``, ``https://`` or ``file://`` URL.
        destination: path of the file to create; missing parent folders are created.
        sha256: published hex sha256 of the file, when the archive publishes one.
        retries: extra attempts after the first one for transient failures (0 for none).
        backoff: base delay in seconds of the exponential backoff between attempts.
        timeout: socket timeout in seconds, for connecting and for each read.
        progress: show a ``tqdm`` progress bar (bytes, labelled with the file name).
        chunk_size: the most bytes read and written at a time.

    Returns:
        A :class:`DownloadResult`.

    Raises:
        DownloadError: unsupported URL, non-retryable HTTP error, or retries exhausted (naming the URL, the number of
            attempts and the last cause).
        ChecksumError: the file still does not match ``sha256`` after a fresh download.
        ValueError: malformed ``sha256`` or out-of-range numeric arguments.
    """
    scheme = _check_url(url)
    expected = _normalize_sha256(sha256) if sha256 is not None else None
    if retries < 0:
        raise ValueError(f"retries must be >= 0, got {retries}")
    if backoff < 0:
        raise ValueError(f"backoff must be >= 0, got {backoff}")
    if chunk_size <= 0:
        raise ValueError(f"chunk_size must be > 0, got {chunk_size}")

    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    cached = _cached(url, destination, expected)
    if cached is not None:
        return cached

    part = destination.with_name(destination.name + ".part")
    with tqdm(
        total=None, unit="B", unit_scale=True, unit_divisor=1024, desc=destination.name, disable=not progress
    ) as bar:
        for round_ in range(2):
            if scheme == "file":
                actual, size, resumed = _file_copy(url, part, chunk_size=chunk_size, bar=bar)
            else:
                actual, size, resumed = _http_download(
                    url,
                    part,
                    expected_sha256=expected,
                    retries=retries,
                    backoff=backoff,
                    timeout=timeout,
                    chunk_size=chunk_size,
                    bar=bar,
                )
            if expected is None or actual == expected:
                break
            part.unlink(missing_ok=True)
            if round_:
                raise ChecksumError(url, expected, actual)
            logger.warning(
                "sha256 mismatch for %s (expected %s, got %s); downloading once more from scratch",
                url, expected, actual,
            )

    os.replace(part, destination)
    _record_in_manifest(destination, {"url": url, "sha256": actual, "size": size, "verified": expected is not None})
    return DownloadResult(destination, url, actual, size, resumed=resumed, cached=False)
