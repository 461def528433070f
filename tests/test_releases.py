"""Named releases: ``from_pretrained("astromer-base")`` converts the official file once (served on 127.0.0.1 in its
real format), caches it, reproduces the original TensorFlow outputs, and then loads with ``HF_HUB_OFFLINE=1``; a
wrong checksum is refused with nothing cached; a dropped connection is resumed."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

import astromer_hf
from astromer_hf import AstromerModel
from astromer_hf.data.download import ChecksumError
from astromer_hf.releases import (
    RELEASES,
    ReleaseNotFoundError,
    converted_path,
    fetch_official,
    get_release,
    resolve_name_or_path,
)
from fault_server import Fault

ROOT = Path(__file__).resolve().parents[1]


def _dead_port() -> int:
    with socket.socket() as sock:  # nothing listens there once this socket is closed
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def release_env(tmp_path, monkeypatch, archive, reference_dir):
    """The official zip on a loopback mirror; an empty Hub at a dead address; private caches."""
    archive.files["/macho_a0.zip"] = (reference_dir / "macho_a0.zip").read_bytes()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING", "ASTROMER_"))}
    env.update(
        HF_ENDPOINT=f"http://127.0.0.1:{_dead_port()}",
        HF_HOME=str(tmp_path / "hf"),
        HF_HUB_DISABLE_XET="1",
        HF_HUB_ETAG_TIMEOUT="2",
        ASTROMER_HF_RELEASES=str(tmp_path / "releases"),
        ASTROMER_HF_RELEASE_MIRROR=archive.base_url,
        NO_PROXY="127.0.0.1,localhost",
    )
    for name in ("ASTROMER_HF_RELEASES", "ASTROMER_HF_RELEASE_MIRROR"):
        monkeypatch.setenv(name, env[name])
    return env


EMBED = textwrap.dedent(
    """
    import sys, numpy as np, torch
    import astromer_hf
    from transformers import AutoConfig, AutoModel
    reference = np.load(sys.argv[1])
    model = AutoModel.from_pretrained("astromer-base").eval()
    same = astromer_hf.AstromerModel.from_pretrained("astromer-1-macho")
    assert AutoConfig.from_pretrained("astromer-base").num_hidden_layers == 2
    assert astromer_hf.AstromerProcessor.from_pretrained("astromer-base").window_size == 200
    with torch.no_grad():
        out = model(torch.from_numpy(reference["win_mag"]), torch.from_numpy(reference["win_times"]),
                    attention_mask=torch.from_numpy(1 - reference["win_mask_in"]).long())
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), same.state_dict().values()))
    np.save(sys.argv[2], out.last_hidden_state.numpy())
    """
)


def _embed(env, reference_dir, out: Path, **extra_env) -> np.ndarray:
    result = subprocess.run(
        [sys.executable, "-c", EMBED, str(reference_dir / "astromer1_macho_reference.npz"), str(out)],
        env={**env, **extra_env}, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return np.load(out)


def test_astromer_base_is_the_converted_official_release_and_then_loads_offline(
    release_env, reference_dir, reference, archive, tmp_path
):
    online = _embed(release_env, reference_dir, tmp_path / "online.npy")
    assert archive.count("/macho_a0.zip") == 1
    # parity with the original TensorFlow model, as for a manual conversion (issue A's tolerances)
    index, lengths = reference["emb_idx"], reference["win_length"][reference["emb_idx"]]
    real = np.arange(online.shape[1])[None, :] < lengths[:, None]
    ours, theirs = online[index][real].astype(np.float64), reference["emb"][real].astype(np.float64)
    cosine = (ours * theirs).sum(1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(theirs, axis=1)
    assert cosine.min() >= 0.99999 and np.abs(ours - theirs).max() <= 5e-3

    cached = converted_path(get_release("astromer-base"))
    assert (cached / "model.safetensors").is_file() and (cached / "preprocessor_config.json").is_file()
    card = (cached / "README.md").read_text()
    assert "76a204a37a0d47bfd722477f55231624c0c56cf9eea3369b5f22ff445d95158b" in card

    # a fresh process, offline, the mirror gone: the cache serves it, bit for bit
    offline_env = {k: v for k, v in release_env.items() if k != "ASTROMER_HF_RELEASE_MIRROR"}
    offline = _embed(offline_env, reference_dir, tmp_path / "offline.npy", HF_HUB_OFFLINE="1")
    np.testing.assert_array_equal(offline, online)
    assert archive.count("/macho_a0.zip") == 1


def test_astromer_download_caches_a_release_ahead_of_time(release_env, archive):
    result = subprocess.run([sys.executable, "-m", "astromer_hf", "download", "astromer-base"], env=release_env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    folder = converted_path(get_release("astromer-base"))
    assert str(folder) in result.stdout and "HF_HUB_OFFLINE=1" in result.stdout
    assert json.loads((folder / "config.json").read_text())["model_type"] == "astromer"
    # already cached: nothing downloaded again
    assert fetch_official(get_release("astromer-1-macho")) == folder and archive.count("/macho_a0.zip") == 1


def test_a_wrong_checksum_is_refused_and_nothing_is_cached(release_env, archive):
    data = bytearray(archive.files["/macho_a0.zip"])
    data[1000] ^= 0xFF
    archive.files["/macho_a0.zip"] = bytes(data)
    release = get_release("astromer-base")
    with pytest.raises(ChecksumError, match="macho_a0.zip"):
        fetch_official(release, progress=False)
    assert not converted_path(release).exists()
    downloads = Path(release_env["ASTROMER_HF_RELEASES"]) / "downloads"
    assert not [p for p in downloads.rglob("*") if p.is_file()]


def test_a_dropped_connection_is_resumed(release_env, archive):
    archive.faults["/macho_a0.zip"] = Fault(drop_after=100_000, times=1)
    folder = fetch_official(get_release("astromer-base"), progress=False)
    assert (folder / "model.safetensors").is_file()
    assert archive.ranges("/macho_a0.zip") == [None, "bytes=100000-"]


def test_a_failed_call_is_resumed_by_the_next_one(release_env, archive):
    # the first call: cut after 100 kB, then the server fails every retry
    archive.faults["/macho_a0.zip"] = [Fault(drop_after=100_000), *[Fault(status=500)] * 3]
    release = get_release("astromer-base")
    with pytest.raises(ReleaseNotFoundError, match="downloading the official file failed"):
        fetch_official(release, progress=False)
    assert not converted_path(release).exists()
    folder = fetch_official(release, progress=False)  # the next call asks only for the missing bytes
    assert (folder / "model.safetensors").is_file()
    assert archive.ranges("/macho_a0.zip")[-1] == "bytes=100000-"
    assert not (Path(release_env["ASTROMER_HF_RELEASES"]) / "downloads" / release.name).exists()  # zip not kept


def test_a_server_error_is_reported_with_the_url(release_env, archive):
    archive.faults["/macho_a0.zip"] = Fault(status=404)
    with pytest.raises(ReleaseNotFoundError, match=r"macho_a0\.zip"):
        fetch_official(get_release("astromer-base"), progress=False)


def test_offline_without_a_cache_says_how_to_get_the_release(release_env, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ReleaseNotFoundError, match="astromer download astromer-2-macho"):
        fetch_official(get_release("astromer-2-macho"))


def test_a_local_folder_of_the_same_name_wins_and_other_names_pass_through(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = astromer_hf.AstromerConfig(hidden_size=16, num_attention_heads=2, intermediate_size=16)
    AstromerModel(config).save_pretrained(tmp_path / "astromer-base")
    assert resolve_name_or_path("astromer-base") == "astromer-base"  # the local folder, no resolution
    loaded = AstromerModel.from_pretrained("astromer-base")
    assert loaded.config.hidden_size == 16
    assert resolve_name_or_path("org/some-model") == "org/some-model"
    assert resolve_name_or_path(tmp_path) == tmp_path


def test_the_registry_lists_the_releases_with_provenance():
    assert {"astromer-base", "astromer-1-macho", "astromer-2-macho"} <= set(RELEASES)
    assert get_release("astromer-base") is get_release("astromer-1-macho")
    for release in set(RELEASES.values()):
        algorithm, digest = release.checksum
        assert algorithm in ("sha256", "md5") and len(digest) == {"sha256": 64, "md5": 32}[algorithm]
        assert release.repo_id.count("/") == 1 and release.license and "@article" in release.citation
    assert get_release("astromer-2-macho").filename == "pt_macho_v2_2025.zip"
    with pytest.raises(KeyError, match="known"):
        get_release("astromer-3")


# ------------------------------------------------------------------------------------------------ damaged weights
@pytest.mark.parametrize("keep", [0.5, 5 / 10_000], ids=["half", "header-only"])
def test_a_truncated_weights_file_is_named_with_how_to_replace_it(tmp_path, keep):
    from transformers import AutoModel

    folder = tmp_path / "model"
    AstromerModel(astromer_hf.AstromerConfig(hidden_size=16, num_attention_heads=2, intermediate_size=16)).save_pretrained(
        folder
    )
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: max(5, int(weights.stat().st_size * keep))])
    for cls in (AstromerModel, AutoModel):
        with pytest.raises(OSError) as info:
            cls.from_pretrained(folder)
        message = str(info.value)
        assert str(weights) in message and "truncated or damaged" in message, message
        assert "Error while deserializing header" in message and f"Write {folder} again" in message


def test_a_damaged_cached_release_is_named_and_astromer_download_converts_it_again(release_env, archive):
    release = get_release("astromer-base")
    folder = fetch_official(release, progress=False)
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(ReleaseNotFoundError) as info:
        fetch_official(release, progress=False)
    message = str(info.value)
    assert str(weights) in message and "truncated or damaged" in message
    assert "`astromer download astromer-1-macho`" in message and f"delete {folder}" in message

    # from_pretrained, offline, in a fresh process: the same explanation
    load = "import astromer_hf\nfrom transformers import AutoModel\nAutoModel.from_pretrained('astromer-base')"
    result = subprocess.run([sys.executable, "-c", load], env={**release_env, "HF_HUB_OFFLINE": "1"},
                            capture_output=True, text=True, timeout=300)
    assert result.returncode != 0 and str(weights) in result.stderr
    assert "astromer download astromer-1-macho" in result.stderr

    result = subprocess.run([sys.executable, "-m", "astromer_hf", "download", "astromer-base"], env=release_env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    from astromer_hf.releases import safetensors_problem

    assert safetensors_problem(weights) is None and archive.count("/macho_a0.zip") == 2
    assert AstromerModel.from_pretrained(folder).config.hidden_size == 256


# ------------------------------------------------------------------------------------------------ offline routes
def test_the_documented_offline_route_with_a_local_folder_works(release_env, reference_dir, archive, tmp_path):
    """docs/pretrained.md's commands, run as they are in bash with HF_HUB_OFFLINE=1 and a dead Hub: the mirror is a
    plain folder holding the official zip."""
    import re

    text = (ROOT / "docs" / "pretrained.md").read_text()
    commands = re.search(r"## Offline, from a local copy of the official file.*?```bash\n(.*?)```", text, re.S).group(1)
    assert "ASTROMER_HF_RELEASE_MIRROR=/data/astromer-files" in commands and "HF_HUB_OFFLINE=1" in commands
    work = tmp_path / "work"
    work.mkdir()
    (work / "macho_a0.zip").symlink_to(reference_dir / "macho_a0.zip")  # "the official file, copied here"
    env = {k: v for k, v in release_env.items() if k != "ASTROMER_HF_RELEASE_MIRROR"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"  # `astromer` and `python`
    script = commands.replace("/data/astromer-files", str(tmp_path / "astromer-files"))
    result = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=work, env=env, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == "256"
    assert (converted_path(get_release("astromer-base")) / "model.safetensors").is_file()
    assert archive.count("/macho_a0.zip") == 0  # nothing came over the network


def test_without_network_the_error_says_what_to_do_in_one_paragraph(release_env):
    env = {**release_env, "ASTROMER_HF_RELEASE_MIRROR": f"http://127.0.0.1:{_dead_port()}/files"}
    load = "import astromer_hf\nfrom transformers import AutoModel\nAutoModel.from_pretrained('astromer-base')"
    for command in ([sys.executable, "-m", "astromer_hf", "download", "astromer-base"], [sys.executable, "-c", load]):
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
        assert result.returncode != 0
        advice = [p for p in result.stderr.split("\n\n") if "astromer convert --from-tf" in p]
        assert len(advice) == 1, result.stderr[-3000:]
        for route in ("`astromer download astromer-1-macho` on a machine that has network", "ASTROMER_HF_RELEASE_MIRROR",
                      "in a folder", "file://", "http(s)://", "`astromer convert --from-tf macho_a0.zip --out DIR`",
                      "https://github.com/astromer-science/weights/raw/main/macho_a0.zip"):
            assert route in advice[0], (route, advice[0])


def test_the_mirror_may_be_a_folder_path_or_a_url(monkeypatch, tmp_path):
    from astromer_hf.releases import official_url

    release = get_release("astromer-base")
    for mirror, expected in ((str(tmp_path), tmp_path.as_uri()), (f"{tmp_path}/", tmp_path.as_uri()),
                             (tmp_path.as_uri(), tmp_path.as_uri()), ("https://mirror.example/astromer/", "https://mirror.example/astromer")):
        monkeypatch.setenv("ASTROMER_HF_RELEASE_MIRROR", mirror)
        assert official_url(release) == f"{expected}/macho_a0.zip"


def test_converting_a_missing_release_file_says_where_the_official_one_lives(tmp_path, capsys):
    from astromer_hf.cli import main

    assert main(["convert", "--from-tf", str(tmp_path / "macho_a0.zip"), "--out", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err
    assert "No checkpoint at" in error and "https://github.com/astromer-science/weights/raw/main/macho_a0.zip" in error
    assert "76a204a37a0d47bfd722477f55231624c0c56cf9eea3369b5f22ff445d95158b" in error
    assert "`astromer download astromer-1-macho`" in error
    assert main(["convert", "--from-tf", str(tmp_path / "mine.zip"), "--out", str(tmp_path / "out")]) == 2
    assert "official" not in capsys.readouterr().err
