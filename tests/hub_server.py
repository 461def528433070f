"""A real Hugging Face Hub look-alike on 127.0.0.1, for testing hub code with the unmodified client libraries.

``serve_hub(root)`` runs a threaded :mod:`http.server` on a free loopback port that speaks the subset of the Hub
protocol that the tests make ``huggingface_hub`` (2.x), ``transformers`` and ``datasets`` use: the clients are pointed
at it with ``HF_ENDPOINT`` and are not patched or mocked in any other way. Repositories are kept under ``root`` (one
JSON file per repository under ``root/repos`` plus content-addressed blobs under ``root/objects`` and ``root/lfs``), so
a second server started on the same folder serves the same repositories.

Usage::

    with serve_hub(tmp_path / "hub") as server:          # HubServer
        hub_env(monkeypatch, server, tmp_path / "home")  # point the already-imported libraries at it
        HfApi().whoami()                                 # -> {"name": "tester", ...}

or, for a client in another process, ``subprocess.run([...], env=subprocess_env(server, tmp_path / "home"))``.
The ``hub`` pytest fixture defined here does both for a test (import it into the test module).

What the server implements (``{t}`` is ``models`` or ``datasets``; ``{p}`` is ``""`` or ``datasets/``; revisions are
branches, ``refs/pr/N`` and full commit ids). Only what the tests exercise is there: anything else is answered 404
(or 400 for an unsupported commit operation) rather than half-implemented.

* ``GET /api/whoami-v2`` -- Bearer token check.
* ``POST /api/repos/create`` (409 with the repo ``url`` if it exists).
* ``GET /api/{t}/{repo}[/revision/{rev}]`` -- repo info: ``id``, ``sha``, ``private``, ``siblings``, ``cardData``,
  ``tags``, ``library_name`` from the README front matter and ``config`` (``model_type``, ``architectures``) from
  ``config.json``.
* ``GET /api/{t}/{repo}/tree/{rev}[/{path}]`` (``recursive``; cursor pagination with a ``Link: <...>; rel="next"``
  header), ``POST /api/{t}/{repo}/paths-info/{rev}``, ``GET /api/{t}/{repo}/commits/{rev}`` (paginated),
  ``GET /api/{t}/{repo}/refs``.
* ``POST /api/{t}/{repo}/preupload/{rev}`` -- ``uploadMode`` is ``lfs`` when the path matches an LFS pattern of the
  repo's ``.gitattributes``, when the file is at least 10 MB (like the Hub) or when its sample is binary (NUL byte or
  not UTF-8); also the remote ``oid``.
* ``POST /{p}{repo}.git/info/lfs/objects/batch`` -- git-LFS batch API, ``upload`` only: ``basic`` (or ``multipart``
  when ``HubServer.lfs_multipart_chunk_size`` is set) actions whose URLs point back to this server
  (``PUT /_lfs/upload/{oid}``, ``PUT /_lfs/part/{oid}/{n}`` + ``POST /_lfs/complete/{oid}``) with a ``verify``
  action (``POST /_lfs/verify/{oid}``).
* ``POST /api/{t}/{repo}/commit/{branch}`` -- the NDJSON payload (``header``, ``file`` base64, ``lfsFile``);
  ``parentCommit`` is checked (412); ``create_pr=1`` opens ``refs/pr/N``. The new commit id is the sha1 of the commit
  content. ``POST /api/{t}/{repo}/branch/{name}`` (``startingPoint``; 409 if it exists).
* ``GET|HEAD /{p}{repo}/resolve/{rev}/{path}`` -- the content, with ``X-Repo-Commit``, ``ETag`` (quoted git blob id,
  or quoted sha256 for LFS files, which also get ``X-Linked-Etag``/``X-Linked-Size``), ``Content-Length``,
  ``Accept-Ranges`` and ``Range: bytes=start-[end]`` requests (206). 404 with ``X-Error-Code`` ``RepoNotFound`` /
  ``RevisionNotFound`` / ``EntryNotFound``.
* ``POST /api/validate-yaml`` -- README front matter (YAML syntax, a lowercase ``license`` id, a string
  ``library_name``): ``{"errors": [], "warnings": []}`` or 400 with ``errors``.

Not implemented, among others: Xet storage (clients must run with ``HF_HUB_DISABLE_XET=1``), spaces, deletions
(files, folders, branches, repos), tags, repo settings, discussions, ``blobs``/``expand`` metadata, LFS downloads
through the batch API, ``.gitignore`` handling, telemetry, the dataset viewer (``datasets-server``).

Access rules follow the Hub: a wrong token is refused with 401 ``Invalid credentials in Authorization header``;
private or missing repos are 401 (anonymous) or 404 (authenticated) with ``X-Error-Code: RepoNotFound``; writes need
the token (401), repositories are created in ``{user} | orgs`` only (403 otherwise). ``HubServer.fail(...)`` injects a
fault.

Client configuration (found by reading the clients; see ``hub_env`` and ``subprocess_env``)

* A subprocess only needs environment variables: ``HF_ENDPOINT``, ``HF_TOKEN``, ``HF_HOME`` (a temporary folder:
  hub cache, token, xet and ``datasets`` caches all derive from it), ``HF_HUB_DISABLE_XET=1`` (with ``hf_xet``
  installed, uploads go through Xet unconditionally), ``HF_HUB_DISABLE_TELEMETRY=1`` (also skips the
  ``/api/agent-harnesses`` look-up made when building the user agent), ``HF_UPDATE_DOWNLOAD_COUNTS=0`` (else every
  ``datasets.load_dataset`` of a Hub dataset sends a download-counter ``HEAD`` to ``s3.amazonaws.com``, whatever
  ``HF_ENDPOINT`` says) and ``HF_HUB_DISABLE_PROGRESS_BARS=1``.
* In-process, the libraries read those variables *at import time* into module constants, so setting the
  environment is not enough once they are imported. ``hub_env`` sets the variables and patches:
  ``huggingface_hub.constants`` ``ENDPOINT``, ``HUGGINGFACE_CO_URL_TEMPLATE`` (used by ``hf_hub_url``),
  ``HF_URL_HOSTS``, ``HF_HOME``, ``HF_HUB_CACHE``, ``HUGGINGFACE_HUB_CACHE``, ``HF_ASSETS_CACHE``, ``HF_XET_CACHE``,
  ``HF_TOKEN_PATH``, ``HF_STORED_TOKENS_PATH``, ``HF_HUB_DISABLE_XET``, ``HF_HUB_DISABLE_TELEMETRY``,
  ``HF_HUB_OFFLINE`` and the ``*_PATH`` marker files; the ``endpoint`` of the module-level ``HfApi`` behind
  ``huggingface_hub.create_repo``/``upload_folder``/... (``huggingface_hub.hf_api.api``, built at import); clears
  the fsspec instance cache of ``HfFileSystem`` (instances remember their endpoint); resets ``transformers``' cached
  ``HfApi`` (``transformers.utils.hub._hf_api``) and its modules cache; and ``datasets.config`` ``HF_ENDPOINT``,
  ``HUB_DATASETS_URL``, ``HF_CACHE_HOME``, ``HF_DATASETS_CACHE``, ``DOWNLOADED_DATASETS_PATH``,
  ``EXTRACTED_DATASETS_PATH``, ``HF_MODULES_CACHE``, ``HF_HUB_OFFLINE``/``HF_DATASETS_OFFLINE``,
  ``HF_UPDATE_DOWNLOAD_COUNTS`` and ``USE_PARQUET_EXPORT``. ``hub_offline(monkeypatch)`` switches the same
  constants to offline mode.
* ``datasets.load_dataset("org/name")`` first asks the dataset viewer for the parquet export at
  ``HF_ENDPOINT`` with ``://`` replaced by ``://datasets-server.`` -- here ``http://datasets-server.127.0.0.1:PORT``,
  a host name that does not resolve (a DNS query, not loopback traffic); the error is swallowed and the data files
  of the repo are read instead. ``hub_env(..., dataset_viewer=False)`` (the default) sets
  ``datasets.config.USE_PARQUET_EXPORT = False`` so that this look-up is not even attempted.
* The ``hub`` fixture records every host name the test process resolves (``HubServer.resolved_hosts``) and fails the
  test on any but ``127.0.0.1`` -- that is how the ``s3.amazonaws.com`` download counter above was found.
* The ``olah`` mirror (PyPI) works as a caching proxy in front of this server (``hf-scheme = "http"``,
  ``hf-netloc = "127.0.0.1:PORT"``) and then serves its cache with ``offline = true``; see the optional test in
  ``test_hub_server.py``. Its own "mirror" mode needs real git repositories on disk, which this server does not keep.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import datetime as _dt
import hashlib
import http.server
import json
import os
import re
import secrets
import shutil
import threading
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO_TYPES = {"models": "model", "datasets": "dataset"}
URL_PREFIXES = {"model": "", "dataset": "datasets/"}

# LFS patterns written into the `.gitattributes` of the initial commit of every new repository
# (common binary / archive / weight formats).
DEFAULT_LFS_PATTERNS = (
    "*.7z *.arrow *.avro *.bin *.bz2 *.ckpt *.ftz *.gz *.h5 *.hdf5 *.joblib *.lfs.* *.lz4 *.mds *.mlmodel *.model "
    "*.msgpack *.npy *.npz *.onnx *.ot *.parquet *.pb *.pickle *.pkl *.pt *.pth *.rar *.safetensors saved_model/**/* "
    "*.tar.* *.tar *.tflite *.tgz *.wasm *.xz *.zip *.zst *tfevents* *.fits *.jpg *.jpeg *.png *.webp *.mp3 *.wav "
    "*.flac *.ogg *.mp4"
).split()
DEFAULT_GITATTRIBUTES = "".join(f"{pattern} filter=lfs diff=lfs merge=lfs -text\n" for pattern in DEFAULT_LFS_PATTERNS)

HUB_LFS_THRESHOLD = 10 * 1024 * 1024
COMMITS_PAGE_SIZE = 50
LFS_BATCH = ["info", "lfs", "objects", "batch"]  # after /{p}{repo}.git/
FRONT_MATTER = re.compile(r"\A---[ \t]*\r?\n(.*?)\r?\n---[ \t]*(\r?\n|\Z)", re.DOTALL)
INVALID_CREDENTIALS = "Invalid credentials in Authorization header"


# ----------------------------------------------------------------------------------------------------------------------
# Git-like object model
# ----------------------------------------------------------------------------------------------------------------------


def git_blob_oid(content: bytes) -> str:
    """The git object id of a blob with this content (what the Hub reports as a regular file's ``oid``)."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    """The git-LFS pointer file committed in place of a large file."""
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


def _now() -> str:
    now = _dt.datetime.now(_dt.timezone.utc)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


def _glob_regex(pattern: str) -> re.Pattern:
    """gitattributes style pattern to a regex over repo paths (``*`` within a segment, ``**/`` across)."""
    anchored = "/" in pattern.rstrip("/")
    body = pattern.strip("/")
    out, i = [], 0
    while i < len(body):
        if body.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif body[i] == "*":
            out.append("[^/]*")
            i += 1
        else:
            out.append(re.escape(body[i]))
            i += 1
    prefix = "" if anchored else "(?:.*/)?"
    return re.compile(f"^{prefix}{''.join(out)}(?:/.*)?$")


def _lfs_patterns(gitattributes: str) -> list[re.Pattern]:
    lines = (line.split() for line in gitattributes.splitlines())
    return [_glob_regex(parts[0]) for parts in lines if "filter=lfs" in parts[1:]]


@dataclasses.dataclass
class Entry:
    """A file of a commit: its git blob id, its real size and, for LFS files, the sha256 of the content."""

    oid: str
    size: int
    sha256: str | None = None

    @property
    def pointer_size(self) -> int:
        return len(lfs_pointer(self.sha256, self.size)) if self.sha256 else 0


@dataclasses.dataclass
class Commit:
    id: str
    parents: list[str]
    title: str
    message: str
    date: str
    author: str
    files: dict[str, Entry]


@dataclasses.dataclass
class Repo:
    repo_type: str
    repo_id: str
    private: bool
    created_at: str
    uid: str
    branches: dict[str, str] = dataclasses.field(default_factory=dict)
    pulls: dict[int, str] = dataclasses.field(default_factory=dict)
    commits: dict[str, Commit] = dataclasses.field(default_factory=dict)

    def to_json(self) -> dict:
        data = dataclasses.asdict(self)
        data["pulls"] = {str(k): v for k, v in self.pulls.items()}
        return data

    @classmethod
    def from_json(cls, data: dict) -> Repo:
        commits = {
            sha: Commit(**{**c, "files": {p: Entry(**e) for p, e in c["files"].items()}})
            for sha, c in data.pop("commits").items()
        }
        pulls = {int(k): v for k, v in data.pop("pulls").items()}
        return cls(**data, pulls=pulls, commits=commits)

    def resolve(self, revision: str) -> str | None:
        """Commit id of a branch, a ``refs/pr/N`` or a full commit id."""
        match = re.fullmatch(r"refs/pr/(\d+)", revision)
        if match:
            return self.pulls.get(int(match.group(1)))
        if revision in self.branches:
            return self.branches[revision]
        return revision if revision in self.commits else None

    def history(self, head: str) -> Iterator[Commit]:
        """First-parent history from ``head``, newest first."""
        sha: str | None = head
        while sha is not None:
            commit = self.commits[sha]
            yield commit
            sha = commit.parents[0] if commit.parents else None


class HubError(Exception):
    """An error answered as ``{"error": message}`` with an optional ``X-Error-Code``."""

    def __init__(self, status: int, message: str, code: str | None = None, headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.code, self.headers = status, message, code, headers or {}


# ----------------------------------------------------------------------------------------------------------------------
# The server object
# ----------------------------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Fault:
    method: str
    pattern: re.Pattern
    status: int


class HubServer:
    """State of one running look-alike Hub. Create it with :func:`serve_hub`.

    Attributes:
        endpoint: ``http://127.0.0.1:PORT``, the value for ``HF_ENDPOINT``.
        root: the folder holding the repositories.
        token, user, orgs: the one valid token, the user it belongs to and the organisations the user may create
            repositories in.
        requests: every request seen, as ``(method, raw path with query string)``, in order.
        resolved_hosts, allowed_hosts: with the ``hub`` fixture, every host name the test process resolved (a
            pass-through wrapper of ``socket.getaddrinfo``) and the ones allowed (the fixture fails on others).
        lfs_multipart_chunk_size: when set, LFS uploads larger than this use the multipart transfer (parts of this
            size).
        page_size: entries per page of the tree listing (the Hub uses 1000); commits come 50 a page.
    """

    def __init__(self, root: Path, *, token: str, user: str, orgs: tuple[str, ...] = ()):
        self.root = Path(root)
        self.token, self.user, self.orgs = token, user, tuple(orgs)
        self.endpoint = ""
        self.requests: list[tuple[str, str]] = []
        self.lfs_multipart_chunk_size: int | None = None
        self.page_size = 1000
        self.resolved_hosts: list[str] = []  # host names looked up in-process while the `hub` fixture is active
        self.allowed_hosts = {"127.0.0.1"}  # the `hub` fixture fails a test that looked up any other host
        self._faults: list[Fault] = []
        self._lock = threading.RLock()
        self._counter = 0
        self._repos: dict[tuple[str, str], Repo] = {}
        for folder in ("repos", "objects", "lfs", "tmp"):
            (self.root / folder).mkdir(parents=True, exist_ok=True)
        for path in sorted((self.root / "repos").glob("*/*/*.json")):
            repo = Repo.from_json(json.loads(path.read_text()))
            self._repos[(repo.repo_type, repo.repo_id)] = repo

    # -- public helpers for tests ------------------------------------------------------------------------------------

    def fail(self, method: str, path_pattern: str, status: int = 503) -> None:
        """Answer the next request whose method matches and whose raw path matches the regex ``path_pattern``
        (``re.search``) with ``status`` and ``{"error": "injected fault"}`` instead of serving it."""
        with self._lock:
            self._faults.append(Fault(method.upper(), re.compile(path_pattern), status))

    def get_repo(self, repo_id: str, repo_type: str = "model") -> Repo:
        return self._repos[(repo_type, repo_id)]

    def files(self, repo_id: str, *, repo_type: str = "model", revision: str = "main") -> dict[str, bytes]:
        """Content of every file of a repo at a revision, read from the server's storage."""
        repo = self.get_repo(repo_id, repo_type)
        return {path: self._read(entry) for path, entry in repo.commits[repo.resolve(revision)].files.items()}

    # -- storage -----------------------------------------------------------------------------------------------------

    def _blob_path(self, entry: Entry) -> Path:
        return self.root / "lfs" / entry.sha256 if entry.sha256 else self.root / "objects" / entry.oid

    def _read(self, entry: Entry) -> bytes:
        return self._blob_path(entry).read_bytes()

    def _store_regular(self, content: bytes) -> Entry:
        oid = git_blob_oid(content)
        self._atomic_write(self.root / "objects" / oid, content)
        return Entry(oid=oid, size=len(content))

    def _atomic_write(self, target: Path, content: bytes) -> None:
        tmp = self.root / "tmp" / f"{target.name}.{secrets.token_hex(4)}"
        tmp.write_bytes(content)
        os.replace(tmp, target)

    def _save(self, repo: Repo) -> None:
        namespace, name = repo.repo_id.split("/")
        target = self.root / "repos" / f"{repo.repo_type}s" / namespace / f"{name}.json"
        target.parent.mkdir(parents=True, exist_ok=True)
        self._atomic_write(target, json.dumps(repo.to_json(), indent=1).encode())

    def _new_commit(self, repo: Repo, parent: str | None, files: dict[str, Entry], title: str, message: str) -> str:
        self._counter += 1
        date = _now()
        content = json.dumps(
            {
                "parent": parent,
                "files": {p: dataclasses.asdict(e) for p, e in sorted(files.items())},
                "title": title,
                "message": message,
                "date": date,
                "n": self._counter,
            },
            sort_keys=True,
        ).encode()
        sha = hashlib.sha1(content).hexdigest()
        repo.commits[sha] = Commit(sha, [parent] if parent else [], title, message, date, self.user, dict(files))
        return sha

    def _create_repo(self, repo_type: str, repo_id: str, private: bool) -> Repo:
        created = _now()
        repo = Repo(repo_type, repo_id, private, created, uid=secrets.token_hex(12))
        sha = self._new_commit(
            repo, None, {".gitattributes": self._store_regular(DEFAULT_GITATTRIBUTES.encode())}, "initial commit", ""
        )
        repo.branches["main"] = sha
        self._repos[(repo_type, repo_id)] = repo
        self._save(repo)
        return repo


# ----------------------------------------------------------------------------------------------------------------------
# Request handling
# ----------------------------------------------------------------------------------------------------------------------


def _card_data(text: str) -> dict | None:
    match = FRONT_MATTER.match(text)
    if not match:  # a README without metadata
        return None
    data = yaml.safe_load(match.group(1))  # valid: validate-yaml refused anything else before the commit
    return data if isinstance(data, dict) else None


def _validate_metadata(content: str) -> tuple[list[str], list[str]]:
    """(errors, warnings) for the YAML front matter of a README, in the spirit of the Hub's checks."""
    match = FRONT_MATTER.match(content)
    if not match or not match.group(1).strip():
        return [], ["empty or missing yaml metadata in repo card"]
    try:
        data = yaml.safe_load(match.group(1))
    except yaml.YAMLError as err:
        return [f"Invalid YAML in the metadata: {err}".replace("\n", " ")], []
    errors = []
    license_ = data.get("license")
    if isinstance(license_, str) and not re.fullmatch(r"[a-z0-9][a-z0-9.+-]*", license_):
        errors.append(f'"license" must be a lowercase license identifier, got "{license_}"')
    if "library_name" in data and not isinstance(data["library_name"], str):
        errors.append('"library_name" must be a string')
    return errors, []


def _make_handler(server: HubServer) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        timeout = 60

        def log_message(self, *args):
            pass

        # -- plumbing --------------------------------------------------------------------------------------------

        def do_GET(self):  # noqa: N802 (http.server API)
            self._dispatch("GET")

        def do_HEAD(self):  # noqa: N802
            self._dispatch("HEAD")

        def do_POST(self):  # noqa: N802
            self._dispatch("POST")

        def do_PUT(self):  # noqa: N802
            self._dispatch("PUT")

        def _json_body(self) -> Any:
            return json.loads(self.body or b"{}")

        def _send(self, status: int, body: bytes = b"", headers: dict | None = None):
            self.send_response(status)
            headers = dict(headers or {})
            headers.setdefault("Content-Type", "application/json; charset=utf-8")
            headers.setdefault("X-Request-Id", "Root=" + secrets.token_hex(8))
            for key, value in headers.items():
                self.send_header(key, _header_value(value))
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD" and body:
                self.wfile.write(body)

        def _send_json(self, data: Any, status: int = 200, headers: dict | None = None):
            self._send(status, json.dumps(data).encode(), headers)

        def _send_error(self, err: HubError):
            headers = {"X-Error-Message": err.message, **err.headers}
            if err.code:
                headers["X-Error-Code"] = err.code
            if "text/plain" in self.headers.get("Accept", "") and self.path.startswith("/api/validate-yaml"):
                self._send(err.status, err.message.encode(), {**headers, "Content-Type": "text/plain; charset=utf-8"})
            else:
                self._send_json({"error": err.message, **getattr(err, "extra", {})}, err.status, headers)

        def _dispatch(self, method: str):
            # read the whole body first, so that the connection is ready for the next request whatever the answer
            self.body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            server.requests.append((method, self.path))
            with server._lock:
                fault = next((f for f in server._faults if f.method == method and f.pattern.search(self.path)), None)
                if fault is not None:
                    server._faults.remove(fault)
            try:
                if fault is not None:
                    raise HubError(fault.status, "injected fault")
                self._route(method)
            except HubError as err:
                self._send_error(err)

        # -- auth ------------------------------------------------------------------------------------------------

        def _authenticated(self) -> bool:
            """True with the valid token, False without a token; 401 for any other token."""
            header = self.headers.get("Authorization")
            if header is None:
                return False
            if header.strip() == f"Bearer {server.token}":
                return True
            raise HubError(401, INVALID_CREDENTIALS)

        def _repo(self, repo_type: str, repo_id: str, write: bool = False) -> Repo:
            authed = self._authenticated()
            repo = server._repos.get((repo_type, repo_id))
            if repo is None or (repo.private and not authed):
                raise HubError(
                    401 if not authed else 404,
                    "Repository not found" if authed else "Invalid username or password.",
                    "RepoNotFound",
                )
            if write and not authed:
                raise HubError(401, "You must be authenticated to write to a repository", "RepoNotFound")
            return repo

        def _commit_of(self, repo: Repo, revision: str) -> Commit:
            sha = repo.resolve(revision)
            if sha is None:
                raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
            return repo.commits[sha]

        # -- routing ---------------------------------------------------------------------------------------------

        def _route(self, method: str):
            split = urllib.parse.urlsplit(self.path)
            self.query = urllib.parse.parse_qs(split.query, keep_blank_values=True)
            segs = [urllib.parse.unquote(s) for s in split.path.split("/")[1:]]
            if segs[0] == "api":
                return self._route_api(method, segs[1:])
            if segs[0] == "_lfs":
                return self._route_lfs_objects(method, segs[1:])
            repo_type = "model"
            if segs[0] == "datasets":
                repo_type, segs = "dataset", segs[1:]
            if method == "POST" and len(segs) == 6 and segs[1].endswith(".git") and segs[2:] == LFS_BATCH:
                return self._lfs_batch(repo_type, f"{segs[0]}/{segs[1][: -len('.git')]}")
            if method in ("GET", "HEAD") and len(segs) >= 5 and segs[2] == "resolve":
                return self._resolve(repo_type, f"{segs[0]}/{segs[1]}", segs[3], "/".join(segs[4:]))
            raise HubError(404, f"Not found: {split.path}")

        def _route_api(self, method: str, segs: list[str]):
            method = "GET" if method == "HEAD" else method  # HEAD answers the headers of the GET (olah uses it)
            head = segs[0]
            if head == "whoami-v2" and method == "GET":
                return self._whoami()
            if head == "validate-yaml" and method == "POST":
                return self._validate_yaml()
            if head == "repos" and segs[1:] == ["create"] and method == "POST":
                return self._create_repo()
            if head in REPO_TYPES and len(segs) >= 3:
                repo_type, repo_id, rest = REPO_TYPES[head], f"{segs[1]}/{segs[2]}", segs[3:]
                action = rest[0] if rest else ""
                tail = "/".join(rest[1:])
                if action == "" and method == "GET":
                    return self._info(repo_type, repo_id, "main")
                if action == "revision" and method == "GET" and tail:
                    return self._info(repo_type, repo_id, tail)
                if action == "tree" and method == "GET" and len(rest) >= 2:
                    return self._tree(repo_type, repo_id, rest[1], "/".join(rest[2:]))
                if action == "paths-info" and method == "POST" and tail:
                    return self._paths_info(repo_type, repo_id, tail)
                if action == "commits" and method == "GET" and tail:
                    return self._commits(repo_type, repo_id, tail)
                if action == "refs" and method == "GET":
                    return self._refs(repo_type, repo_id)
                if action == "preupload" and method == "POST" and tail:
                    return self._preupload(repo_type, repo_id, tail)
                if action == "commit" and method == "POST" and tail:
                    return self._commit(repo_type, repo_id, tail)
                if action == "branch" and method == "POST" and tail:
                    return self._create_branch(repo_type, repo_id, tail)
            raise HubError(404, f"Not found: /api/{'/'.join(segs)}")

        # -- account ---------------------------------------------------------------------------------------------

        def _whoami(self):
            self._authenticated()  # 401 for a wrong token (huggingface_hub never asks without one)
            self._send_json(
                {
                    "type": "user",
                    "id": hashlib.sha1(server.user.encode()).hexdigest()[:24],
                    "name": server.user,
                    "fullname": server.user.title(),
                    "email": f"{server.user}@example.org",
                    "emailVerified": True,
                    "canPay": False,
                    "isPro": False,
                    "periodEnd": None,
                    "avatarUrl": "",
                    "orgs": [
                        {"type": "org", "name": org, "fullname": org, "roleInOrg": "admin"} for org in server.orgs
                    ],
                    "auth": {"type": "access_token", "accessToken": {"displayName": "tests", "role": "write"}},
                }
            )

        # -- repos -----------------------------------------------------------------------------------------------

        def _create_repo(self):
            payload = self._json_body()
            name, namespace = payload["name"], payload.get("organization") or server.user
            repo_type = payload.get("type") or "model"
            if namespace not in (server.user, *server.orgs):
                raise HubError(403, f"You don't have the rights to create a {repo_type} under {namespace}")
            repo_id = f"{namespace}/{name}"
            url = f"{server.endpoint}/{URL_PREFIXES[repo_type]}{repo_id}"
            private = payload.get("visibility", "public") != "public" or bool(payload.get("private"))
            with server._lock:
                if (repo_type, repo_id) in server._repos:
                    err = HubError(409, f"You already created this {repo_type} repo")
                    err.extra = {"url": url}
                    raise err
                repo = server._create_repo(repo_type, repo_id, private)
            self._send_json({"url": url, "name": repo_id, "id": repo.uid})

        def _info(self, repo_type: str, repo_id: str, revision: str):
            repo = self._repo(repo_type, repo_id)
            commit = self._commit_of(repo, revision)
            card = None
            if "README.md" in commit.files:
                card = _card_data(server._read(commit.files["README.md"]).decode("utf-8", "replace"))
            tags = list(card.get("tags") or []) if card and isinstance(card.get("tags"), list) else []
            data: dict[str, Any] = {
                "_id": repo.uid,
                "id": repo_id,
                "author": repo_id.split("/")[0],
                "sha": commit.id,
                "createdAt": repo.created_at,
                "lastModified": commit.date,
                "private": repo.private,
                "gated": False,
                "disabled": False,
                "downloads": 0,
                "likes": 0,
                "tags": tags,
                "siblings": [{"rfilename": path} for path in sorted(commit.files)],
                "usedStorage": sum(e.size for e in commit.files.values()),
            }
            if card is not None:
                data["cardData"] = card
            if repo_type == "model" and card is not None:
                for key in ("library_name", "pipeline_tag"):
                    if isinstance(card.get(key), str):
                        data[key] = card[key]
            if repo_type == "model" and "config.json" in commit.files:
                config = json.loads(server._read(commit.files["config.json"]))
                data["config"] = {k: config[k] for k in ("architectures", "model_type") if k in config}
            if repo_type == "dataset":
                data.update(description="", citation="")
            self._send_json(data)

        # -- listings --------------------------------------------------------------------------------------------

        def _path_infos(self, commit: Commit, paths: list[str]) -> list[dict]:
            infos = []
            for path in paths:
                if path in commit.files:
                    entry = commit.files[path]
                    info: dict[str, Any] = {"type": "file", "oid": entry.oid, "size": entry.size, "path": path}
                    if entry.sha256:
                        info["lfs"] = {"oid": entry.sha256, "size": entry.size, "pointerSize": entry.pointer_size}
                else:
                    listing = sorted((p, e.oid) for p, e in commit.files.items() if p.startswith(path + "/"))
                    tree_oid = hashlib.sha1(json.dumps(listing).encode()).hexdigest()
                    info = {"type": "directory", "oid": tree_oid, "size": 0, "path": path}
                infos.append(info)
            return infos

        def _paginated(self, items: list, page_size: int):
            start = int(self.query.get("cursor", ["0"])[0] or 0)
            page, headers = items[start : start + page_size], {}
            if start + page_size < len(items):
                split = urllib.parse.urlsplit(self.path)
                query = [(k, v) for k, vs in self.query.items() if k != "cursor" for v in vs]
                query.append(("cursor", str(start + page_size)))
                next_url = f"{server.endpoint}{split.path}?{urllib.parse.urlencode(query)}"
                headers["Link"] = f'<{next_url}>; rel="next"'
            return page, headers

        def _tree(self, repo_type: str, repo_id: str, revision: str, path: str):
            repo = self._repo(repo_type, repo_id)
            commit = self._commit_of(repo, revision)
            recursive = self.query.get("recursive", ["false"])[0].lower() in ("1", "true")
            path = path.strip("/")
            prefix = f"{path}/" if path else ""
            below = [p for p in commit.files if p.startswith(prefix)]
            if path and not below:
                raise HubError(404, f"Entry not found: {path}", "EntryNotFound", {"X-Repo-Commit": commit.id})
            names: set[str] = set()
            for file_path in below:
                rest = file_path[len(prefix) :].split("/")
                depth = len(rest) if recursive else 1
                names.update(prefix + "/".join(rest[: i + 1]) for i in range(depth))
            infos = self._path_infos(commit, sorted(names))
            infos.sort(key=lambda i: (i["path"].split("/")[:-1], i["type"] == "file", i["path"]))
            page, headers = self._paginated(infos, server.page_size)
            self._send_json(page, headers=headers)

        def _paths_info(self, repo_type: str, repo_id: str, revision: str):
            repo = self._repo(repo_type, repo_id)
            commit = self._commit_of(repo, revision)
            paths = urllib.parse.parse_qs(self.body.decode()).get("paths", [])  # a form, as huggingface_hub sends
            dirs = {"/".join(p.split("/")[:i]) for p in commit.files for i in range(1, p.count("/") + 1)}
            wanted = [p for p in dict.fromkeys(paths) if p in commit.files or p in dirs]
            self._send_json(self._path_infos(commit, wanted))

        def _commits(self, repo_type: str, repo_id: str, revision: str):
            repo = self._repo(repo_type, repo_id)
            head = self._commit_of(repo, revision)
            items = [
                {
                    "id": c.id,
                    "title": c.title,
                    "message": c.message,
                    "authors": [{"user": c.author, "avatar": ""}],
                    "date": c.date,
                }
                for c in repo.history(head.id)
            ]
            page, headers = self._paginated(items, COMMITS_PAGE_SIZE)
            self._send_json(page, headers=headers)

        def _refs(self, repo_type: str, repo_id: str):
            repo = self._repo(repo_type, repo_id)
            branches = [
                {"name": name, "ref": f"refs/heads/{name}", "targetCommit": sha}
                for name, sha in sorted(repo.branches.items())
            ]
            self._send_json({"branches": branches, "converts": [], "tags": []})

        # -- writes ----------------------------------------------------------------------------------------------

        def _preupload(self, repo_type: str, repo_id: str, revision: str):
            repo = self._repo(repo_type, repo_id, write=True)
            commit = self._commit_of(repo, revision)
            lfs_patterns = _lfs_patterns(server._read(commit.files[".gitattributes"]).decode("utf-8", "replace"))
            answers = []
            for item in self._json_body()["files"]:
                path = item["path"]
                lfs = (
                    int(item["size"]) >= HUB_LFS_THRESHOLD
                    or _looks_binary(base64.b64decode(item["sample"]))
                    or any(p.match(path) for p in lfs_patterns)
                )
                existing = commit.files.get(path)
                answers.append(
                    {
                        "path": path,
                        "uploadMode": "lfs" if lfs else "regular",
                        "shouldIgnore": False,
                        "oid": (existing.sha256 or existing.oid) if existing else None,
                    }
                )
            self._send_json({"files": answers, "commitOid": commit.id})

        def _commit(self, repo_type: str, repo_id: str, branch: str):
            repo = self._repo(repo_type, repo_id, write=True)
            create_pr = bool(self.query.get("create_pr"))
            lines = [json.loads(line) for line in self.body.splitlines() if line.strip()]
            header = lines[0]["value"]
            with server._lock:
                base = repo.branches[branch]  # the preupload call before the commit answered RevisionNotFound
                # datasets' push_to_hub sends parentCommit and starts over on this 412 (a concurrent commit)
                if header.get("parentCommit") and header["parentCommit"] != base:
                    raise HubError(412, "A commit has happened since. Please refresh and try again.")
                files = dict(repo.commits[base].files)
                for line in lines[1:]:
                    key, value = line["key"], line["value"]
                    if key == "file":
                        files[value["path"]] = server._store_regular(base64.b64decode(value["content"]))
                    elif key == "lfsFile":
                        oid = value["oid"]
                        size = (server.root / "lfs" / oid).stat().st_size
                        files[value["path"]] = Entry(oid=git_blob_oid(lfs_pointer(oid, size)), size=size, sha256=oid)
                    else:  # deletions and anything else: refused rather than silently ignored
                        raise HubError(400, f"Commit operation {key!r} is not supported by this test server")
                sha = server._new_commit(repo, base, files, header["summary"], header.get("description") or "")
                prefix = f"{server.endpoint}/{URL_PREFIXES[repo_type]}{repo_id}"
                pr_url = None
                if create_pr:
                    number = max(repo.pulls, default=0) + 1
                    repo.pulls[number] = sha
                    pr_url = f"{prefix}/discussions/{number}"
                else:
                    repo.branches[branch] = sha
                server._save(repo)
            self._send_json(
                {
                    "success": True,
                    "commitOid": sha,
                    "commitUrl": f"{prefix}/commit/{sha}",
                    "hookOutput": "",
                    "pullRequestUrl": pr_url,
                }
            )

        def _create_branch(self, repo_type: str, repo_id: str, branch: str):
            repo = self._repo(repo_type, repo_id, write=True)
            with server._lock:
                if branch in repo.branches:  # create_branch(exist_ok=True) of astromer_hf.hub relies on this 409
                    raise HubError(409, f"Branch {branch} already exists")
                start = self._json_body().get("startingPoint") or "main"
                repo.branches[branch] = self._commit_of(repo, start).id
                server._save(repo)
            self._send_json({})

        def _validate_yaml(self):
            errors, warnings = _validate_metadata(str(self._json_body().get("content", "")))
            if errors:
                err = HubError(400, "\n".join(errors))
                err.extra = {"errors": [{"message": e} for e in errors], "warnings": []}
                raise err
            self._send_json({"errors": [], "warnings": [{"message": w} for w in warnings]})

        # -- git LFS ---------------------------------------------------------------------------------------------

        def _lfs_batch(self, repo_type: str, repo_id: str):
            payload = self._json_body()
            self._repo(repo_type, repo_id, write=True)
            objects, transfer = [], "basic"
            chunk = server.lfs_multipart_chunk_size
            lfs = f"{server.endpoint}/_lfs"
            for obj in payload["objects"]:
                oid, size = obj["oid"], int(obj["size"])
                if chunk and size > chunk:
                    transfer = "multipart"
                    parts = {str(n): f"{lfs}/part/{oid}/{n}" for n in range(1, -(-size // chunk) + 1)}
                    upload = {"href": f"{lfs}/complete/{oid}", "header": {"chunk_size": str(chunk), **parts}}
                else:
                    upload = {"href": f"{lfs}/upload/{oid}"}
                actions = {"upload": upload, "verify": {"href": f"{lfs}/verify/{oid}"}}
                objects.append({"oid": oid, "size": size, "authenticated": True, "actions": actions})
            self._send_json(
                {"transfer": transfer, "objects": objects, "hash_algo": "sha256"},
                headers={"Content-Type": "application/vnd.git-lfs+json"},
            )

        def _route_lfs_objects(self, method: str, segs: list[str]):
            action, oid = (segs + ["", ""])[:2]
            part_dir = server.root / "tmp" / f"parts-{oid}"
            if action == "upload" and method == "PUT":
                server._atomic_write(server.root / "lfs" / oid, self.body)
                return self._send(200)
            if action == "part" and method == "PUT" and len(segs) == 3:
                content = self.body
                part_dir.mkdir(exist_ok=True)
                (part_dir / f"{int(segs[2]):06d}").write_bytes(content)
                return self._send(200, b"", {"ETag": f'"{hashlib.md5(content).hexdigest()}"'})
            if action == "complete" and method == "POST":
                parts = [(part_dir / f"{int(p['partNumber']):06d}").read_bytes() for p in self._json_body()["parts"]]
                server._atomic_write(server.root / "lfs" / oid, b"".join(parts))
                shutil.rmtree(part_dir, ignore_errors=True)
                return self._send_json({})
            if action == "verify" and method == "POST":
                return self._send_json({})
            raise HubError(404, f"Not found: /_lfs/{'/'.join(segs)}")

        # -- downloads -------------------------------------------------------------------------------------------

        def _resolve(self, repo_type: str, repo_id: str, revision: str, path: str):
            repo = self._repo(repo_type, repo_id)
            commit = self._commit_of(repo, revision)
            entry = commit.files.get(path)
            if entry is None:
                raise HubError(404, "Entry not found", "EntryNotFound", {"X-Repo-Commit": commit.id})
            headers = {
                "X-Repo-Commit": commit.id,
                "Accept-Ranges": "bytes",
                "Content-Type": "application/octet-stream",
                "Content-Disposition": f"inline; filename*=UTF-8''{urllib.parse.quote(path.split('/')[-1])}",
                "Cache-Control": "private, max-age=0, must-revalidate",
            }
            if entry.sha256:
                headers.update(
                    {"ETag": f'"{entry.sha256}"', "X-Linked-Etag": f'"{entry.sha256}"', "X-Linked-Size": entry.size}
                )
            else:
                headers["ETag"] = f'"{entry.oid}"'
            size = entry.size
            start, end, status = 0, size - 1, 200
            if self.headers.get("Range"):  # the clients send `bytes=start-` or `bytes=start-end`
                first, last = re.fullmatch(r"\s*bytes=(\d+)-(\d*)\s*", self.headers["Range"]).groups()
                start, end, status = int(first), min(int(last), size - 1) if last else size - 1, 206
                headers["Content-Range"] = f"bytes {start}-{end}/{size}"
            length = max(0, end - start + 1)
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, str(value))
            self.send_header("Content-Length", str(length))
            self.end_headers()
            if self.command == "HEAD":
                return
            with open(server._blob_path(entry), "rb") as handle:
                handle.seek(start)
                self.wfile.write(handle.read(length))

    return Handler


def _header_value(value: Any) -> str:
    """A header value on one line, in ASCII (http.server encodes headers as latin-1)."""
    text = " ".join(str(value).split()) if isinstance(value, str) and ("\n" in value or "\r" in value) else str(value)
    return text.encode("ascii", "backslashreplace").decode("ascii")


def _looks_binary(sample: bytes) -> bool:
    """A file sample is binary if it holds a NUL byte or is not UTF-8 (a character cut at the end of the sample is
    allowed)."""
    if b"\0" in sample:
        return True
    for cut in range(4):
        try:
            sample[: len(sample) - cut].decode("utf-8")
            return False
        except UnicodeDecodeError:
            continue
    return True


class _ThreadingServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False


@contextlib.contextmanager
def serve_hub(
    root: Path, *, token: str = "hf_test_token", user: str = "tester", orgs: tuple[str, ...] = ()
) -> Iterator[HubServer]:
    """Run a look-alike Hub on ``127.0.0.1`` (free port) keeping its repositories under ``root``."""
    hub = HubServer(Path(root), token=token, user=user, orgs=orgs)
    httpd = _ThreadingServer(("127.0.0.1", 0), _make_handler(hub))
    hub.endpoint = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield hub
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


# ----------------------------------------------------------------------------------------------------------------------
# Client configuration
# ----------------------------------------------------------------------------------------------------------------------


def subprocess_env(server: HubServer, home: Path, *, offline: bool = False, base: dict | None = None) -> dict[str, str]:
    """Environment for a client process talking to ``server`` with its caches under ``home``."""
    env = dict(os.environ if base is None else base)
    for key in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_DATASETS_CACHE", "HF_TOKEN_PATH", "HF_XET_CACHE",
                "HF_ASSETS_CACHE", "HF_MODULES_CACHE", "TRANSFORMERS_CACHE", "HF_DATASETS_OFFLINE",
                "TRANSFORMERS_OFFLINE", "HUGGINGFACE_CO_STAGING", "HF_HUB_ENABLE_HF_TRANSFER"):
        env.pop(key, None)
    env.update(
        HF_ENDPOINT=server.endpoint,
        HF_TOKEN=server.token,
        HF_HOME=str(home),
        HF_HUB_DISABLE_XET="1",
        HF_HUB_DISABLE_TELEMETRY="1",
        HF_HUB_DISABLE_PROGRESS_BARS="1",
        HF_UPDATE_DOWNLOAD_COUNTS="0",
        HF_HUB_OFFLINE="1" if offline else "0",
        NO_PROXY="127.0.0.1,localhost",
        no_proxy="127.0.0.1,localhost",
    )
    return env


def _set(monkeypatch, module: Any, name: str, value: Any) -> None:
    if hasattr(module, name):  # some of the constants are missing from other versions the dependencies allow
        monkeypatch.setattr(module, name, value)


def hub_env(monkeypatch, server: HubServer, home: Path, *, dataset_viewer: bool = False) -> dict[str, str]:
    """Point the already-imported ``huggingface_hub``, ``transformers`` and ``datasets`` at ``server`` for one test.

    Sets the environment (as :func:`subprocess_env`) and patches the module constants the libraries computed at import
    time (listed in the module docstring); ``monkeypatch`` undoes everything at the end of the test. Returns the env.
    """
    import sys

    home = Path(home)
    home.mkdir(parents=True, exist_ok=True)
    env = subprocess_env(server, home, base={})
    for key in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_DATASETS_CACHE", "HF_TOKEN_PATH", "HF_XET_CACHE",
                "HF_ASSETS_CACHE", "HF_MODULES_CACHE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)

    from huggingface_hub import constants, hf_api
    from huggingface_hub.hf_file_system import HfFileSystem

    hub_cache = str(home / "hub")
    patches = {
        "ENDPOINT": server.endpoint,
        "HUGGINGFACE_CO_URL_TEMPLATE": server.endpoint + "/{repo_id}/resolve/{revision}/{filename}",
        "HF_URL_HOSTS": frozenset(constants.HF_URL_HOSTS | {"127.0.0.1"}),
        "HF_HOME": str(home),
        "HF_HUB_CACHE": hub_cache,
        "HUGGINGFACE_HUB_CACHE": hub_cache,
        "HF_ASSETS_CACHE": str(home / "assets"),
        "HF_XET_CACHE": str(home / "xet"),
        "HF_TOKEN_PATH": str(home / "token"),
        "HF_STORED_TOKENS_PATH": str(home / "stored_tokens"),
        "CHECK_FOR_UPDATE_DONE_PATH": str(home / ".check_for_update_done"),
        "CHECK_FOR_SKILL_UPDATE_DONE_PATH": str(home / ".check_for_skill_update_done"),
        "AGENT_HARNESSES_PATH": str(home / ".agent_harnesses.json"),
        "HF_HUB_DISABLE_XET": True,
        "HF_HUB_DISABLE_TELEMETRY": True,
        "HF_HUB_DISABLE_PROGRESS_BARS": True,
        "HF_HUB_OFFLINE": False,
    }
    for name, value in patches.items():
        _set(monkeypatch, constants, name, value)
    monkeypatch.setattr(hf_api.api, "endpoint", server.endpoint)
    HfFileSystem.clear_instance_cache()

    if "transformers" in sys.modules:
        import transformers.utils.hub as transformers_hub

        _set(monkeypatch, transformers_hub, "_hf_api", None)
        _set(monkeypatch, transformers_hub, "HF_MODULES_CACHE", str(home / "modules"))
        dynamic = sys.modules.get("transformers.dynamic_module_utils")
        if dynamic is not None:
            _set(monkeypatch, dynamic, "HF_MODULES_CACHE", str(home / "modules"))

    if "datasets" in sys.modules:
        import datasets.config as dconfig

        datasets_cache = home / "datasets"
        for name, value in {
            "HF_ENDPOINT": server.endpoint,
            "HUB_DATASETS_URL": server.endpoint + "/datasets/{repo_id}/resolve/{revision}/{path}",
            "HF_CACHE_HOME": str(home),
            "HF_DATASETS_CACHE": datasets_cache,
            "DOWNLOADED_DATASETS_PATH": datasets_cache / "downloads",
            "EXTRACTED_DATASETS_PATH": datasets_cache / "downloads" / "extracted",
            "HF_MODULES_CACHE": home / "modules",
            "HF_HUB_OFFLINE": False,
            "HF_DATASETS_OFFLINE": False,
            "USE_PARQUET_EXPORT": bool(dataset_viewer),
            "HF_UPDATE_DOWNLOAD_COUNTS": False,
        }.items():
            _set(monkeypatch, dconfig, name, value)
    return env


def hub_offline(monkeypatch) -> None:
    """Switch the already-imported libraries to offline mode (``HF_HUB_OFFLINE=1``) for the rest of the test."""
    import sys

    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    if "datasets" in sys.modules:
        import datasets.config as dconfig

        monkeypatch.setattr(dconfig, "HF_HUB_OFFLINE", True)
        _set(monkeypatch, dconfig, "HF_DATASETS_OFFLINE", True)


@pytest.fixture
def hub(tmp_path, monkeypatch) -> Iterator[HubServer]:
    """A running look-alike Hub with the in-process libraries pointed at it (caches under ``tmp_path/home``).

    The test fails if the process resolved any host name but ``HubServer.allowed_hosts`` (``127.0.0.1``): the
    clients must not reach out anywhere else. Lookups made by W&B code (a thread that an earlier test's W&B run
    left behind, or the logger's reachability probe) are not the Hub clients' and are not counted."""
    import socket
    import threading
    import traceback

    with serve_hub(tmp_path / "hub") as server:
        hub_env(monkeypatch, server, tmp_path / "home")
        original = socket.getaddrinfo

        def recording_getaddrinfo(host, *args, **kwargs):
            stack = traceback.extract_stack()
            by_wandb = threading.current_thread().name == "astromer-wandb-probe" or any(
                "/wandb/" in frame.filename for frame in stack)
            if not by_wandb:
                server.resolved_hosts.append(host.decode() if isinstance(host, bytes) else str(host))
            return original(host, *args, **kwargs)

        monkeypatch.setattr(socket, "getaddrinfo", recording_getaddrinfo)
        yield server
        monkeypatch.setattr(socket, "getaddrinfo", original)
    unexpected = sorted(set(server.resolved_hosts) - server.allowed_hosts)
    assert not unexpected, f"the clients looked up hosts other than the test hub: {unexpected}"
