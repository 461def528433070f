"""``bin/lightning`` shared with lightning-sdk (docs/training.md, "With `lightning-sdk` installed too").

Each test makes a scratch virtual environment and runs real pip on it (the project's pip, ``pip --python``, from
local wheels with ``--no-index --no-deps``): astromer_hf as a wheel with the console scripts of pyproject.toml and a
``.pth`` that makes this checkout and the project environment's packages importable, and a stand-in lightning-sdk
with the real package's console scripts (``lightning`` and ``lightning-sdk`` -> ``lightning_sdk.cli.entrypoint:
main_cli``, as in lightning_sdk 2026.10.13) whose ``main_cli`` answers like click. Nothing is installed in .venv.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shlex
import subprocess
import sys
import sysconfig
import zipfile
from importlib import metadata
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

import astromer_hf.cli as astromer_cli

ROOT = Path(__file__).resolve().parents[1]
BIN = "Scripts" if os.name == "nt" else "bin"

STAND_IN_SDK = """\
import sys

COMMANDS = ("login", "studio")


def main_cli():
    if sys.argv[1:2] and sys.argv[1] not in COMMANDS:
        print(f"Error: No such command {sys.argv[1]!r}.", file=sys.stderr)
        sys.exit(2)
    print("lightning-sdk got", sys.argv[1:])
