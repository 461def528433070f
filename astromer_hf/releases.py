"""Named releases of the pretrained Astromer models, and how a name becomes a loadable folder.

``AutoModel.from_pretrained("astromer-base")`` (after ``import astromer_hf``) and
``AstromerModel.from_pretrained("astromer-base")`` resolve a release name to a ``save_pretrained`` folder:

1. a local folder of that name, if one exists (it wins, as for any model id);
2. the release's canonical Hugging Face Hub repo (``snapshot_download``: from the Hub cache when it holds it, so
   this works with ``HF_HUB_OFFLINE=1`` after one download);
3. the official release file the authors published (GitHub weights repository, Zenodo): downloaded (resumable,
   retried), checked against its published checksum, converted once with :func:`astromer_hf.convert_tf_checkpoint`
   and cached under ``$ASTROMER_HF_RELEASES`` (default ``~/.cache/astromer_hf/releases``), so later loads need no
   network.

If none of these gives the weights, a :class:`ReleaseNotFoundError` lists what was tried: random weights are never
returned in their place. ``astromer download NAME`` runs steps 2-3 ahead of time (air-gapped clusters).

Mirrors: ``ASTROMER_HF_RELEASE_MIRROR`` fetches every official file from ``<mirror>/<file name>`` instead of its
publisher (the checksum is still verified). It may be a plain folder path, a ``file://`` URL or an ``http(s)://`` URL;
a local mirror also works with ``HF_HUB_OFFLINE=1``, which is the offline route: copy the official file into a folder
and point the variable at it.
"""

from __future__ import annotations

import functools
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from .citations import CITATION_ASTROMER_1, CITATION_ASTROMER_2
from .hashing import file_digest

CHECKSUM_ALGORITHMS = ("sha256", "md5")


class ReleaseNotFoundError(OSError):
    """A release name could not be resolved to weights by any of the allowed routes."""


class CorruptedWeightsError(OSError):
    """A weights file is truncated or damaged; the message names it and says how to replace it."""


@dataclass(frozen=True)
class Release:
    """One released model.

    Args:
        name: the name users load (``"astromer-base"``).
        repo_id: its canonical Hugging Face Hub repo.
        url: the official release file (what the authors published).
        checksum: ``(algorithm, hex digest)`` of that file, ``algorithm`` in :data:`CHECKSUM_ALGORITHMS`.
        generation: ``"astromer-1"`` or ``"astromer-2"``.
        description: one paragraph for the model card.
        license: SPDX id.
        citation: BibTeX of the paper(s) to cite.
        aliases: other names of the same release.
        notes: provenance details (where the checksum comes from, what is unverified).
    """

    name: str
    repo_id: str
    url: str
    checksum: tuple[str, str]
    generation: str
    description: str
    license: str = "mit"
    citation: str = CITATION_ASTROMER_1
    aliases: tuple[str, ...] = ()
    notes: str = ""
    pretraining_data: tuple[str, ...] = ("MACHO",)

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1].split("?", 1)[0]


