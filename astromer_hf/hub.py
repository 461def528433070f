"""Publishing Astromer models on the Hugging Face Hub: folders with real model cards, and the named releases.

``model.push_to_hub("org/name")`` on any Astromer model uploads ``config.json``, ``model.safetensors``, the modeling
code (so ``trust_remote_code=True`` works without astromer_hf), the processor configuration when given, and a model
card rendered by :func:`astromer_hf.model_card.render_model_card`. The token comes from ``token=`` or the
environment (``HF_TOKEN``, ``huggingface-cli login``); it is never printed or logged.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from huggingface_hub import CommitInfo, HfApi, ModelCard

from .model_card import card_for_folder
from .releases import get_release, resolve_release


def push_folder_to_hub(
    folder: str | Path,
    repo_id: str,
    *,
    card: ModelCard | None = None,
    private: bool | None = None,
    revision: str | None = None,
    commit_message: str | None = None,
    token: str | None = None,
    create_pr: bool = False,
) -> CommitInfo:
    """Upload a ``save_pretrained`` folder (with ``card`` as its ``README.md``; by default the card of
    :func:`~astromer_hf.model_card.card_for_folder`) to model repo ``repo_id``, creating the repo (``private`` if
    asked) and the branch ``revision`` when they do not exist yet.

    Returns:
        The commit (``commit_url``, ``oid``).
    """
    folder = Path(folder)
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"{folder} is not a save_pretrained folder (no config.json)")
    api = HfApi(token=token)
    repo_id = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model").repo_id
    if revision not in (None, "main"):
        api.create_branch(repo_id, branch=revision, exist_ok=True, repo_type="model")
    card = card if card is not None else card_for_folder(folder, repo_id=repo_id)
    with tempfile.TemporaryDirectory(prefix="astromer-push-") as scratch:
        staged = Path(scratch) / "upload"
        shutil.copytree(folder, staged, ignore=shutil.ignore_patterns(".*", "__pycache__"))
        card.save(staged / "README.md")
        return api.upload_folder(
            folder_path=staged,
            repo_id=repo_id,
            repo_type="model",
            revision=revision,
            commit_message=commit_message or f"Upload {card.data.model_name or repo_id} with astromer_hf",
            create_pr=create_pr,
        )


def push_model_to_hub(
    model,
    repo_id: str,
    *,
    processor=None,
    metrics: Mapping[str, float] | None = None,
    private: bool | None = None,
    revision: str | None = None,
    commit_message: str | None = None,
    token: str | None = None,
    create_pr: bool = False,
    **card_kwargs: Any,
) -> CommitInfo:
    """Save ``model`` (and ``processor``) to a temporary folder and push it with its model card.

    ``metrics`` (``{"val/rmse": ..., "test/f1_macro": ...}``) and ``card_kwargs`` (``title``, ``description``,
    ``training``, ``datasets``, ``base_model`` ...) go to :func:`~astromer_hf.model_card.render_model_card`.
    """
    with tempfile.TemporaryDirectory(prefix="astromer-save-") as scratch:
        folder = Path(scratch)
        model.save_pretrained(folder)
        if processor is not None:
            processor.save_pretrained(folder)
        if metrics is not None:
            card_kwargs["metrics"] = metrics
        card = card_for_folder(folder, repo_id=repo_id, **card_kwargs)
        return push_folder_to_hub(
            folder, repo_id, card=card, private=private, revision=revision, commit_message=commit_message,
            token=token, create_pr=create_pr,
        )


def release_card(name: str, folder: str | Path, repo_id: str) -> ModelCard:
    """The card of a converted official release: the release's description, provenance and citation."""
    release = get_release(name)
    folder = Path(folder)
    converted = (folder / "README.md").read_text() if (folder / "README.md").is_file() else ""
    provenance_start = converted.find("## Provenance")
    provenance = converted[provenance_start:].split("\n## ", 2)[0].removeprefix("## Provenance").strip() \
        if provenance_start >= 0 else ""
    algorithm, digest = release.checksum
    provenance = (
        f"Converted without retraining from the official release file `{release.filename}` ({release.url}), "
        f"{algorithm} `{digest}`, with `astromer convert`. {release.notes}\n\n{provenance}"
    ).strip()
    return card_for_folder(
        folder,
        repo_id=repo_id,
        title=f"{release.name} ({'Astromer 1' if release.generation == 'astromer-1' else 'Astromer 2'}, "
        f"pretrained on {', '.join(release.pretraining_data)})",
        description=release.description + (f" Also known as {', '.join(release.aliases)}." if release.aliases else ""),
        provenance=provenance,
        license=release.license,
        training=f"Pretrained by the Astromer authors on {', '.join(release.pretraining_data)} light curves by masked "
        "reconstruction (spec: 50 % of each window probed; 20 % of those left visible, 20 % of the rest replaced by "
        "random magnitudes of the window; loss: masked RMSE).",
        extra_tags=("pretrained", "converted-from-tensorflow"),
    )


def publish_release(
    name: str, repo_id: str | None = None, *, private: bool | None = None, revision: str | None = None,
    token: str | None = None,
) -> CommitInfo:
    """Convert a named release's official file (or reuse its cache) and push it with its card to ``repo_id``
    (default: the release's canonical repo), for the maintainers who publish the canonical repos."""
    from .releases import fetch_official

    release = get_release(name)
    folder = fetch_official(release)
    repo_id = repo_id or release.repo_id
    return push_folder_to_hub(
        folder, repo_id, card=release_card(name, folder, repo_id), private=private, revision=revision,
        token=token, commit_message=f"Publish {release.name} converted from {release.filename}",
    )


def download_release(name: str, *, revision: str | None = None, token: str | None = None) -> Path:
    """Fetch and cache a named release ahead of time; the folder ``from_pretrained(name)`` will then load offline. A
    cached copy whose weights file is damaged is fetched again."""
    return resolve_release(name, revision=revision, token=token, repair=True)
