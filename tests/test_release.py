"""The release (issue H item 3): `python -m build` makes a wheel and an sdist that carry the license and one version,
the wheel installs into a fresh environment and works there on its own files (`astromer --help`, a tiny fit with the
`lightning` command, a tiny embed of its model), and CITATION.cff and CHANGELOG.md agree with the version.

The fresh environment is a venv without pip whose only packages are the wheel (installed with `pip --python ...
--no-deps`, so the test takes seconds) and, through a `.pth` file, the dependencies already in the project's `.venv`.
A venv made with `--system-site-packages` would see the base interpreter's packages, not `.venv`'s; the `.pth` line
adds `.venv`'s site-packages as a plain path, where the editable install's import hook (a `.pth` file itself) is not
run, so `astromer_hf` can only come from the wheel. The test checks that it does.
"""

from __future__ import annotations

import email
import os
import re
import subprocess
import sys
import sysconfig
import tarfile
import textwrap
import tomllib
import zipfile
from pathlib import Path

import pytest

import astromer_hf

ROOT = Path(__file__).resolve().parents[1]
VERSION = astromer_hf.__version__

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    """The sdist and the wheel built from the checkout by `python -m build` (the wheel from the sdist, as build
    does). Without build isolation: the build backend (setuptools) comes from the environment instead of a download."""
    pytest.importorskip("build", reason="`build` is in the dev extra (scripts/setup.sh)")
    out = tmp_path_factory.mktemp("dist")
    result = subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--skip-dependency-check", "--outdir",
                             str(out), str(ROOT)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return out


def _one(folder: Path, pattern: str) -> Path:
    (path,) = sorted(folder.glob(pattern))
    return path


def test_the_version_has_one_source():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in project["project"] and "version" in project["project"]["dynamic"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "astromer_hf.__version__"}
    assert re.fullmatch(r"\d+\.\d+\.\d+((a|b|rc)\d+)?(\.post\d+)?(\.dev\d+)?", VERSION), VERSION


def test_the_wheel_and_the_sdist_carry_the_version_the_license_and_the_commands(dist):
    wheel, sdist = _one(dist, "*.whl"), _one(dist, "*.tar.gz")
    assert wheel.name == f"astromer_hf-{VERSION}-py3-none-any.whl"
    assert sdist.name == f"astromer_hf-{VERSION}.tar.gz"
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        info = f"astromer_hf-{VERSION}.dist-info"
        metadata = email.message_from_bytes(archive.read(f"{info}/METADATA"))
        entry_points = archive.read(f"{info}/entry_points.txt").decode()
        license_text = archive.read(f"{info}/licenses/LICENSE").decode()
    assert metadata["Version"] == VERSION and metadata["Name"] == "astromer_hf"
    assert metadata["License-Expression"] == "MIT" and "LICENSE" in metadata.get_all("License-File")
    assert license_text == (ROOT / "LICENSE").read_text() and license_text.startswith("MIT License")
    assert "astromer = astromer_hf.cli:main" in entry_points
    assert "lightning = astromer_hf.training.cli:lightning_main" in entry_points
    packaged = {name for name in names if name.endswith(".py")}
    in_checkout = {str(path.relative_to(ROOT)) for path in (ROOT / "astromer_hf").rglob("*.py")}
    assert in_checkout <= packaged, f"modules missing from the wheel: {sorted(in_checkout - packaged)}"
    assert not any(name.startswith(("tests/", "docs/", "recipes/")) for name in names)
    with tarfile.open(sdist) as archive:
        members = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    assert {"LICENSE", "README.md", "pyproject.toml", "astromer_hf/__init__.py"} <= members
    # MANIFEST.in: the recipes, the documentation site and the release metadata travel with the source
    assert {"recipes/quickstart.yaml", "docs/index.md", "mkdocs.yml", "CHANGELOG.md", "CITATION.cff",
            "scripts/setup.sh"} <= members


def _fresh_venv(folder: Path) -> Path:
    """A venv without pip that sees `.venv`'s packages through a `.pth` line (see the module docstring)."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True, timeout=120)
    python = folder / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True, timeout=60).stdout.strip()
    (Path(site) / "project_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return python


@pytest.fixture(scope="module")
def installed(dist, tmp_path_factory) -> tuple[Path, dict[str, str], Path]:
    """(the venv's bin folder, an environment for its commands, a scratch working folder)."""
    root = tmp_path_factory.mktemp("fresh")
    python = _fresh_venv(root / "venv")
    result = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps",
                             "--no-index", "--disable-pip-version-check", str(_one(dist, "*.whl"))],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    drop = ("PYTHONPATH", "WANDB_", "HF_TOKEN", "ASTROMER_", "VIRTUAL_ENV")
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith(drop)}
    (root / "home").mkdir()
    env.update(HOME=str(root / "home"), WANDB_MODE="disabled", HF_HUB_OFFLINE="1", HF_HOME=str(root / "hf"),
               PATH=f"{root / 'venv' / 'bin'}{os.pathsep}{env.get('PATH', '')}")
    work = root / "work"
    work.mkdir()
    return root / "venv" / "bin", env, work