ASTROMER_1_MACHO = Release(
    name="astromer-1-macho",
    aliases=("astromer-base",),
    repo_id="astromer-science/astromer-1-macho",
    url="https://github.com/astromer-science/weights/raw/main/macho_a0.zip",
    checksum=("sha256", "76a204a37a0d47bfd722477f55231624c0c56cf9eea3369b5f22ff445d95158b"),
    generation="astromer-1",
    description=(
        "Astromer 1 pretrained on MACHO R-band light curves by masked reconstruction (Donoso-Oliva et al. 2023): "
        "2 attention blocks, 4 heads, width 256, 661,505 parameters. The weights the original ASTROMER Python "
        "package served as `macho` in the paper era."
    ),
    notes=(
        "`macho_a0.zip` of the authors' weights repository (git blob b0aee2f1b014199d80b7eddf2b8763805db2a07d, "
        "the former `macho.zip`, renamed on 2024-12-06); sha256 measured on that blob. Its conversion reproduces "
        "the original TensorFlow outputs (tested on 30 real light curves)."
    ),
)
ASTROMER_2_MACHO = Release(
    name="astromer-2-macho",
    repo_id="astromer-science/astromer-2-macho",
    url="https://zenodo.org/records/18207945/files/pt_macho_v2_2025.zip",
    checksum=("md5", "42dfac36992119f5c4364c83729f3111"),
    generation="astromer-2",
    citation=CITATION_ASTROMER_2 + "\n\n" + CITATION_ASTROMER_1,
    description=(
        "Astromer 2 pretrained on 1.5 million MACHO light curves (Donoso-Oliva et al. 2025): 6 attention blocks, "
        "4 heads of 64, feed-forward 512, projected residuals, key masking and a trainable [MASK] token; "
        "3,953,410 parameters."
    ),
    notes=(
        "`pt_macho_v2_2025.zip` of Zenodo record 10.5281/zenodo.18207945. The md5 is the one Zenodo lists for the "
        "file as recorded by a third-party tool card; it could not be checked from here, and neither could the "
        "checkpoint's layer names (the converter maps those of the Astromer 2 code)."
    ),
)
RELEASES: dict[str, Release] = {
    name: release for release in (ASTROMER_1_MACHO, ASTROMER_2_MACHO) for name in (release.name, *release.aliases)
}


def get_release(name: str) -> Release:
    """The release of a name or alias; ``KeyError`` naming the known ones otherwise."""
    if name not in RELEASES:
        raise KeyError(f"unknown Astromer release {name!r}; known: {sorted(RELEASES)}")
    return RELEASES[name]


def missing_release_file_hint(filename: str) -> str:
    """For a checkpoint file that is not there: where the official file of that name lives ("" for other names)."""
    for release in dict.fromkeys(RELEASES.values()):
        if release.filename == filename:
            algorithm, digest = release.checksum
            return (
                f" {filename} is the official file of the Astromer release {release.name}: download it from "
                f"{release.url} ({algorithm} {digest}), or let `astromer download {release.name}` fetch, check and "
                "convert it in one go."
            )
    return ""


def releases_dir() -> Path:
    """Where converted official releases are cached: ``$ASTROMER_HF_RELEASES`` or ``~/.cache/astromer_hf/releases``."""
    return Path(os.environ.get("ASTROMER_HF_RELEASES") or Path.home() / ".cache" / "astromer_hf" / "releases")


def converted_path(release: Release) -> Path:
    """The cache folder of a release's converted official file (named by its checksum)."""
    algorithm, digest = release.checksum
    return releases_dir() / release.name / f"{algorithm}-{digest[:16]}"


def _mirror() -> str | None:
    """``$ASTROMER_HF_RELEASE_MIRROR`` as a URL without a trailing slash (a plain folder path becomes ``file://``)."""
    mirror = os.environ.get("ASTROMER_HF_RELEASE_MIRROR", "").strip()
    if not mirror:
        return None
    if "://" not in mirror:
        return Path(mirror).expanduser().resolve().as_uri()
    return mirror.rstrip("/")


def official_url(release: Release) -> str:
    """The official file's URL, or its copy on ``$ASTROMER_HF_RELEASE_MIRROR`` (a folder path or a URL)."""
    mirror = _mirror()
    return f"{mirror}/{release.filename}" if mirror else release.url


def what_to_do_without_network(release: Release) -> str:
    """One paragraph: the ways to get a release onto a machine that cannot download it."""
    algorithm, digest = release.checksum
    return (
        f"To get {release.name} where there is no network: run `astromer download {release.name}` on a machine that "
        f"has network and copy its cache ({releases_dir()}, or the folder ASTROMER_HF_RELEASES names) to this one; or "
        f"put the official file {release.filename} ({release.url}, {algorithm} {digest}) in a folder and set "
        "ASTROMER_HF_RELEASE_MIRROR to that folder (a file:// or http(s):// URL of a copy works too), then load the "
        f"name again, also with HF_HUB_OFFLINE=1; or convert the file yourself with `astromer convert --from-tf "
        f"{release.filename} --out DIR` and load DIR."
    )


