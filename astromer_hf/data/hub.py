"""Prepared survey datasets on the Hugging Face Hub.

``push_dataset_to_hub("data/alcock", "org/alcock")`` uploads the train / validation / test splits of a folder written
by ``astromer data prepare`` (Parquet shards, features including the ``ClassLabel`` and float64 times), its cleaning
report as ``cleaning_report.json`` and a dataset card; ``load_dataset_from_hub("org/alcock")`` returns the same
`DatasetDict` with the cleaning report back in each split's ``info`` (where :func:`~astromer_hf.data.builder.cleaning_report`
reads it). ``datasets.load_dataset("org/alcock")`` works too, without the report.
"""

from __future__ import annotations

import json
from pathlib import Path

from datasets import DatasetDict, load_dataset, load_from_disk
from huggingface_hub import DatasetCard, HfApi, hf_hub_download

from .builder import REPORT_MARKER, cleaning_report

REPORT_FILE = "cleaning_report.json"


def _card(splits: DatasetDict, repo_id: str, report: dict, token: str | None) -> DatasetCard:
    first = next(iter(splits.values()))
    surveys = sorted(set(first.unique("survey"))) if "survey" in first.column_names and len(first) else []
    label = first.features.get("label")
    classes = ", ".join(getattr(label, "names", []) or []) or "none"
    counts = "\n".join(f"| {name} | {len(split):,} |" for name, split in splits.items())
    # `push_to_hub` wrote a card whose front matter (`dataset_info`, `configs`) describes the features and splits:
    # keep it, and add ours.
    card = DatasetCard.load(repo_id, repo_type="dataset", token=token)
    card.data.license = "other"
    card.data.tags = sorted({*(card.data.get("tags") or []), "astronomy", "light-curves", "time-series", "astromer"})
    card.data.pretty_name = repo_id.split("/")[-1]
    card.text = f"""# {repo_id.split("/")[-1]}

Light curves from {", ".join(surveys) or "a survey"} in the astromer_hf schema: one row per object and band with
`object_id`, `survey`, `band`, `time` (float64 days, MJD), `mag`, `mag_err`, `label`, `ra`, `dec`, `n_obs` and survey
metadata. Classes: {classes}. Prepared with `astromer data prepare`; the license of the data is the survey's own.

| split | curves |
|---|---|
{counts}

## Cleaning

Each rule of the cleaning (finite values, 0 < err < max, sorted times, no repeated times, a minimum length) is counted
per split in `{REPORT_FILE}`:

```json
{json.dumps(report, indent=2, sort_keys=True)}
```

## Use

```python
from astromer_hf.data.hub import load_dataset_from_hub
splits = load_dataset_from_hub("{repo_id}")          # or datasets.load_dataset("{repo_id}")
```
"""
    return card


def push_dataset_to_hub(
    path: str | Path, repo_id: str, *, private: bool | None = None, token: str | None = None,
    commit_message: str | None = None,
) -> str:
    """Push a prepared dataset folder to dataset repo ``repo_id``; returns the repo id."""
    path = Path(path)
    splits = load_from_disk(str(path))
    if not isinstance(splits, DatasetDict):
        raise ValueError(f"{path} holds one split; expected the DatasetDict written by `astromer data prepare`")
    report_file = path / REPORT_FILE
    report = json.loads(report_file.read_text()) if report_file.is_file() else cleaning_report(
        next(iter(splits.values())).info
    )
    splits.push_to_hub(repo_id, private=private, token=token, commit_message=commit_message)
    api = HfApi(token=token)
    api.upload_file(
        path_or_fileobj=json.dumps(report, indent=2, sort_keys=True).encode(),
        path_in_repo=REPORT_FILE,
        repo_id=repo_id,
        repo_type="dataset",
        commit_message="Cleaning report",
    )
    _card(splits, repo_id, report, token).push_to_hub(repo_id, repo_type="dataset", token=token,
                                               commit_message="Dataset card")
    return repo_id


def load_dataset_from_hub(repo_id: str, *, revision: str | None = None, token: str | None = None) -> DatasetDict:
    """``datasets.load_dataset(repo_id)`` with the cleaning report restored into every split's ``info``."""
    splits = load_dataset(repo_id, revision=revision, token=token)
    report_path = hf_hub_download(repo_id, REPORT_FILE, repo_type="dataset", revision=revision, token=token)
    report = json.loads(Path(report_path).read_text())
    for split in splits.values():
        split.info.description = f"{split.info.description or ''}\n{REPORT_MARKER}{json.dumps(report, sort_keys=True)}"
    return splits
