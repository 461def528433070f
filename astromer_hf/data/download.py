"""Survey and release files over HTTP(S): only what ``datasets`` and ``huggingface_hub`` do not do.

From the libraries: the HTTP client is huggingface_hub's shared one (``get_session``: environment proxies, a client
installed with ``set_client_factory``, ``HF_HUB_OFFLINE``), which also detects bodies cut short; its ``tqdm``;
hashing from :mod:`astromer_hf.hashing`. Why not ``datasets.DownloadManager.download`` / ``cached_path``: in datasets
5.2 an interrupted file restarts from zero (``DownloadConfig.resume_download`` is never read), nothing is retried
(``max_retries`` is never read either), nothing bounds the time, no published checksum is checked, and every failed
request becomes ``FileNotFoundError``, so a 404 (skip this star) looks like a 503 (try again). huggingface_hub's
``http_get`` resumes but retries on its own schedule, has no deadline and trusts a 206 from any offset. Kept here:

* resume: bytes go to ``<destination>.part``, continued with a ``Range`` request by the next attempt or call;
* bounded retries: connection errors, timeouts, short bodies, 5xx, 408, 429, with exponential backoff; other
  statuses fail at once (``DownloadError.status``);
* a deadline per file, retries included: a server dripping bytes cannot hold a run (the ``.part`` is kept);
* checks before caching: the published sha256, else the caller's ``check`` (the survey builders make sure an
  archive reads to its end); a failure downloads once more from scratch, then raises. Only a checked file is renamed
  into place;
* ``download_manifest.json`` beside the files records each one's sha256 and size (:func:`read_manifest`), so a later
  call reuses an intact copy without a request; :func:`discard` drops a cached file found unreadable.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from huggingface_hub import get_session
from huggingface_hub.errors import OfflineModeIsEnabled
from huggingface_hub.utils import httpx
from huggingface_hub.utils import tqdm as hf_tqdm

from ..hashing import file_digest, normalize_sha256

logger = logging.getLogger(__name__)

MANIFEST_NAME = "download_manifest.json"
DEFAULT_DEADLINE = 7200.0  #: seconds one file may take, retries included
_RANGE_RE = re.compile(r"^\s*bytes\s+(?:(\d+)-\d+|\*)/(\d+|\*)\s*$", re.IGNORECASE)
_MANIFEST_LOCK = threading.Lock()  # threads of one process; two processes may lose an entry (costs a re-download)


class DownloadError(RuntimeError):
    """A download failed; the message names the URL and the HTTP status or cause (also ``url``, ``status``)."""

    def __init__(self, message: str, *, url: str | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.url, self.status = url, status


class ChecksumError(DownloadError):
    """The bytes do not have the published sha256, even after one fresh download."""

    def __init__(self, url: str, expected: str, actual: str) -> None:
        super().__init__(f"sha256 mismatch for {url}: expected {expected}, got {actual}", url=url)
        self.expected, self.actual = expected, actual

    def __reduce__(self) -> tuple[Any, ...]:  # the constructor does not take the message (pickle)
        return (type(self), (self.url, self.expected, self.actual))


class ArchiveError(DownloadError):
    """The file failed the caller's ``check`` (e.g. a truncated archive), twice; nothing was cached."""


@dataclass(frozen=True)
class DownloadResult:
    """The file; ``resumed``: completed from an earlier ``.part``; ``cached``: reused without any request."""

    path: Path
    url: str
    sha256: str
    size: int
    resumed: bool
    cached: bool


class _Retry(Exception):
    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def join_url(base_url: str, *parts: str) -> str:
    """``base_url`` and raw path parts joined by one ``/`` each, the parts percent-quoted (``/`` kept).

    >>> join_url("https://mirror.example.org/macho/", "/lcs/", "F_1.3319 lc.csv")
    'https://mirror.example.org/macho/lcs/F_1.3319%20lc.csv'
    """
    segments = [s for part in parts for s in str(part).split("/") if s]
    return "/".join([base_url.rstrip("/"), *(urllib.parse.quote(s) for s in segments)])