def _offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def safetensors_problem(path: str | os.PathLike[str]) -> str | None:
    """Why a ``.safetensors`` file cannot be loaded (truncated, damaged header ...), or None when its header and size
    are sound. Cheap: reads the header only."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), "np") as tensors:
            tensors.keys()
    except (SafetensorError, OSError) as error:
        return str(error)
    return None


def _weights_problem(folder: Path) -> tuple[Path, str] | None:
    """The first ``*.safetensors`` file of ``folder`` that cannot be loaded, with the reason."""
    for path in sorted(folder.glob("*.safetensors")):
        problem = safetensors_problem(path)
        if problem is not None:
            return path, problem
    return None


def _how_to_replace(path: Path) -> str:
    """What to do about a damaged weights file, depending on whose cache (if any) holds it."""
    from huggingface_hub import constants

    path = path.resolve()
    cache = releases_dir().resolve()
    if cache in path.parents:
        name = path.relative_to(cache).parts[0]
        return (
            f"It belongs to the cached conversion of the Astromer release {name}: run `astromer download {name}`, "
            f"which converts the official file again, or delete {path.parent}."
        )
    hub_cache = Path(constants.HF_HUB_CACHE).resolve()
    if hub_cache in path.parents:
        repo = hub_cache / path.relative_to(hub_cache).parts[0]
        return (
            f"It is a file of the Hugging Face cache: delete {repo} (or load with force_download=True) so that it is "
            "downloaded again."
        )
    return (
        f"Write {path.parent} again where it came from (`astromer convert`, `save_pretrained`, a fresh copy), or "
        "delete it."
    )


def fetch_official(release: Release, *, progress: bool = True, repair: bool = False) -> Path:
    """Download (or reuse) the official file, verify its checksum, convert it once; the converted folder.

    A cached conversion whose weights file is truncated or damaged is converted again when ``repair`` is set (what
    ``astromer download`` does); otherwise it raises, naming the file and how to replace it.

    Raises:
        ReleaseNotFoundError: offline with nothing cached, the cached conversion is damaged (without ``repair``), or the
            download failed (the URL is named).
        astromer_hf.data.download.ChecksumError: the file does not have the published checksum (nothing is cached).
    """
    from .convert.convert_tf_checkpoint import convert_tf_checkpoint
    from .data.download import ChecksumError, DownloadError, download_file

    target = converted_path(release)
    if (target / "config.json").is_file():
        damaged = _weights_problem(target)
        if damaged is None:
            return target
        path, problem = damaged
        if not repair:
            raise ReleaseNotFoundError(
                f"{release.name}: the cached conversion {path} is truncated or damaged ({problem}). "
                + _how_to_replace(path)
            )
        shutil.rmtree(target)  # the release cache is this package's own folder
    if _offline() and not official_url(release).startswith("file:"):
        raise ReleaseNotFoundError(
            f"{release.name}: HF_HUB_OFFLINE is set and the converted release is not cached at {target}; run "
            f"`astromer download {release.name}` once with network access"
        )
    algorithm, expected = release.checksum
    url = official_url(release)
    # A call that fails part-way leaves its `.part` here, and the next call resumes it.
    destination = releases_dir() / "downloads" / release.name / release.filename
    try:
        download_file(url, destination, sha256=expected if algorithm == "sha256" else None, progress=progress)
    except ChecksumError:
        raise  # the file is not the release: say so, never fall back
    except DownloadError as error:
        raise ReleaseNotFoundError(f"{release.name}: downloading the official file failed: {error}") from error
    try:
        if algorithm != "sha256":
            actual = file_digest(destination, algorithm)
            if actual != expected:
                raise ChecksumError(url, f"{algorithm}:{expected}", f"{algorithm}:{actual}")
        convert_tf_checkpoint(destination, target, overwrite=True)  # written beside `target`, renamed when complete
    finally:
        shutil.rmtree(destination.parent)  # the converted folder is the cache; a refused file is not kept
    return target


def resolve_release(
    name: str, *, revision: str | None = None, token: str | bool | None = None, repair: bool = False
) -> Path:
    """A local ``save_pretrained`` folder holding release ``name`` (see the module docstring for the order); with
    ``repair``, a damaged cached conversion is converted again (see :func:`fetch_official`)."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, RepositoryNotFoundError

    release = get_release(name)
    tried: list[str] = []
    try:
        folder = Path(snapshot_download(release.repo_id, revision=revision, token=token))
        if repair and _weights_problem(folder) is not None:
            folder = Path(snapshot_download(release.repo_id, revision=revision, token=token, force_download=True))
        return folder
    except (RepositoryNotFoundError, LocalEntryNotFoundError, HfHubHTTPError, OSError) as error:
        tried.append(f"hub repo {release.repo_id}: {type(error).__name__}: {str(error).splitlines()[0]}")
    try:
        return fetch_official(release, repair=repair)
    except ReleaseNotFoundError as error:
        tried.append(f"official file {official_url(release)}: {error}")
    raise ReleaseNotFoundError(
        f"could not load Astromer release {name!r}:\n  - " + "\n  - ".join(tried) + "\n\n"
        + what_to_do_without_network(release)
    )