def _run(command: list[str], env: dict, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def test_the_installed_package_is_the_wheel_not_the_checkout(installed):
    bin_dir, env, work = installed
    probe = textwrap.dedent("""
        import importlib.metadata, json, astromer_hf, astromer_hf.cli
        dist = importlib.metadata.distribution("astromer_hf")
        print(json.dumps({"file": astromer_hf.__file__, "version": astromer_hf.__version__,
                          "metadata": dist.version, "dist": str(dist.locate_file(""))}))
    """)
    result = _run([str(bin_dir / "python"), "-c", probe], env, work)
    assert result.returncode == 0, result.stderr[-3000:]
    import json

    found = json.loads(result.stdout.strip().splitlines()[-1])
    venv = str(bin_dir.parent)
    assert found["file"].startswith(venv) and not found["file"].startswith(str(ROOT)), found
    assert found["dist"].startswith(venv), found
    assert found["version"] == found["metadata"] == VERSION
    record = next((bin_dir.parent / "lib").glob("python*/site-packages/astromer_hf-*.dist-info/RECORD")).read_text()
    assert "../../../bin/astromer" in record and "../../../bin/lightning" in record


def test_astromer_help_from_the_wheel(installed):
    bin_dir, env, work = installed
    result = _run([str(bin_dir / "astromer"), "--help"], env, work, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    for command in ("convert", "embed", "data", "evaluate", "fit"):
        assert command in result.stdout
    assert "note:" not in result.stderr  # bin/lightning is this wheel's own


TINY_RECIPE = """
seed_everything: 0
trainer:
  max_epochs: 1
  logger: false
  enable_checkpointing: false
  callbacks:
    - class_path: astromer_hf.training.SavePretrainedCallback
      init_args: {dirpath: outputs/tiny/pretrained, monitor: val/rmse}
model:
  class_path: astromer_hf.training.AstromerPretraining
  init_args:
    model: astromer-2
    config_overrides: {num_hidden_layers: 1, hidden_size: 16, num_attention_heads: 2, intermediate_size: 16,
                       window_size: 32}
data:
  class_path: astromer_hf.training.AstromerDataModule
  init_args:
    path: data/tiny
    prepare: {survey: synthetic, config: macho, n_curves: 40, seed: 0}
    batch_size: 16
"""


def test_a_tiny_fit_and_embed_with_the_installed_commands(installed):
    """`lightning fit` (the wheel's console script) trains a tiny model on simulated curves; `astromer embed` embeds
    curves with the folder it saved."""
    bin_dir, env, work = installed
    (work / "tiny.yaml").write_text(TINY_RECIPE)
    result = _run([str(bin_dir / "lightning"), "fit", "--config", "tiny.yaml"], env, work)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    best = work / "outputs" / "tiny" / "pretrained" / "best"
    assert (best / "model.safetensors").is_file() and (work / "data" / "tiny" / "train").is_dir()

    import pandas as pd

    from astromer_hf.example_lightcurves import make_example_lightcurves

    curves, _ = make_example_lightcurves(n_per_class=2)
    frames = [pd.DataFrame({"object_id": f"star-{i}", "time": c[:, 0], "mag": c[:, 1], "err": c[:, 2]})
              for i, c in enumerate(curves)]
    pd.concat(frames).to_csv(work / "curves.csv", index=False)
    result = _run([str(bin_dir / "astromer"), "embed", "curves.csv", "--model", str(best), "--out", "emb.parquet",
                   "--no-progress"], env, work)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    frame = pd.read_parquet(work / "emb.parquet")
    assert len(frame) == len(curves) and frame["kept"].all()
    assert list(frame["id"]) == [f"star-{i}" for i in range(len(curves))]
    assert all(len(vector) == 16 for vector in frame["embedding"])


# ------------------------------------------------------------------------------------------------ metadata files
def test_citation_cff_is_valid_and_cites_this_version():
    from cffconvert import Citation

    text = (ROOT / "CITATION.cff").read_text()
    Citation(text).validate()  # the CFF 1.2.0 schema; raises on any violation
    assert re.search(rf"^version: {re.escape(VERSION)}$", text, flags=re.M)
    assert re.search(r"^license: MIT$", text, flags=re.M)


def test_the_citation_check_rejects_a_broken_file():
    """The validation above can fail: the same file without its authors, or with a type the format does not have, is
    refused."""
    from cffconvert import Citation

    text = (ROOT / "CITATION.cff").read_text()
    without_authors = re.sub(r"^authors:\n(  - .*\n)+", "", text, count=1, flags=re.M)
    assert without_authors != text
    with pytest.raises(Exception, match="authors"):
        Citation(without_authors).validate()
    bad_type = text.replace("type: software", "type: program", 1)
    assert bad_type != text
    with pytest.raises(Exception, match="program"):
        Citation(bad_type).validate()


def test_the_changelog_starts_with_this_version_and_the_license_is_the_declared_one():
    changelog = (ROOT / "CHANGELOG.md").read_text()
    versions = re.findall(r"^## \[([^\]]+)\]", changelog, flags=re.M)
    assert versions and versions[0] == VERSION, versions
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "MIT"
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")
