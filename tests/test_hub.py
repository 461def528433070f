"""Hub integration against a Hub look-alike on 127.0.0.1 (tests/hub_server.py), with the unmodified clients:
push a trained model with its card and load it back in a fresh process, the training callback, the releases
published and then loaded from the Hub (also offline), datasets round-tripped."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
import yaml
from huggingface_hub import HfApi, ModelCard

import astromer_hf
from astromer_hf import AstromerConfig, AstromerForMaskedReconstruction, AstromerProcessor
from astromer_hf.training import AstromerDataModule, AstromerPretraining, PushToHubCallback, SavePretrainedCallback
from blocked_package import BLOCK_ASTROMER_HF
from hub_server import hub, hub_offline, serve_hub, subprocess_env  # noqa: F401  (fixture)

TINY = {"hidden_size": 16, "num_attention_heads": 2, "intermediate_size": 16, "window_size": 32}
CARD_SECTIONS = ("## Model", "## Intended use and limits", "## Evaluation results", "## How to load and embed",
                 "## Citation", "## Training data and recipe")

OUTPUTS = textwrap.dedent(
    """
    import sys, torch, astromer_hf
    from transformers import AutoModel
    model = AutoModel.from_pretrained(sys.argv[1], **({"revision": sys.argv[3]} if len(sys.argv) > 3 else {})).eval()
    torch.manual_seed(0)
    magnitudes, times = torch.randn(3, 32), torch.randn(3, 32).cumsum(1)
    with torch.no_grad():
        torch.save(model(magnitudes, times).last_hidden_state, sys.argv[2])
    """
)


#: The same, in a process where astromer_hf cannot be imported: the repo's own code is used (trust_remote_code).
REMOTE_CODE_OUTPUTS = BLOCK_ASTROMER_HF + textwrap.dedent(
    """
    import torch
    from transformers import AutoModel
    model = AutoModel.from_pretrained(sys.argv[1], trust_remote_code=True).eval()
    assert "astromer_hf" not in sys.modules
    torch.manual_seed(0)
    magnitudes, times = torch.randn(3, 32), torch.randn(3, 32).cumsum(1)
    with torch.no_grad():
        torch.save(model(magnitudes, times).last_hidden_state, sys.argv[2])
    """
)


def _outputs(name_or_path, out: Path, env: dict, revision: str | None = None, script: str = OUTPUTS) -> torch.Tensor:
    args = [sys.executable, "-c", script, str(name_or_path), str(out), *([revision] if revision else [])]
    result = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]
    return torch.load(out)


@pytest.fixture(scope="module")
def trained_folder(tmp_path_factory) -> Path:
    """The best folder of a short real training run (SavePretrainedCallback: weights, processor, metrics, card)."""
    from astromer_hf.data.prepare import prepare_dataset

    root = tmp_path_factory.mktemp("trained")
    prepare_dataset("synthetic", root / "data", config="ztf", n_curves=80, seed=4)
    pl.seed_everything(0)
    saver = SavePretrainedCallback(dirpath=str(root / "pretrained"))
    trainer = pl.Trainer(max_epochs=2, accelerator="cpu", logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, callbacks=[saver])
    trainer.fit(AstromerPretraining(config_overrides=TINY), AstromerDataModule(path=str(root / "data"), batch_size=16))
    return saver.best_path


def _card_checks(card: ModelCard, metrics: dict) -> None:
    text = str(card)
    for section in CARD_SECTIONS:
        assert section in text, section
    data = card.data.to_dict()
    assert data["license"] == "mit" and data["library_name"] == "transformers"
    assert {"astronomy", "light-curves", "astromer"} <= set(data["tags"])
    results = {(r.dataset_split, r.metric_type): r.metric_value for r in card.data.eval_results}
    assert results[("validation", "rmse")] == pytest.approx(metrics["val/rmse"], abs=1e-6)
    assert results[("validation", "r_squared")] == pytest.approx(metrics["val/r2"], abs=1e-6)
    assert "@article{donoso2023astromer" in text and "@software{astromer_hf" in text


def test_a_trained_folder_pushed_with_the_cli_loads_back_identically_in_a_fresh_process(hub, trained_folder, tmp_path):
    env = subprocess_env(hub, tmp_path / "pusher")
    result = subprocess.run([sys.executable, "-m", "astromer_hf", "push", str(trained_folder), "--repo-id",
                             "tester/astromer-tiny", "--private", "--commit-message", "First run"],
                            env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert hub.token not in result.stdout + result.stderr  # the token is never printed

    files = hub.files("tester/astromer-tiny")
    assert {"config.json", "model.safetensors", "preprocessor_config.json", "modeling_astromer.py",
            "training_metrics.json", "README.md"} <= set(files)
    assert hub.get_repo("tester/astromer-tiny").private
    card = ModelCard(files["README.md"].decode())
    _card_checks(card, json.loads((trained_folder / "training_metrics.json").read_text())["metrics"])

    local = _outputs(trained_folder, tmp_path / "local.pt", env)
    remote = _outputs("tester/astromer-tiny", tmp_path / "remote.pt", subprocess_env(hub, tmp_path / "fresh"))
    assert torch.equal(local, remote)
    without_package = _outputs("tester/astromer-tiny", tmp_path / "remote-code.pt",
                               subprocess_env(hub, tmp_path / "no-package"), script=REMOTE_CODE_OUTPUTS)
    assert torch.equal(local, without_package)
    anonymous = {**subprocess_env(hub, tmp_path / "anon"), "HF_TOKEN": ""}
    failed = subprocess.run([sys.executable, "-c", OUTPUTS, "tester/astromer-tiny", str(tmp_path / "x.pt")],
                            env=anonymous, capture_output=True, text=True, timeout=300)
    assert failed.returncode != 0  # private


def test_model_push_to_hub_writes_a_card_on_a_branch(hub, tmp_path):
    model = AstromerForMaskedReconstruction(AstromerConfig(**TINY))
    processor = AstromerProcessor.from_model_config(model.config)
    metrics = {"val/rmse": 0.2468, "val/r2": 0.5, "test/rmse": 0.25}
    commit = model.push_to_hub("tester/branchy", processor=processor, metrics=metrics, revision="v1",
                               commit_message="Branch upload", datasets=["tester/macho-r"])
    assert commit.oid
    files = hub.files("tester/branchy", revision="v1")
    assert "preprocessor_config.json" in files and "README.md" in files
    card = ModelCard(files["README.md"].decode())
    _card_checks(card, metrics)
    assert card.data.datasets == ["tester/macho-r"]
    assert "tester/branchy" in str(card)  # the loading example names the repo
    commits = HfApi().list_repo_commits("tester/branchy", revision="v1")
    assert commits[0].title == "Branch upload"
    loaded = AstromerForMaskedReconstruction.from_pretrained("tester/branchy", revision="v1")
    for name, value in model.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[name]), name


def test_the_training_callback_pushes_the_best_model_with_its_metrics(hub, tmp_path):
    from astromer_hf.data.prepare import prepare_dataset

    prepare_dataset("synthetic", tmp_path / "data", config="ztf", n_curves=60, seed=5)
    saver = SavePretrainedCallback(dirpath=str(tmp_path / "pretrained"))
    pusher = PushToHubCallback("tester/during-training", every_n_epochs=1, private=True)
    trainer = pl.Trainer(max_epochs=2, accelerator="cpu", logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, callbacks=[saver, pusher])
    trainer.fit(AstromerPretraining(config_overrides=TINY), AstromerDataModule(path=str(tmp_path / "data"),
                                                                                 batch_size=16))
    assert 1 <= len(pusher.commits) <= 2  # pushed when the best improved, never twice for one epoch
    best = json.loads((saver.best_path / "training_metrics.json").read_text())
    files = hub.files("tester/during-training")
    assert json.loads(files["training_metrics.json"]) == best
    card = ModelCard(files["README.md"].decode())
    _card_checks(card, best["metrics"])
    assert "AstromerPretraining" in str(card)  # the training recipe
    with pytest.raises(ValueError, match="namespace/name"):
        PushToHubCallback("no-namespace")


def test_a_published_release_is_loaded_from_the_hub_then_offline(tmp_path, monkeypatch, archive, reference_dir):
    archive.files["/macho_a0.zip"] = (reference_dir / "macho_a0.zip").read_bytes()
    monkeypatch.setenv("ASTROMER_HF_RELEASE_MIRROR", archive.base_url)
    monkeypatch.setenv("ASTROMER_HF_RELEASES", str(tmp_path / "maintainer-cache"))
    with serve_hub(tmp_path / "hub", orgs=("astromer-science",)) as server:
        from hub_server import hub_env

        hub_env(monkeypatch, server, tmp_path / "maintainer")
        from astromer_hf.hub import publish_release

        publish_release("astromer-1-macho")
        files = server.files("astromer-science/astromer-1-macho")
        card = ModelCard(files["README.md"].decode())
        assert "76a204a37a0d47bfd722477f55231624c0c56cf9eea3369b5f22ff445d95158b" in str(card)
        assert "## Provenance" in str(card) and "661,505 parameters" in str(card)
        assert archive.count("/macho_a0.zip") == 1

        # a user: nothing cached, no mirror; the canonical repo serves the name
        user = {k: v for k, v in subprocess_env(server, tmp_path / "user").items()
                if k != "ASTROMER_HF_RELEASE_MIRROR"}
        user["ASTROMER_HF_RELEASES"] = str(tmp_path / "user-releases")
        online = _outputs("astromer-base", tmp_path / "online.pt", user)
        reference = _outputs(tmp_path / "maintainer-cache" / "astromer-1-macho" / next(
            p.name for p in (tmp_path / "maintainer-cache" / "astromer-1-macho").iterdir() if not p.name.startswith(".")
        ), tmp_path / "ref.pt", user)
        assert torch.equal(online, reference)
        assert archive.count("/macho_a0.zip") == 1 and not (tmp_path / "user-releases" / "astromer-1-macho").exists()
    # the server is gone: offline, from the Hub cache
    offline = _outputs("astromer-base", tmp_path / "offline.pt", {**user, "HF_HUB_OFFLINE": "1"})
    assert torch.equal(offline, online)


def test_a_prepared_dataset_round_trips_with_features_splits_and_report(hub, tmp_path):
    import datasets

    from astromer_hf.data.builder import cleaning_report
    from astromer_hf.data.hub import load_dataset_from_hub, push_dataset_to_hub
    from astromer_hf.data.prepare import prepare_dataset

    local = prepare_dataset("synthetic", tmp_path / "prepared", config="ogle", n_curves=50, seed=6)
    push_dataset_to_hub(tmp_path / "prepared", "tester/synthetic-ogle", private=True)
    files = hub.files("tester/synthetic-ogle", repo_type="dataset")
    assert "cleaning_report.json" in files and "README.md" in files
    card_data = yaml.safe_load(files["README.md"].decode().split("---")[1])
    assert "dataset_info" in card_data or "configs" in card_data

    remote = load_dataset_from_hub("tester/synthetic-ogle")
    assert list(remote) == list(local)
    for name in local:
        assert remote[name].features == local[name].features
        assert remote[name].features["time"].feature.dtype == "float64"
        assert json.dumps(remote[name].to_dict()) == json.dumps(local[name].to_dict())
    report = json.loads((tmp_path / "prepared" / "cleaning_report.json").read_text())
    assert cleaning_report(remote["train"].info) == report
    plain = datasets.load_dataset("tester/synthetic-ogle")
    assert plain["test"].num_rows == local["test"].num_rows
