"""Examples that cannot rot (issue H item 4, and issue J's walk of every documented command).

Every fenced block of README.md and of every page under docs/ is read here:

* ``python`` blocks compile; those of docs/tutorials/ (and README.md's, in tests/test_readme.py) run, in page order, in one namespace per
  page, together with the page's shell commands, in a scratch folder (the project's ``recipes/`` linked into it, as
  in a clone), offline: named releases are converted from the released checkpoint in ``../shared`` through
  ``ASTROMER_HF_RELEASE_MIRROR``, the Hub is ``tests/hub_server.py`` on 127.0.0.1, W&B is disabled. Where a page's
  sizes are large (curves to simulate, epochs, model widths), ``SMALL`` lists the substitutions the test makes, and
  each must still match the page;
* ``yaml`` blocks parse, and every ``class_path`` they name imports; a block whose first line is ``# NAME.yaml`` is
  a file the page asks the reader to save, and the page's run writes it;
* every shell command (``bash`` / ``sh`` / ``console`` blocks, one command per line or per ``&&``) is listed in
  ``COMMANDS`` with what is done with it: ``RUN`` (run by this file, in its page's run), ``elsewhere(test)`` (run by
  the named test, whose existence is checked) or ``not_run(reason)`` (network, a GPU, hours, or it changes the
  environment). An unlisted command fails the test, naming the page and line, so a new command must be classified.
  Whatever its rule, every ``astromer``, ``lightning`` and ``python -m astromer_hf`` command is parsed by the real
  parser (argparse; the evaluation settings; the LightningCLI parser, stopped before it builds anything, so a
  recipe that no longer parses or a renamed option fails here).
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT.parent / "shared" / "reference" / "astromer1-macho"
TUTORIALS = ROOT / "docs" / "tutorials"

pytestmark = pytest.mark.timeout(600)


# ------------------------------------------------------------------------------------------------ reading pages
@dataclass(frozen=True)
class Block:
    page: str  # relative to the repository root
    line: int  # of the opening fence
    lang: str
    text: str


FENCE = re.compile(r"^(?P<indent>[ ]*)```(?P<lang>[\w+-]*)[^\n]*\n(?P<body>.*?)^(?P=indent)```[ \t]*$", re.M | re.S)
SHELL = ("bash", "sh", "console", "shell")


def pages() -> list[str]:
    """README.md and every Markdown page under docs/, relative to the repository root."""
    return ["README.md", *sorted(str(path.relative_to(ROOT)) for path in (ROOT / "docs").rglob("*.md"))]


def page_blocks(page: str, text: str | None = None) -> list[Block]:
    text = (ROOT / page).read_text() if text is None else text
    blocks = []
    for match in FENCE.finditer(text):
        body = "\n".join(line[len(match.group("indent")):] for line in match.group("body").splitlines())
        blocks.append(Block(page, text[: match.start()].count("\n") + 1, match.group("lang").lower(), body))
    return blocks


def commands(block: Block) -> list[list[str]]:
    """The commands of a shell block as token lists: comments dropped, ``\\`` continuations joined, split at
    ``&&`` and ``;``."""
    joined = re.sub(r"\\\n", " ", block.text)
    found = []
    for line in joined.splitlines():
        tokens = shlex.split(line, comments=True)
        current: list[str] = []
        for token in tokens:
            if token in ("&&", ";"):
                if current:
                    found.append(current)
                current = []
            else:
                current.append(token)
        if current:
            found.append(current)
    return found


def key(tokens: list[str]) -> str:
    """The command as listed in COMMANDS: its tokens joined by single spaces, ``.venv/bin/`` dropped."""
    return " ".join([tokens[0].removeprefix(".venv/bin/"), *tokens[1:]])


def documented_commands() -> Iterator[tuple[Block, list[str]]]:
    for page in pages():
        for block in page_blocks(page):
            if block.lang in SHELL:
                for tokens in commands(block):
                    yield block, tokens


# ------------------------------------------------------------------------------------------------ the commands
@dataclass(frozen=True)
class Rule:
    action: str  # "run", "elsewhere", "not_run"
    detail: str = ""


RUN = Rule("run")


def elsewhere(test: str) -> Rule:
    return Rule("elsewhere", test)


def not_run(reason: str) -> Rule:
    return Rule("not_run", reason)


NETWORK = "downloads from a survey archive or the authors' weights repository (no network in the tests)"
MACHO_MIRROR = "tests/test_recipes.py::test_a_macho_recipe_runs_as_written_against_a_mirror"
ALCOCK_MIRROR = "tests/test_recipes.py::test_the_alcock_recipes_run_against_a_mirror_and_a_tap_style_class_table"
OFFLINE_ROUTE = "tests/test_releases.py::test_the_documented_offline_route_with_a_local_folder_works"

#: Every documented command and what the tests do with it.
COMMANDS: dict[str, Rule] = {
    # README.md
    "bash scripts/setup.sh": elsewhere("tests/test_readme.py::test_readme_has_exactly_two_commands_and_ci_runs_the_test_command"),
    "lightning fit --config recipes/quickstart.yaml": elsewhere("tests/test_readme.py::test_readme_main_job_runs"),
    "python -m pytest -q": not_run("the whole test suite: CI runs it (.ci/run)"),
    "astromer convert --from-tf macho_a0.zip --out models/astromer-1-macho": elsewhere(
        "tests/test_readme.py::test_demo_with_converted_weights"),
    "astromer demo --model models/astromer-1-macho": elsewhere("tests/test_readme.py::test_demo_with_converted_weights"),
    "astromer data prepare synthetic --config macho --set n_curves=20000 --out data/synthetic": RUN,
    "astromer data info data/synthetic": RUN,
    "lightning fit --config recipes/macho.yaml": elsewhere(MACHO_MIRROR),
    "lightning fit --config recipes/macho_astromer2.yaml": elsewhere(MACHO_MIRROR),
    "lightning fit --config recipes/finetune_alcock.yaml": elsewhere(ALCOCK_MIRROR),
    "lightning fit --config recipes/classify_alcock.yaml": elsewhere(ALCOCK_MIRROR),
    # docs/index.md
    "pip install .": not_run("installs into the environment; tests/test_release.py installs the built wheel into a "
                             "fresh one"),
    "pip install .[data]": not_run("installs into the environment (see `pip install .`)"),
    "pip install .[train]": not_run("installs into the environment (see `pip install .`)"),
    "pip install .[eval]": not_run("installs into the environment (see `pip install .`)"),
    # docs/converting.md
    "astromer convert --from-tf path/to/weights/astromer_v2/macho --out models/a2": elsewhere(
        "tests/test_convert.py::test_astromer2_checkpoints_convert_and_reproduce_the_model"),
    # docs/data.md
    "astromer data prepare synthetic --config macho --set n_curves=20000 --set seed=1 --out data/synthetic": RUN,
    "astromer data prepare astromer_archive --config alcock --set data_dir=raw_data/alcock --out data/alcock": elsewhere(
        "tests/test_astromer_archive.py::test_alcock_from_the_csv_layout"),
    # docs/evaluation.md
    "astromer evaluate --config recipes/eval_synthetic.yaml": not_run(
        "the full protocol takes about an hour on a CPU; tests/test_evaluation.py runs it at small size"),
    "astromer evaluate --config recipes/eval_synthetic.yaml --spc [20,100] --folds 2 --methods [features_rf,linear_probe]":
        not_run("minutes on a CPU; tests/test_evaluation.py runs the protocol at small size"),
    "astromer evaluate --config recipes/eval_alcock.yaml": not_run(NETWORK + "; a GPU run"),
    # docs/benchmarks.md
    "python -m benchmarks": not_run("the full benchmark takes about 10 minutes; tests/test_benchmarks.py runs --quick"),
    "python -m benchmarks --quick": elsewhere("tests/test_benchmarks.py::test_quick_run_measures_every_task"),
    "python -m benchmarks --device cuda": not_run("needs a GPU"),
    "python -m benchmarks --json out.json --markdown out.md --original-python /path/to/tf-venv/bin/python": not_run(
        "needs TensorFlow and the original package in another environment"),
    "python -m venv /tmp/tfvenv": not_run("sets up the original code's environment (TensorFlow: a large download)"),
    "/tmp/tfvenv/bin/pip install tensorflow-cpu tf_keras tensorboard pandas tqdm joblib scikit-learn seaborn requests":
        not_run("installs TensorFlow from the package index"),
    "/tmp/tfvenv/bin/pip install --no-deps ASTROMER==0.1.8": not_run("installs the original package from the index"),
    "python -m benchmarks --original-python /tmp/tfvenv/bin/python": not_run(
        "needs TensorFlow and the original package in /tmp/tfvenv"),
    "python -m benchmarks.memory_flatness": not_run(
        "writes a 1,000,000-curve dataset and runs for about half an hour; tests/test_benchmarks.py runs it at 300"),
    "python -m benchmarks.memory_flatness --curves 20000 --embed-curves 2000 --train-steps 20": not_run(
        "minutes; tests/test_benchmarks.py runs the same module at 300 curves"),
    "astromer export onnx astromer-1-macho --out astromer-1.onnx": elsewhere(
        "tests/test_export.py::test_onnxruntime_gives_the_pytorch_embeddings_at_any_batch_and_length"),
    # docs/tutorials/embed_and_classify.md
    "astromer evaluate --config recipes/eval_synthetic_quick.yaml": not_run(
        "about half an hour on a CPU; tests/test_evaluation.py runs the protocol at small size"),
    "astromer evaluate --config recipes/eval_synthetic_released.yaml": not_run(
        "3 minutes on a CPU and the released weights; tests/test_evaluation.py runs the protocol at small size and "
        "checks that this recipe shares the quick recipe's data, folds and settings"),
    "astromer evaluate --help": elsewhere("tests/test_docs_examples.py::test_every_documented_command_parses"),
    # docs/model_usage.md
    "astromer embed data/macho --split test --model astromer-base --out test.parquet": elsewhere(
        "tests/test_embedding.py::test_astromer_embed_writes_a_readable_parquet_file_from_a_prepared_dataset"),
    "astromer embed curves.csv --model models/astromer-1-macho --out curves.parquet": not_run(
        "needs models/astromer-1-macho from the README's `astromer convert`; docs/tutorials/embed.md runs the same "
        "command with the release name"),
    "astromer embed lc_1.3444.614.B.mjd --model astromer-base --out one.parquet --observations --legacy": elsewhere(
        "tests/test_embedding.py::test_astromer_embed_reproduces_the_original_embeddings_of_the_reference_curves"),
    # docs/pretrained.md (run line by line by tests/test_releases.py)
    "mkdir -p /data/astromer-files": elsewhere(OFFLINE_ROUTE),
    "cp macho_a0.zip /data/astromer-files/": elsewhere(OFFLINE_ROUTE),
    "export ASTROMER_HF_RELEASE_MIRROR=/data/astromer-files HF_HUB_OFFLINE=1": elsewhere(
        OFFLINE_ROUTE),
    "astromer download astromer-base": RUN,
    "python -c import astromer_hf; from transformers import AutoModel; print(AutoModel.from_pretrained(\"astromer-base\").config.hidden_size)":
        elsewhere(OFFLINE_ROUTE),
    # docs/publishing.md
    "astromer push outputs/quickstart/pretrained/best --repo-id my-org/astromer-macho-small --private": elsewhere(
        "tests/test_hub.py::test_a_trained_folder_pushed_with_the_cli_loads_back_identically_in_a_fresh_process"),
    "astromer data prepare macho --config alcock --out data/alcock": not_run(NETWORK),
    "astromer data push data/alcock --repo-id my-org/alcock --private": not_run(
        "needs data/alcock (a download); docs/tutorials/publish.md runs the same command on a simulated dataset"),
    "astromer publish-release astromer-1-macho": not_run("pushes to the canonical Hub repo (maintainers only)"),
    "astromer publish-release astromer-2-macho --repo-id my-org/astromer-2-macho": not_run(
        "downloads the Astromer 2 file from Zenodo; tests/test_hub.py publishes a release to the loopback Hub"),
    # docs/training.md
    "lightning fit --config recipes/quickstart.yaml --ckpt_path last": elsewhere(
        "tests/test_training_cli.py::test_a_run_killed_and_resumed_through_the_cli_ends_as_the_uninterrupted_run"),
    "lightning fit --config recipes/quickstart.yaml --print_config": elsewhere(
        "tests/test_docs_examples.py::test_every_documented_command_parses"),
    "lightning fit --config recipes/quickstart.yaml --trainer.max_epochs 30 --data.batch_size 128": not_run(
        "a full quickstart run with more epochs (minutes); the override is parsed here"),
    "astromer fit --config recipes/quickstart.yaml": not_run("the README's main job under another name (minutes)"),
    "python -m astromer_hf fit --config recipes/quickstart.yaml": not_run(
        "the README's main job under another name (minutes)"),
    "lightning fit --config recipes/macho.yaml --trainer.accelerator gpu --trainer.precision bf16-mixed": not_run(
        NETWORK + "; a GPU"),
    "lightning fit --config recipes/macho.yaml --trainer.devices 4 --trainer.strategy ddp --data.batch_size 1250": not_run(
        NETWORK + "; 4 devices (tests/test_training_cli.py runs DDP on two CPU processes)"),
    "lightning test --config recipes/classify_alcock.yaml --ckpt_path outputs/classify_alcock/checkpoints/best.ckpt":
        not_run("needs the classifier trained by classify_alcock.yaml on the Alcock set (" + NETWORK + ")"),
    # docs/tutorials/embed.md
    "astromer embed curves.csv --model astromer-base --out curves.parquet": RUN,
    "astromer embed curves.csv --model astromer-base --out curves-max.parquet --pooling max": RUN,
    "astromer embed my_curves --model astromer-base --out my_curves.parquet": RUN,
    # docs/tutorials/prepare_survey.md
    "astromer data prepare --help": RUN,
    "astromer data prepare synthetic --config macho --set n_curves=2000 --set seed=1 --out data/tutorial": RUN,
    "astromer data info data/tutorial": RUN,
    "astromer data prepare astromer_archive --config atlas --set data_dir=raw_data/mine --set dataset=mine --out data/mine": RUN,
    "astromer data info data/mine": RUN,
    "astromer data prepare macho --config photometry --set tiles=1.3319 --out data/macho-1.3319": elsewhere(
        "tests/test_survey_macho.py::test_photometry_rows_match_the_real_curves_and_the_cache_is_reused"),
    # docs/tutorials/pretrain.md
    "lightning fit --config my_recipe.yaml": RUN,
    "lightning fit --config my_recipe.yaml --ckpt_path last": elsewhere(
        "tests/test_training_cli.py::test_a_run_killed_and_resumed_through_the_cli_ends_as_the_uninterrupted_run"),
    "astromer plot outputs/tutorial": RUN,
    # docs/tutorials/few_labels.md
    "astromer evaluate --config recipes/eval_synthetic.yaml --spc [20,100] --folds 1 --methods [features_rf,linear_probe,finetuned_skip_mlp]":
        not_run("minutes on a CPU; tests/test_evaluation.py runs the protocol at small size"),
    # docs/tutorials/publish.md
    "export HF_TOKEN=hf_xxx": not_run("a placeholder for the reader's own token; the test's Hub has its own"),
    "astromer push outputs/tutorial/pretrained/best --repo-id you/astromer-tutorial --private": RUN,
    "astromer data push data/tutorial --repo-id you/tutorial-curves --private": RUN,
}

#: Per page, the substitutions that make its examples small: ``(as written, as run)``. Each must match the page.
SMALL: dict[str, list[tuple[str, str]]] = {
    "README.md": [("n_curves=20000", "n_curves=40")],
    "docs/data.md": [("n_curves=20000", "n_curves=40")],
    "docs/tutorials/prepare_survey.md": [("n_curves=2000", "n_curves=160")],
    "docs/tutorials/embed_and_classify.md": [("n_per_class=25", "n_per_class=5")],
    "docs/tutorials/pretrain.md": [
        ("max_epochs: 20", "max_epochs: 1"),
        ("config_overrides: {num_hidden_layers: 2, hidden_size: 128, intermediate_size: 256, residual_style: identity}",
         "config_overrides: {num_hidden_layers: 1, hidden_size: 16, num_attention_heads: 2, intermediate_size: 16, "
         "residual_style: identity, window_size: 32}"),
    ],
    "docs/tutorials/few_labels.md": [
        ("few_shot_splits(pool, spc=20, fold=0)", "few_shot_splits(pool, spc=2, fold=0, n_test=3)"),
        ('few_shot = {"spc": 20, "fold": 0}', 'few_shot = {"spc": 2, "fold": 0, "n_test": 3}'),
        ("max_epochs=20", "max_epochs=1"),
        ("max_epochs=100", "max_epochs=1"),
    ],
}

#: The pages whose python blocks and commands run, and the pages each one continues from.
RUN_PAGES = {
    "README.md": [],
    "docs/data.md": [],
    "docs/tutorials/embed.md": [],
    "docs/tutorials/prepare_survey.md": [],
    "docs/tutorials/pretrain.md": ["docs/tutorials/prepare_survey.md"],
    "docs/tutorials/few_labels.md": ["docs/tutorials/pretrain.md"],
    "docs/tutorials/publish.md": ["docs/tutorials/pretrain.md"],
    "docs/tutorials/embed_and_classify.md": ["docs/tutorials/embed.md"],
}
def test_every_documented_command_is_classified():
    unlisted = [f"{block.page}:{block.line}: {key(tokens)}" for block, tokens in documented_commands()
                if key(tokens) not in COMMANDS]
    assert not unlisted, ("commands in the docs that tests/test_docs_examples.py does not classify (add each to "
                          "COMMANDS as RUN, elsewhere(test) or not_run(reason)):\n" + "\n".join(unlisted))


def test_no_classification_is_left_over():
    documented = {key(tokens) for _, tokens in documented_commands()}
    stale = sorted(set(COMMANDS) - documented)
    assert not stale, f"COMMANDS lists commands no page documents any more: {stale}"


def test_the_tests_named_as_running_a_command_exist():
    missing = []
    for command, rule in COMMANDS.items():
        if rule.action != "elsewhere":
            continue
        path, _, name = rule.detail.partition("::")
        text = (ROOT / path).read_text() if (ROOT / path).is_file() else ""
        if not re.search(rf"^def {re.escape(name)}\(", text, flags=re.M):
            missing.append(f"{command!r} -> {rule.detail}")
    assert not missing, "tests named in COMMANDS that do not exist:\n" + "\n".join(missing)


def test_every_command_run_here_belongs_to_a_page_that_runs():
    run_on = {}
    for block, tokens in documented_commands():
        if COMMANDS.get(key(tokens)) == RUN:
            run_on.setdefault(key(tokens), set()).add(block.page)
    orphans = {command: sorted(where) for command, where in run_on.items() if not where & set(RUN_PAGES)}
    assert not orphans, f"commands classified RUN that appear on no page that runs: {orphans}"


def test_the_small_substitutions_still_match_their_pages():
    for page, substitutions in SMALL.items():
        text = (ROOT / page).read_text()
        for old, _ in substitutions:
            assert old in text, f"{page} no longer contains {old!r}: update SMALL in tests/test_docs_examples.py"


def test_every_python_block_compiles_and_every_yaml_block_parses():
    for page in pages():
        for block in page_blocks(page):
            if block.lang in ("python", "py"):
                compile(block.text, f"{page}:{block.line}", "exec")
            elif block.lang in ("yaml", "yml"):
                data = yaml.safe_load(block.text)
                for path in _class_paths(data):
                    module, _, name = path.rpartition(".")
                    assert hasattr(import_module(module), name), f"{page}:{block.line}: {path} does not import"


def _class_paths(value) -> Iterator[str]:
    if isinstance(value, dict):
        if isinstance(value.get("class_path"), str):
            yield value["class_path"]
        for item in value.values():
            yield from _class_paths(item)
    elif isinstance(value, list):
        for item in value:
            yield from _class_paths(item)


# ------------------------------------------------------------------------------------------------ parsing
class _Parsed(Exception):
    """Raised by the parse-only Lightning CLI once the command line and the recipe are parsed."""


def _parse_lightning(program: str, args: list[str]) -> None:
    from astromer_hf.training import cli as training_cli

    base = training_cli.AstromerDefaultsCLI if program == "astromer" else training_cli.AstromerCLI

    class ParseOnly(base):
        def before_instantiate_classes(self) -> None:
            raise _Parsed

    with pytest.raises(_Parsed):
        training_cli._instantiate(ParseOnly, args)


def parse(tokens: list[str]) -> None:
    """Parse a command with the parser of the program it calls; raises (or fails) when the command is not valid."""
    from astromer_hf.cli import build_parser

    program, args = tokens[0].removeprefix(".venv/bin/"), tokens[1:]
    if program == "python" and args[:2] == ["-m", "astromer_hf"]:
        program, args = "astromer", args[2:]
    if program == "python" and args[:1] == ["-c"]:
        compile(args[1], "python -c", "exec")
        return
    if program == "lightning" or (program == "astromer" and args[:1] and args[0] in ("fit", "validate", "test",
                                                                                      "predict")):
        with contextlib.redirect_stdout(io.StringIO()):
            try:
                _parse_lightning(program, args)
            except SystemExit as stop:  # --print_config and --help print, then exit 0
                assert stop.code in (0, None), f"{key(tokens)}: exit {stop.code}"
        return
    if program != "astromer":
        return
    with contextlib.redirect_stdout(io.StringIO()):
        try:
            namespace = build_parser().parse_args(args)
        except SystemExit as stop:
            assert stop.code == 0 and "--help" in args, f"{key(tokens)}: argparse refused it (exit {stop.code})"
            return
    if namespace.command == "evaluate" and "--help" not in args:
        from astromer_hf.evaluation.config import parse_evaluation_args

        parse_evaluation_args(namespace.options)
    if namespace.command == "data" and namespace.data_command == "prepare":
        from astromer_hf.data.prepare import builder_class

        builder = builder_class(namespace.survey)
        names = {config.name for config in builder.BUILDER_CONFIGS}
        assert namespace.config is None or namespace.config in names, f"{key(tokens)}: no configuration {namespace.config}"
        fields = {field for field in builder.BUILDER_CONFIG_CLASS.__dataclass_fields__}
        for setting, _ in namespace.set or []:
            assert setting in fields, f"{key(tokens)}: {namespace.survey} has no setting {setting!r}"


def write_file_blocks(page: str, text: str, folder: Path) -> None:
    """Write the page's file blocks (yaml blocks whose first line is ``# NAME.yaml``) into ``folder``."""
    for block in page_blocks(page, text):
        match = re.match(r"#\s*([\w.-]+\.ya?ml)\b", block.text)
        if block.lang in ("yaml", "yml") and match:
            (folder / match.group(1)).write_text(block.text)