def resolve_name_or_path(name_or_path, **hub_kwargs):
    """``name_or_path`` unchanged unless it is a release name that is not a local path; then its resolved folder."""
    if isinstance(name_or_path, str) and name_or_path in RELEASES and not os.path.exists(name_or_path):
        token = hub_kwargs.get("token")
        return str(resolve_release(name_or_path, revision=hub_kwargs.get("revision"), token=token))
    return name_or_path


def _from_safetensors(error: BaseException) -> bool:
    """Whether ``error`` (or what caused it) is safetensors refusing a file."""
    from safetensors import SafetensorError

    while error is not None:
        if isinstance(error, SafetensorError) or "Error while deserializing header" in str(error):
            return True
        error = error.__cause__ or error.__context__
    return False


def _damaged_weights_message(name_or_path, error: BaseException, revision: str | None) -> str:
    """Which weights file of ``name_or_path`` (a folder or a Hub id) is damaged, and how to replace it."""
    candidates: list[Path] = []
    if os.path.isdir(name_or_path):
        candidates = sorted(Path(name_or_path).glob("*.safetensors"))
    elif isinstance(name_or_path, str):
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(name_or_path, "model.safetensors", revision=revision)
        candidates = [Path(cached)] if isinstance(cached, str) else []
    for path in candidates:
        problem = safetensors_problem(path)
        if problem is not None:
            return f"{path} is truncated or damaged ({problem}). " + _how_to_replace(path)
    return f"The weights of {name_or_path} cannot be read: {error}"


def _resolving(method):
    """Wrap a ``from_pretrained`` classmethod so that its first argument may be a release name."""
    function = method.__func__

    @functools.wraps(function)
    def from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs):
        path = resolve_name_or_path(pretrained_model_name_or_path, **kwargs)
        if path is not pretrained_model_name_or_path:
            kwargs.pop("revision", None)  # the revision was used to resolve the name
        try:
            return function(cls, path, *args, **kwargs)
        except Exception as error:
            if not _from_safetensors(error):
                raise
            raise CorruptedWeightsError(_damaged_weights_message(path, error, kwargs.get("revision"))) from error

    from_pretrained.__astromer_release_names__ = True
    return classmethod(from_pretrained)


def install_release_names(*classes) -> None:
    """Let ``cls.from_pretrained`` of each class accept release names (idempotent)."""
    for cls in classes:
        current = cls.__dict__.get("from_pretrained")
        if current is None:
            current = classmethod(cls.from_pretrained.__func__)
        if getattr(current.__func__, "__astromer_release_names__", False):
            continue
        setattr(cls, "from_pretrained", _resolving(current))