def read_manifest(folder: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """``{file name: {"url", "sha256", "size", "verified"}}`` (verified: matched a published sha256); ``{}`` when
    missing or unreadable (it is only an index of the cache)."""
    try:
        data = json.loads((Path(folder) / MANIFEST_NAME).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except ValueError as err:
        logger.warning("ignoring unreadable %s in %s: %s", MANIFEST_NAME, folder, err)
        return {}
    return data if isinstance(data, dict) else {}


def _set_entry(path: Path, entry: dict[str, Any] | None) -> None:
    """Add, replace or (None) remove the manifest entry of ``path``; written atomically."""
    with _MANIFEST_LOCK:
        manifest = read_manifest(path.parent)
        if manifest.get(path.name) == entry:
            return
        if entry is None:
            manifest.pop(path.name, None)
        else:
            manifest[path.name] = entry
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{MANIFEST_NAME}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
            os.replace(tmp, path.parent / MANIFEST_NAME)
        finally:
            Path(tmp).unlink(missing_ok=True)


def discard(path: str | os.PathLike[str]) -> str | None:
    """Delete a cached file and its manifest entry; the URL it came from, when the manifest knew it."""
    path = Path(path)
    url = read_manifest(path.parent).get(path.name, {}).get("url")
    path.unlink(missing_ok=True)
    _set_entry(path, None)
    return url


def _receive(response: Any, part: Path, offset: int, deadline_at: float | None, bar: Any) -> str | None:
    """Write a response into ``part``: None once complete, or a reason to start again from zero."""
    status, match = response.status_code, _RANGE_RE.match(response.headers.get("Content-Range", ""))
    if status == 416 and offset:  # the .part may already be the whole file
        return None if match and match.group(2) == str(offset) else f"HTTP 416 for a {offset}-byte partial file"
    if status not in (200, 206):
        if status in (408, 429) or status >= 500:
            raise _Retry(f"HTTP {status} {response.reason_phrase}", status)
        url = str(response.request.url)
        raise DownloadError(f"HTTP {status} {response.reason_phrase} for {url}", url=url, status=status)
    total = int(response.headers["Content-Length"]) if "Content-Length" in response.headers else None
    if status == 206:
        if not match or int(match.group(1) or -1) != offset:
            return f"HTTP 206 from another offset than {offset}"
        total = None if match.group(2) == "*" else int(match.group(2))
    append = status == 206 and offset > 0  # a 200 answer to a Range request is the whole file
    bar.reset(total=total)
    bar.update(offset if append else 0)
    with open(part, "ab" if append else "wb") as handle:
        for chunk in response.iter_raw():  # as bytes arrive, so that a dripping body meets the deadline
            handle.write(chunk)
            bar.update(len(chunk))
            if deadline_at is not None and time.monotonic() > deadline_at:
                raise _Retry("deadline passed mid-body")
    if total is not None and part.stat().st_size != total:
        raise _Retry(f"received {part.stat().st_size} bytes of {total}")
    return None


def _http_download(url: str, part: Path, retries: int, backoff: float, timeout: float, deadline: float | None,
                   bar: Any) -> bool:
    """Complete ``part`` in at most ``retries + 1`` attempts and ``deadline`` seconds; whether earlier bytes served."""
    deadline_at = None if deadline is None else time.monotonic() + deadline
    last, attempts, late = None, 0, False
    while attempts <= retries and not late:
        if attempts:
            delay = backoff * 2 ** (attempts - 1)
            if deadline_at is not None and time.monotonic() + delay >= deadline_at:
                late = True
                break
            logger.warning("download of %s failed (%s); retry %d/%d in %.2f s", url, last, attempts, retries, delay)
            time.sleep(delay)
        attempts += 1
        try:
            for _ in range(2):  # at most one restart from zero per attempt
                offset = part.stat().st_size if part.exists() else 0
                headers = {"Accept-Encoding": "identity", **({"Range": f"bytes={offset}-"} if offset else {})}
                wait = timeout if deadline_at is None else max(0.01, min(timeout, deadline_at - time.monotonic()))
                with get_session().stream("GET", url, headers=headers, timeout=wait) as response:
                    restart = _receive(response, part, offset, deadline_at, bar)
                if restart is None:
                    return offset > 0 and response.status_code in (206, 416)
                logger.info("%s for %s; restarting from zero", restart, url)
                part.unlink()
            raise _Retry(f"{restart} (again)")
        except OfflineModeIsEnabled as err:
            raise DownloadError(f"cannot download {url}: HF_HUB_OFFLINE is set", url=url) from err
        except httpx.TransportError as err:  # cannot connect, timeouts, bodies cut short
            last = _Retry(f"{type(err).__name__}: {err}")
        except _Retry as err:
            last = err
        late = deadline_at is not None and time.monotonic() >= deadline_at
    kept = f"; {part.stat().st_size} bytes kept in {part.name} for the next call" if part.exists() else ""
    tries = f"{attempts} attempt{'s' if attempts > 1 else ''}"
    message = (f"gave up on {url}: its deadline of {deadline:g} s passed after {tries} (last error: {last}){kept}"
               if late else f"giving up on {url} after {tries}; last error: {last}{kept}")
    raise DownloadError(message, url=url, status=last.status if last else None) from last


def download_file(url: str, destination: str | os.PathLike[str], *, sha256: str | None = None, retries: int = 3,
                  backoff: float = 0.5, timeout: float = 30.0, deadline: float | None = DEFAULT_DEADLINE,
                  progress: bool = True, force: bool = False, check: Callable[[Path, str], str | None] | None = None,
                  chunk_size: int = 1 << 20) -> DownloadResult:
    """Download ``url`` (``http``, ``https`` or ``file``) to ``destination``, resumable, retried, time-bounded and
    checked before it is cached (see the module docstring).

    An existing file is reused without a request when it has ``sha256`` or, without one, the sha256 its manifest
    records (unless ``force``); one with the wrong ``sha256`` is moved to ``<name>.corrupt`` and downloaded again. A
    failed call leaves its ``.part`` for the next one. ``retries``: attempts after the first; ``backoff``: seconds
    before the first retry, doubled each time; ``timeout``: seconds to connect and per read; ``deadline``: seconds
    for the whole call (None: no limit); ``check(file, destination name)``: when no ``sha256`` is published, a reason
    to refuse the complete file, or None; ``chunk_size``: block size of ``file://`` copies (no retries there).

    Raises:
        DownloadError: bad URL, HTTP error, retries or deadline exhausted (URL, attempts, last cause named);
            ChecksumError / ArchiveError when the file is still wrong after a fresh download.
        ValueError: malformed ``sha256`` or out-of-range numbers.
    """
    parts = urllib.parse.urlsplit(url)
    local = parts.scheme.lower() == "file" and parts.netloc in ("", "localhost")
    if not local and not (parts.scheme.lower() in ("http", "https") and parts.netloc):
        raise DownloadError(f"cannot download {url}: only http(s):// URLs and local file:// URLs are supported", url=url)
    expected = normalize_sha256(sha256) if sha256 is not None else None
    if retries < 0 or backoff < 0 or chunk_size <= 0 or (deadline is not None and not deadline > 0):
        raise ValueError(f"need retries >= 0, backoff >= 0, chunk_size > 0, deadline > 0 or None: got {retries}, "
                         f"{backoff}, {chunk_size}, {deadline}")
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    part = destination.with_name(destination.name + ".part")
    if destination.exists() and not destination.is_file():
        raise DownloadError(f"cannot download {url}: {destination} is not a regular file", url=url)
    if force:
        part.unlink(missing_ok=True)
    elif destination.exists():
        record, size = read_manifest(destination.parent).get(destination.name, {}), destination.stat().st_size
        actual = file_digest(destination) if expected or record.get("size") == size else None
        if actual is not None and actual == (expected or record.get("sha256")):
            if expected:
                _set_entry(destination, {"url": url, "sha256": actual, "size": size, "verified": True})
            return DownloadResult(destination, url, actual, size, False, True)
        if expected:
            logger.warning("%s does not have the published sha256; moved to %s.corrupt", destination, destination.name)
            os.replace(destination, destination.with_name(destination.name + ".corrupt"))

    with hf_tqdm(unit="B", unit_scale=True, unit_divisor=1024, desc=destination.name, disable=not progress) as bar:
        for round_ in range(2):
            resumed = False
            if local:
                try:
                    with open(urllib.request.url2pathname(parts.path), "rb") as source, open(part, "wb") as target:
                        shutil.copyfileobj(source, target, chunk_size)
                except OSError as err:
                    raise DownloadError(f"cannot read {url}: {err}", url=url) from err
            else:
                resumed = _http_download(url, part, retries, backoff, timeout, deadline, bar)
            actual = file_digest(part)
            problem = check(part, destination.name) if expected is None and check is not None else None
            if (expected is None or actual == expected) and problem is None:
                break
            part.unlink()
            if round_:
                if problem:
                    raise ArchiveError(f"{url} gave a truncated or corrupt file twice ({problem}); nothing was "
                                       "cached", url=url)
                raise ChecksumError(url, expected, actual)
            logger.warning("%s: %s; downloading once more from scratch", url, problem or "wrong sha256")
    size = part.stat().st_size
    os.replace(part, destination)
    _set_entry(destination, {"url": url, "sha256": actual, "size": size, "verified": expected is not None})
    return DownloadResult(destination, url, actual, size, resumed=resumed, cached=False)
