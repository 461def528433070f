"""The unmodified Hugging Face clients work against the look-alike Hub of ``hub_server`` (real HTTP on 127.0.0.1).

``huggingface_hub``, ``transformers`` and ``datasets`` are not mocked: they are only pointed at the server, in-process
with the ``hub`` fixture (``hub_env``) or in a subprocess through ``subprocess_env``. The ``hub`` fixture also fails a
test whose process resolved any host but 127.0.0.1. The olah test runs only where olah is installed (or found through
``OLAH_PYTHONPATH``).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import datasets
import huggingface_hub
import pytest
import torch
import transformers
from huggingface_hub import HfApi, HfFileSystem, ModelCard, hf_hub_download, snapshot_download
from huggingface_hub.errors import (
    EntryNotFoundError,
    HfHubHTTPError,
    OfflineModeIsEnabled,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

import astromer_hf
from hub_server import hub, hub_env, hub_offline, serve_hub, subprocess_env  # noqa: F401  (`hub` is a fixture)

pytestmark = pytest.mark.timeout(120)


def tiny_astromer() -> astromer_hf.AstromerModel:
    torch.manual_seed(0)
    config = astromer_hf.AstromerConfig(
        hidden_size=16, num_attention_heads=2, intermediate_size=16, num_hidden_layers=1
    )
    return astromer_hf.AstromerModel(config).eval()


def assert_same_weights(model_a: torch.nn.Module, model_b: torch.nn.Module) -> None:
    state_a, state_b = model_a.state_dict(), model_b.state_dict()
    assert state_a.keys() == state_b.keys()
    for key in state_a:
        assert torch.equal(state_a[key], state_b[key]), key


def weights_digest(model: torch.nn.Module) -> str:
    digest = hashlib.sha256()
    for key, value in sorted(model.state_dict().items()):
        digest.update(key.encode() + value.detach().cpu().numpy().tobytes())
    return digest.hexdigest()


def light_curve_dataset() -> datasets.DatasetDict:
    features = datasets.Features(
        {
            "oid": datasets.Value("string"),
            "label": datasets.ClassLabel(names=["RRL", "Cep", "EB"]),
            "mag": datasets.List(datasets.Value("float64")),
        }
    )
    return datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_dict(
                {"oid": ["a", "b", "c"], "label": [0, 2, 1], "mag": [[15.25, 15.5], [17.0], []]}, features=features
            ),
            "test": datasets.Dataset.from_dict(
                {"oid": ["d"], "label": [1], "mag": [[0.1, 0.2, 0.3]]}, features=features
            ),
        }
    )


def seen(hub_server, method: str, fragment: str) -> bool:
    return any(m == method and fragment in path for m, path in hub_server.requests)


# ----------------------------------------------------------------------------------------------------------------------


def test_whoami_accepts_the_token_and_refuses_others(hub):
    assert HfApi().whoami()["name"] == "tester"
    assert huggingface_hub.whoami()["name"] == "tester"  # the module-level HfApi built at import time
    with pytest.raises(HfHubHTTPError) as bad:
        HfApi(token="hf_wrong").whoami()
    assert bad.value.response.status_code == 401
    assert "Invalid user token" in str(bad.value)
    # a wrong token is refused on every endpoint, as on the Hub
    with pytest.raises(HfHubHTTPError) as bad_info:
        HfApi(token="hf_wrong").model_info("tester/anything")
    assert bad_info.value.response.status_code == 401
    assert all(path.startswith("/api/") for _, path in hub.requests)


def test_upload_folder_lfs_download_branches_and_errors(hub, tmp_path):
    api = HfApi()
    repo_url = api.create_repo("tester/lc-model", private=True)
    assert repo_url.repo_id == "tester/lc-model"
    assert api.create_repo("tester/lc-model", exist_ok=True).repo_id == "tester/lc-model"  # 409 handled
    with pytest.raises(HfHubHTTPError) as exists:
        api.create_repo("tester/lc-model")
    assert exists.value.response.status_code == 409

    folder = tmp_path / "upload"
    (folder / "weights").mkdir(parents=True)
    files = {
        "notes.txt": b"Astromer light curves\n",
        "weights/model.safetensors": os.urandom(256 * 1024),  # LFS by .gitattributes pattern
        "big.dat": os.urandom(10 * 1024 * 1024 + 17),  # LFS by size (>= 10 MB, as on the Hub)
    }
    for name, content in files.items():
        (folder / name).write_bytes(content)
    commit = api.upload_folder(repo_id="tester/lc-model", folder_path=folder, commit_message="Upload light curves")

    assert seen(hub, "POST", "/api/models/tester/lc-model/preupload/main")
    assert seen(hub, "POST", "/tester/lc-model.git/info/lfs/objects/batch")
    assert sum(m == "PUT" and p.startswith("/_lfs/upload/") for m, p in hub.requests) == 2
    stored = hub.get_repo("tester/lc-model").commits[commit.oid].files
    assert stored["big.dat"].sha256 == hashlib.sha256(files["big.dat"]).hexdigest()
    assert stored["weights/model.safetensors"].sha256 is not None and stored["notes.txt"].sha256 is None
    assert api.list_repo_commits("tester/lc-model")[0].title == "Upload light curves"
    assert sorted(api.list_repo_files("tester/lc-model")) == sorted([".gitattributes", *files])

    for name, content in files.items():
        assert Path(hf_hub_download("tester/lc-model", name)).read_bytes() == content
    snapshot = Path(snapshot_download("tester/lc-model"))
    for name, content in files.items():
        assert (snapshot / name).read_bytes() == content
    assert Path(snapshot).name == commit.oid

    # a second commit on a new branch; main is unchanged
    api.create_branch("tester/lc-model", branch="dev")
    api.upload_file(
        path_or_fileobj=b"dev notes\n", path_in_repo="notes.txt", repo_id="tester/lc-model", revision="dev",
        commit_message="Dev notes",
    )
    assert Path(hf_hub_download("tester/lc-model", "notes.txt", revision="dev")).read_bytes() == b"dev notes\n"
    assert Path(hf_hub_download("tester/lc-model", "notes.txt")).read_bytes() == files["notes.txt"]
    assert api.list_repo_commits("tester/lc-model", revision="dev")[0].title == "Dev notes"
    assert {b.name for b in api.list_repo_refs("tester/lc-model").branches} == {"main", "dev"}
    # by commit id too
    assert Path(hf_hub_download("tester/lc-model", "notes.txt", revision=commit.oid)).read_bytes() == files["notes.txt"]

    with pytest.raises(EntryNotFoundError):
        hf_hub_download("tester/lc-model", "missing.txt")
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download("tester/no-such-repo", "notes.txt")
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download("tester/lc-model", "notes.txt", revision="no-such-branch")
    with pytest.raises(RepositoryNotFoundError):  # private: hidden from anonymous clients
        HfApi(token=False).model_info("tester/lc-model")
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download("tester/lc-model", "notes.txt", token=False, cache_dir=tmp_path / "anonymous")


def test_transformers_push_to_hub_and_from_pretrained(hub):
    model = tiny_astromer()
    model.push_to_hub("tester/tiny-astromer")
    assert "model.safetensors" in HfApi().list_repo_files("tester/tiny-astromer")
    loaded = transformers.AutoModel.from_pretrained("tester/tiny-astromer")
    assert isinstance(loaded, astromer_hf.AstromerModel)
    assert_same_weights(model, loaded)
    assert loaded.config.to_dict()["hidden_size"] == 16


def test_datasets_push_to_hub_and_load_dataset(hub):
    original = light_curve_dataset()
    original.push_to_hub("tester/light-curves")
    files = HfApi().list_repo_files("tester/light-curves", repo_type="dataset")
    assert "README.md" in files and any(f.endswith(".parquet") for f in files)
    assert seen(hub, "POST", "/datasets/tester/light-curves.git/info/lfs/objects/batch")  # parquet shards are LFS

    loaded = datasets.load_dataset("tester/light-curves")
    assert set(loaded) == {"train", "test"}
    for split in original:
        assert loaded[split].features == original[split].features
        assert loaded[split].to_list() == original[split].to_list()
    assert loaded["train"].features["label"].names == ["RRL", "Cep", "EB"]


def test_load_dataset_falls_back_when_the_dataset_viewer_is_absent(hub, monkeypatch):
    """With the parquet-export look-up enabled (the library default) ``load_dataset`` asks the dataset viewer at
    ``datasets-server.<endpoint host>``; for ``127.0.0.1`` that name does not resolve (one failing DNS query), the
    error is swallowed and the data files of the repo are read instead."""
    monkeypatch.setattr(datasets.config, "USE_PARQUET_EXPORT", True)
    viewer_host = "datasets-server.127.0.0.1"
    hub.allowed_hosts.add(viewer_host)
    original = light_curve_dataset()
    original.push_to_hub("tester/light-curves-viewer")
    loaded = datasets.load_dataset("tester/light-curves-viewer", split="train")
    assert loaded.to_list() == original["train"].to_list()
    assert loaded.features == original["train"].features
    assert viewer_host in hub.resolved_hosts  # the viewer was tried ...
    assert seen(hub, "GET", "/datasets/tester/light-curves-viewer/resolve/")  # ... and the repo files were read


def test_model_card_metadata_is_validated(hub):
    HfApi().create_repo("tester/card")
    card = ModelCard(
        "---\nlicense: mit\nlibrary_name: transformers\ntags:\n- astronomy\n- light-curves\n---\n\n# Astromer\n"
    )
    card.validate()
    card.push_to_hub("tester/card", commit_message="Add card")
    assert sum(m == "POST" and p == "/api/validate-yaml" for m, p in hub.requests) >= 2  # validate + create_commit
    info = HfApi().model_info("tester/card")
    assert info.card_data.license == "mit" and info.tags == ["astronomy", "light-curves"]
    assert ModelCard.load("tester/card").data.tags == ["astronomy", "light-curves"]

    with pytest.raises(ValueError, match="license") as refused:  # refused by the server (validate asks text/plain)
        ModelCard("---\nlicense: MIT License\nlibrary_name: [a, b]\n---\n\ntext\n").validate()
    assert '"library_name" must be a string' in str(refused.value)  # both errors, over a multi-line response
    with pytest.raises(ValueError, match="Invalid YAML"):  # create_commit validates a README before uploading
        HfApi().upload_file(path_or_fileobj=b"---\nlicense: [mit\n---\n", path_in_repo="README.md",
                            repo_id="tester/card")
    assert HfApi().list_repo_commits("tester/card")[0].title == "Add card"  # the invalid card was not committed
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        HfApi().upload_file(path_or_fileobj=b"# no metadata\n", path_in_repo="README.md", repo_id="tester/card")
    assert any("empty or missing yaml metadata" in str(w.message) for w in caught)


def test_offline_mode_loads_the_cached_model_without_the_server(tmp_path, monkeypatch):
    home = tmp_path / "home"
    model = tiny_astromer()
    script = (
        "import sys, hashlib, astromer_hf, transformers\n"
        "m = transformers.AutoModel.from_pretrained('tester/offline-model')\n"
        "d = hashlib.sha256()\n"
        "for k, v in sorted(m.state_dict().items()): d.update(k.encode() + v.numpy().tobytes())\n"
        "print(d.hexdigest())\n"
    )
    with serve_hub(tmp_path / "hub") as server:
        hub_env(monkeypatch, server, home)
        model.push_to_hub("tester/offline-model")
        # a client process configured by environment variables alone downloads it into the shared HF_HOME
        online = subprocess.run([sys.executable, "-c", script], env=subprocess_env(server, home),
                                capture_output=True, text=True, timeout=90)
        assert online.returncode == 0, online.stderr[-3000:]
        assert online.stdout.split()[-1] == weights_digest(model)
        assert seen(server, "GET", "/tester/offline-model/resolve/")
        endpoint = server.endpoint
    # the server is gone now
    offline = subprocess.run([sys.executable, "-c", script], env=subprocess_env(server, home, offline=True),
                             capture_output=True, text=True, timeout=90)
    assert offline.returncode == 0, offline.stderr[-3000:]
    assert offline.stdout.split()[-1] == weights_digest(model)

    hub_offline(monkeypatch)
    assert_same_weights(model, transformers.AutoModel.from_pretrained("tester/offline-model"))
    assert (Path(snapshot_download("tester/offline-model")) / "model.safetensors").is_file()
    with pytest.raises(OfflineModeIsEnabled):
        HfApi(endpoint=endpoint).model_info("tester/offline-model")


def test_lfs_multipart_upload_range_reads_and_pull_requests(hub):
    hub.lfs_multipart_chunk_size = 1024 * 1024
    api = HfApi()
    api.create_repo("tester/parts", repo_type="dataset")
    payload = os.urandom(2 * 1024 * 1024 + 1000)
    api.upload_file(path_or_fileobj=payload, path_in_repo="lc/chunk.bin", repo_id="tester/parts", repo_type="dataset")
    assert sum(m == "PUT" and p.startswith("/_lfs/part/") for m, p in hub.requests) == 3
    assert seen(hub, "POST", "/_lfs/complete/")
    assert hub.files("tester/parts", repo_type="dataset")["lc/chunk.bin"] == payload

    with HfFileSystem().open("datasets/tester/parts/lc/chunk.bin", "rb", block_size=4096) as handle:
        handle.seek(1_500_000)
        assert handle.read(100) == payload[1_500_000:1_500_100]
    assert seen(hub, "GET", "/datasets/tester/parts/resolve/")

    pr = api.upload_file(path_or_fileobj=b"proposal", path_in_repo="PROPOSAL.md", repo_id="tester/parts",
                         repo_type="dataset", create_pr=True, commit_message="Propose")
    assert pr.pr_num == 1 and pr.pr_revision == "refs/pr/1"
    path = hf_hub_download("tester/parts", "PROPOSAL.md", repo_type="dataset", revision="refs/pr/1")
    assert Path(path).read_bytes() == b"proposal"
    assert "PROPOSAL.md" not in api.list_repo_files("tester/parts", repo_type="dataset")


def test_faults_pagination_access_rules_and_persistence(hub, tmp_path):
    api = HfApi()
    api.create_repo("tester/public")
    api.upload_file(path_or_fileobj=b"{}", path_in_repo="config.json", repo_id="tester/public")
    anonymous = HfApi(token=False)
    assert anonymous.model_info("tester/public").sha == api.model_info("tester/public").sha
    with pytest.raises(HfHubHTTPError) as no_write:
        anonymous.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id="tester/public")
    assert no_write.value.response.status_code == 401
    with pytest.raises(HfHubHTTPError) as other_namespace:
        api.create_repo("someone-else/repo")
    assert other_namespace.value.response.status_code == 403

    # paginated tree listing (Link header) and a transient 503 retried by the client
    hub.page_size = 2
    api.upload_folder(repo_id="tester/public", folder_path=_write_files(tmp_path / "many", 5), path_in_repo="many")
    hub.fail("GET", r"/api/models/tester/public/tree/", status=503)
    assert len([f for f in api.list_repo_files("tester/public") if f.startswith("many/")]) == 5
    assert sum("cursor=" in p for _, p in hub.requests) >= 2

    # another server on the same folder serves the same repositories
    with serve_hub(hub.root) as second:
        info = HfApi(endpoint=second.endpoint).model_info("tester/public")
        assert info.sha == api.model_info("tester/public").sha


def _write_files(folder: Path, count: int) -> Path:
    folder.mkdir(parents=True)
    for i in range(count):
        (folder / f"part-{i}.json").write_text(json.dumps({"i": i}))
    return folder


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _olah_env() -> dict[str, str] | None:
    """Environment to run olah (https://pypi.org/project/olah/) with the test interpreter, or None if it is absent.

    olah is not a project dependency: install it into the environment, or side by side without touching the
    project's packages and point ``OLAH_PYTHONPATH`` at the folder, e.g.
    ``pip install --target /tmp/olah_env --no-deps olah fastapi fastapi-utils pydantic-settings tenacity pytz
    GitPython gitdb smmap shortuuid toml typing_inspect mypy_extensions portalocker peewee python-dotenv``."""
    import importlib.util

    env = dict(os.environ)
    extra = os.environ.get("OLAH_PYTHONPATH")
    if extra:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (extra, env.get("PYTHONPATH")) if p)
    elif importlib.util.find_spec("olah") is None:
        return None
    return env


def _start_olah(config: Path, port: int, env: dict, log: Path) -> subprocess.Popen:
    import socket
    import time

    process = subprocess.Popen(
        [sys.executable, "-m", "olah.server", "--config", str(config)],
        env=env, cwd=config.parent, stdout=log.open("a"), stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return process
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise AssertionError(f"olah did not start:\n{log.read_text()[-3000:]}")


def test_olah_mirror_in_front_of_the_hub_and_offline_from_its_cache(tmp_path, monkeypatch):
    """Optional: the olah mirror proxies (and caches) the test hub, then serves the cached repo with the hub gone."""
    olah_env = _olah_env()
    if olah_env is None:
        pytest.skip("olah is not installed (see _olah_env for a side install through OLAH_PYTHONPATH)")
    script = (
        "import os, huggingface_hub as hh\n"
        "folder = hh.snapshot_download('tester/mirrored')\n"
        "print(sorted(os.listdir(folder)))\n"
        "print(open(hh.hf_hub_download('tester/mirrored', 'w.safetensors'), 'rb').read().hex())\n"
    )
    weights = os.urandom(300_000)

    def olah_config(port: int, upstream: str, offline: bool) -> Path:
        path = tmp_path / f"olah-{port}.toml"
        path.write_text(
            "[basic]\n"
            f'host = "127.0.0.1"\nport = {port}\n'
            f'hf-scheme = "http"\nhf-netloc = "{upstream}"\nhf-lfs-netloc = "{upstream}"\n'
            f'mirror-scheme = "http"\nmirror-netloc = "127.0.0.1:{port}"\nmirror-lfs-netloc = "127.0.0.1:{port}"\n'
            f'repos-path = "{tmp_path / "olah-repos"}"\n'
            f"[accessibility]\noffline = {'true' if offline else 'false'}\n"
        )
        return path

    def download_through(port: int, server, home: str) -> list[str]:
        env = subprocess_env(server, tmp_path / home)
        env["HF_ENDPOINT"] = f"http://127.0.0.1:{port}"
        result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=90)
        assert result.returncode == 0, result.stderr[-3000:]
        return result.stdout.split("\n")

    with serve_hub(tmp_path / "hub") as server:
        hub_env(monkeypatch, server, tmp_path / "home")
        HfApi().create_repo("tester/mirrored")
        HfApi().upload_file(path_or_fileobj=weights, path_in_repo="w.safetensors", repo_id="tester/mirrored")
        upstream = server.endpoint.split("://", 1)[1]
        port = _free_port()
        olah = _start_olah(olah_config(port, upstream, offline=False), port, olah_env, tmp_path / "olah.log")
        try:
            lines = download_through(port, server, "home-online")
        finally:
            olah.terminate()
            olah.wait(timeout=10)
        assert lines[0] == "['.gitattributes', 'w.safetensors']" and bytes.fromhex(lines[1]) == weights
        assert seen(server, "GET", "/tester/mirrored/resolve/")  # olah fetched from the test hub

    port = _free_port()
    olah = _start_olah(olah_config(port, upstream, offline=True), port, olah_env, tmp_path / "olah.log")
    try:
        lines = download_through(port, server, "home-offline")  # the test hub is gone: olah's cache answers
    finally:
        olah.terminate()
        olah.wait(timeout=10)
    assert lines[0] == "['.gitattributes', 'w.safetensors']" and bytes.fromhex(lines[1]) == weights