def test_every_documented_command_parses(monkeypatch, tmp_path):
    """In a folder laid out like a clone (``recipes/``, and the files the pages ask the reader to save)."""
    (tmp_path / "recipes").symlink_to(ROOT / "recipes")
    for page in pages():
        write_file_blocks(page, (ROOT / page).read_text(), tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WANDB_MODE", "disabled")
    failures = []
    seen = set()
    for block, tokens in documented_commands():
        if key(tokens) in seen:
            continue
        seen.add(key(tokens))
        try:
            parse(tokens)
        except BaseException as error:  # noqa: BLE001 (a parser's SystemExit included)
            failures.append(f"{block.page}:{block.line}: {key(tokens)}\n    {type(error).__name__}: {error}")
    assert not failures, "documented commands that do not parse:\n" + "\n".join(failures)


# ------------------------------------------------------------------------------------------------ running pages
class PageRunner:
    """Runs pages in a scratch folder, each once, prerequisites first (``RUN_PAGES``). ``done`` is shared by the
    runners of one folder, so a page that continues from another finds what that one left."""

    def __init__(self, workdir: Path, done: set[str], monkeypatch, capsys) -> None:
        self.workdir, self.done, self.monkeypatch, self.capsys = workdir, done, monkeypatch, capsys
        self.namespaces: dict[str, dict] = {}
        self.output: dict[str, str] = {}

    def run(self, page: str) -> dict:
        for before in RUN_PAGES[page]:
            if before not in self.done:
                self.run(before)
        text = (ROOT / page).read_text()
        for old, new in SMALL.get(page, []):
            text = text.replace(old, new)
        namespace: dict = {"__name__": "__docs__"}
        self.namespaces[page] = namespace
        self.monkeypatch.chdir(self.workdir)
        for written, block in _blocks_as_run(page, text):
            if block.lang in ("python", "py"):
                exec(compile(block.text, f"{page}:{block.line}", "exec"), namespace)  # noqa: S102
            elif block.lang in ("yaml", "yml"):
                write_file_blocks(page, f"```yaml\n{block.text}\n```\n", self.workdir)
            elif block.lang in SHELL:
                for documented, tokens in zip(commands(written), commands(block), strict=True):
                    if COMMANDS[key(documented)] == RUN:
                        self.command(block, tokens)
        self.done.add(page)
        return namespace

    def command(self, block: Block, tokens: list[str]) -> None:
        from astromer_hf.cli import main
        from astromer_hf.training.cli import lightning_main

        program, args = tokens[0].removeprefix(".venv/bin/"), tokens[1:]
        where = f"{block.page}:{block.line}: {' '.join(tokens)}"
        if program == "export":
            for assignment in args:
                name, _, value = assignment.partition("=")
                self.monkeypatch.setenv(name, value)
            return
        self.capsys.readouterr()
        entry = {"astromer": main, "lightning": lightning_main}.get(program)
        if entry is None:
            raise AssertionError(f"{where}: no way to run {program!r} here; classify it as elsewhere or not_run")
        try:
            code = entry(args)
        except SystemExit as stop:  # argparse's --help
            code = stop.code or 0
        captured = self.capsys.readouterr()
        self.output[" ".join(tokens)] = captured.out + captured.err
        assert code == 0, f"{where} exited {code}:\n{captured.out[-2000:]}\n{captured.err[-3000:]}"


@pytest.fixture(scope="module")
def releases(tmp_path_factory) -> Path:
    """One release cache for the module: astromer-base is converted once from the reference checkpoint."""
    return tmp_path_factory.mktemp("releases")


@pytest.fixture(scope="module")
def clones(tmp_path_factory) -> dict[str, tuple[Path, set[str]]]:
    """One scratch clone per first page of a chain of RUN_PAGES (README.md, docs/data.md, embed.md, and the
    tutorials that continue from prepare_survey.md), kept for the module: each page runs once."""
    folders: dict[str, tuple[Path, set[str]]] = {}
    base = tmp_path_factory.mktemp("clones")

    def first(page: str) -> str:
        return page if not RUN_PAGES[page] else first(RUN_PAGES[page][0])

    for page in RUN_PAGES:
        root = first(page)
        if root not in folders:
            workdir = base / re.sub(r"\W", "_", root)
            workdir.mkdir()
            (workdir / "recipes").symlink_to(ROOT / "recipes")
            folders[root] = (workdir, set())
        folders[page] = folders[root]
    return folders


@pytest.fixture
def runner(request, tmp_path, monkeypatch, capsys, releases, clones) -> PageRunner:
    """A runner for the test's page (``page`` parameter; README.md without one), offline, W&B disabled."""
    from hub_server import hub_offline

    callspec = getattr(request.node, "callspec", None)
    page = callspec.params["page"] if callspec is not None else "README.md"
    drop = ("WANDB_", "HF_TOKEN", "ASTROMER_", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")
    for name in list(os.environ):
        if name.upper().startswith(drop):
            monkeypatch.delenv(name)
    monkeypatch.setenv("WANDB_MODE", "disabled")
    monkeypatch.setenv("ASTROMER_HF_DOWNLOADS", str(tmp_path / "downloads"))
    monkeypatch.setenv("ASTROMER_HF_RELEASES", str(releases))
    monkeypatch.setenv("ASTROMER_HF_RELEASE_MIRROR", str(REFERENCE))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    hub_offline(monkeypatch)
    workdir, done = clones[page]
    return PageRunner(workdir, done, monkeypatch, capsys)


def _needs_reference() -> None:
    if not (REFERENCE / "macho_a0.zip").is_file():
        pytest.skip(f"the released checkpoint is not at {REFERENCE} (../shared is absent): no offline astromer-base")


#: What each run page must leave behind, beyond its blocks and commands succeeding.
LEAVES = {
    "README.md": ["data/synthetic/train"],
    "docs/data.md": ["data/synthetic/train"],
    "docs/tutorials/embed.md": ["embeddings.parquet", "curves.parquet", "curves-max.parquet", "my_curves.parquet"],
    "docs/tutorials/prepare_survey.md": ["data/tutorial/train", "data/mine/train"],
    "docs/tutorials/pretrain.md": ["outputs/tutorial/pretrained/best/model.safetensors",
                                   "outputs/tutorial/figures/reconstruction.png"],
    "docs/tutorials/few_labels.md": ["outputs/tutorial-classifier/best/model.safetensors"],
    "docs/tutorials/publish.md": [],
    "docs/tutorials/embed_and_classify.md": [],
}


@pytest.mark.parametrize("page", list(RUN_PAGES))
def test_page_runs(page, runner, tmp_path):
    """The page's python blocks and RUN commands, in order (README.md: its commands; its python block is above)."""
    if page in ("README.md", "docs/tutorials/embed.md", "docs/tutorials/embed_and_classify.md"):
        _needs_reference()
    if page == "README.md":
        _run_commands_only(runner, page)
    elif page == "docs/tutorials/publish.md":
        from hub_server import hub_env, serve_hub

        with serve_hub(tmp_path / "hub", user="you") as server:
            hub_env(runner.monkeypatch, server, tmp_path / "hub-home")
            runner.run(page)
            assert {"you/astromer-tutorial", "you/tutorial-curves"} <= set(_repos(tmp_path / "hub"))
    else:
        runner.run(page)
    for path in LEAVES[page]:
        assert (runner.workdir / path).exists(), f"{page} did not leave {path}"


def _repos(root: Path) -> list[str]:
    folder = root / "repos"
    return [f"{path.parent.name}/{path.stem}" for path in folder.rglob("*.json")]


def _blocks_as_run(page: str, text: str) -> Iterator[tuple[Block, Block]]:
    """``(block as written, block as run)`` pairs of a page whose run text is ``text`` (SMALL applied)."""
    written, small = page_blocks(page), page_blocks(page, text)
    assert len(written) == len(small), f"SMALL changed the blocks of {page}"
    yield from zip(written, small)


def _run_commands_only(runner: PageRunner, page: str) -> None:
    text = (ROOT / page).read_text()
    for old, new in SMALL.get(page, []):
        text = text.replace(old, new)
    runner.monkeypatch.chdir(runner.workdir)
    for written, block in _blocks_as_run(page, text):
        if block.lang in SHELL:
            for documented, tokens in zip(commands(written), commands(block), strict=True):
                if COMMANDS[key(documented)] == RUN:
                    runner.command(block, tokens)