"""


def _wheel(folder: Path, name: str, files: dict[str, str], scripts: dict[str, str]) -> Path:
    """A wheel of ``files`` declaring ``scripts`` as console scripts, as a build backend would write it."""
    info = f"{name}-1.0.dist-info"
    files = {
        **files,
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        f"{info}/entry_points.txt": "[console_scripts]\n" + "".join(f"{k} = {v}\n" for k, v in scripts.items()),
    }
    record = []
    path = folder / f"{name}-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        for member, text in files.items():
            data = text.encode()
            archive.writestr(member, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            record.append(f"{member},sha256={digest},{len(data)}")
        archive.writestr(f"{info}/RECORD", "\n".join([*record, f"{info}/RECORD,,"]) + "\n")
    return path


@pytest.fixture(scope="module")
def wheels(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("wheels")
    ours = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert ours["lightning"] == "astromer_hf.training.cli:lightning_main"
    paths = f"{ROOT}\n{sysconfig.get_paths()['purelib']}\n"
    sdk = "lightning_sdk.cli.entrypoint:main_cli"
    return {
        "astromer_hf": _wheel(folder, "astromer_hf", {"astromer_hf_checkout.pth": paths}, ours),
        "lightning_sdk": _wheel(
            folder, "lightning_sdk",
            {"lightning_sdk/__init__.py": "", "lightning_sdk/cli/__init__.py": "",
             "lightning_sdk/cli/entrypoint.py": STAND_IN_SDK},
            {"lightning": sdk, "lightning-sdk": sdk},
        ),
    }


class Scratch:
    """A virtual environment without pip of its own, driven by the project's pip."""

    def __init__(self, folder: Path, wheels: dict[str, Path]):
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True, timeout=60)
        self.bin = folder / BIN
        self.python = next(self.bin / name for name in ("python", "python.exe") if (self.bin / name).exists())
        self.wheels = wheels
        self.env = {key: value for key, value in os.environ.items()
                    if key not in ("PYTHONPATH", "VIRTUAL_ENV", "LOCAL_RANK", "PYTHONHOME")}
        self.env.update(PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1")
        self.cwd = folder

    def pip(self, *args: str) -> None:
        result = subprocess.run([sys.executable, "-m", "pip", "--python", str(self.python), "-q", *args],
                                env=self.env, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "lightning" not in result.stdout + result.stderr  # pip says nothing about the shared script

    def install(self, name: str) -> None:
        self.pip("install", "--no-index", "--no-deps", str(self.wheels[name]))

    def uninstall(self, name: str) -> None:
        self.pip("uninstall", "-y", name)

    def owner(self) -> str | None:
        """Whose script ``bin/lightning`` is; None when there is none."""
        script = self.bin / "lightning"
        if not script.exists():
            return None
        text = script.read_text()
        return next(name for name in ("astromer_hf", "lightning_sdk") if f"from {name}." in text)

    def run(self, command: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
        return subprocess.run([str(self.bin / command), *args], cwd=self.cwd, env={**self.env, **(env or {})},
                              capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL)

    def note(self, *args: str) -> str:
        """What ``astromer`` says on stderr about ``bin/lightning`` (the help itself goes to stdout)."""
        result = self.run("astromer", *(args or ("--help",)))
        notes = [line for line in result.stderr.splitlines() if line.startswith("astromer: note:")]
        assert len(notes) <= 1, result.stderr
        return notes[0] if notes else ""

    def restore(self, note: str) -> None:
        """Run the reinstall the note prints, with this environment's pip and no index."""
        command = re.search(r"`pip install (--force-reinstall --no-deps [^`]+)`", note)
        assert command, note
        self.pip("install", "--no-index", *shlex.split(command.group(1)))


@pytest.fixture()
def scratch(tmp_path, wheels) -> Scratch:
    return Scratch(tmp_path / "venv", wheels)


def test_sdk_installed_after_us_takes_lightning_and_the_reinstall_astromer_names_gives_it_back(scratch):
    scratch.install("astromer_hf")
    assert scratch.owner() == "astromer_hf" and scratch.note() == ""
    scratch.install("lightning_sdk")
    assert scratch.owner() == "lightning_sdk"  # overwritten without a word (Scratch.pip checks pip's output)
    failed = scratch.run("lightning", "fit", "--config", "recipe.yaml")
    assert failed.returncode == 2 and "No such command 'fit'" in failed.stderr
    note = scratch.note()
    assert note.startswith(f"astromer: note: {scratch.bin / 'lightning'} is lightning-sdk's (installed after")
    assert "`astromer fit --config RECIPE.yaml` trains the same way" in note
    assert "(it passes lightning-sdk's own commands on to lightning-sdk)" in note
    assert f"--force-reinstall --no-deps {scratch.wheels['astromer_hf']}`" in note  # how it was installed
    check = "import astromer_hf.cli as c; c._lightning_command_note(['fit', '--config', 'r.yaml'])"  # astromer fit
    assert subprocess.run([str(scratch.python), "-c", check], env=scratch.env, capture_output=True, text=True,
                          timeout=60).stderr.strip() == note
    assert scratch.note("convert", "--help") == ""  # other subcommands do not check
    assert scratch.run("astromer", "--help", env={"LOCAL_RANK": "1"}).stderr == ""  # nor DDP workers

    scratch.restore(note)
    assert scratch.owner() == "astromer_hf" and scratch.note() == ""
    assert (scratch.bin / "lightning-sdk").exists()  # lightning-sdk keeps its other name
    scratch.uninstall("lightning_sdk")  # the reinstall recorded nothing in lightning-sdk's RECORD: still deleted
    assert scratch.owner() is None and "is missing (uninstalling lightning-sdk deletes it" in scratch.note()


def test_uninstalling_sdk_installed_before_us_deletes_our_lightning_and_astromer_says_how_to_restore_it(scratch):
    scratch.install("lightning_sdk")
    scratch.install("astromer_hf")
    assert scratch.owner() == "astromer_hf" and scratch.note() == ""
    scratch.uninstall("lightning_sdk")
    note = scratch.note()
    assert scratch.owner() is None
    assert note.startswith(f"astromer: note: {scratch.bin / 'lightning'} is missing") and "passes" not in note
    scratch.restore(note)
    assert scratch.owner() == "astromer_hf" and scratch.note() == ""


@pytest.mark.parametrize("first", ["astromer_hf", "lightning_sdk"])
def test_uninstalling_astromer_hf_deletes_lightning_whoever_wrote_it(scratch, first):
    second = {"astromer_hf": "lightning_sdk", "lightning_sdk": "astromer_hf"}[first]
    scratch.install(first)
    scratch.install(second)
    assert scratch.owner() == second
    scratch.uninstall("astromer_hf")
    assert scratch.owner() is None and not (scratch.bin / "astromer").exists()
    assert (scratch.bin / "lightning-sdk").exists()


def test_lightning_finds_lightning_sdks_command_through_its_metadata(tmp_path, monkeypatch, capsys):
    from astromer_hf.training import cli as training_cli

    (tmp_path / "moved_sdk_entry.py").write_text("import sys\n\ndef main():\n    print('moved', sys.argv)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    entry = metadata.EntryPoint(name="lightning", value="moved_sdk_entry:main", group="console_scripts")
    sdk = type("Sdk", (), {"entry_points": [entry]})()
    monkeypatch.setattr(metadata, "distributions", lambda name=None: iter([sdk] if name == "lightning_sdk" else []))
    monkeypatch.setattr(sys, "argv", ["lightning", "studio", "list"])
    assert training_cli.lightning_main() == 0
    assert "moved ['lightning', 'studio', 'list']" in capsys.readouterr().out


class _Installed:
    """An installed astromer_hf as importlib.metadata describes it, with its script in ``bin``."""

    def __init__(self, site: Path, origin: dict | None):
        self.files = [metadata.PackagePath("astromer_hf/__init__.py"), metadata.PackagePath("../bin/lightning")]
        self.site, self.origin, self.version = site, origin, "1.2.3"

    def locate_file(self, path):
        return self.site / path

    def read_text(self, name):
        if name != "direct_url.json" or self.origin is None:
            return None
        return self.origin if isinstance(self.origin, str) else json.dumps(self.origin)


@pytest.mark.parametrize(
    ("origin", "source"),
    [
        (None, "astromer_hf==1.2.3"),
        ("{not json", "astromer_hf==1.2.3"),
        ({"url": "file:///src/astromer%20hf", "dir_info": {"editable": True}}, "-e '/src/astromer hf'"),
        ({"url": "file:///src/astromer", "dir_info": {}}, "/src/astromer"),
        ({"url": "https://github.com/o/astromer_hf", "vcs_info": {"vcs": "git", "commit_id": "abc"}},
         "'astromer_hf @ git+https://github.com/o/astromer_hf@abc'"),
    ],
)
def test_the_reinstall_matches_how_astromer_hf_was_installed(tmp_path, monkeypatch, capsys, origin, source):
    site = tmp_path / "site"
    site.mkdir()
    (tmp_path / "bin").mkdir()
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    monkeypatch.setattr(metadata, "distributions", lambda name=None: iter([_Installed(site, origin)]))
    (tmp_path / "bin" / "lightning").write_text("#!/usr/bin/python\nfrom other_tool.cli import main\n")
    astromer_cli._lightning_command_note(["fit"])
    note = capsys.readouterr().err
    assert note.count("\n") == 1 and f"{tmp_path / 'bin' / 'lightning'} is another package's;" in note
    assert f"`pip install --force-reinstall --no-deps {source}` restores" in note

    (tmp_path / "bin" / "lightning").write_text("#!/usr/bin/python\nfrom astromer_hf.training.cli import x\n")
    astromer_cli._lightning_command_note([])
    assert capsys.readouterr().err == ""
