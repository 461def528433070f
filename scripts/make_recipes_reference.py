"""Write docs/recipes.md, the reference of every field of every recipe in recipes/, from the code.

    .venv/bin/python scripts/make_recipes_reference.py            # rewrite docs/recipes.md
    .venv/bin/python scripts/make_recipes_reference.py --check    # exit 1 if docs/recipes.md is out of date

Each field's meaning and default come from where the field is defined, never from this script: the ``Args:``
section of the docstring and the signature of the class a ``class_path`` names (its parents' too, for arguments
passed on through ``**kwargs``), the fields of ``AstromerConfig`` for ``config_overrides``, the configuration
dataclass of the survey for a ``prepare`` block, ``few_shot_splits`` for ``few_shot``, and the dataclasses of
``astromer_hf.evaluation.config`` for the ``astromer evaluate`` recipes. So a renamed or re-documented argument
changes the page, and tests/test_docs_site.py fails until the page is written again.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import inspect
import re
import sys
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from griffe_sphinx_roles import markdown_roles  # noqa: E402  (the API reference's own role rewriting)

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ROOT / "recipes"
PAGE = ROOT / "docs" / "recipes.md"
#: Docstring sections that end an ``Args:`` section.
SECTION = re.compile(r"^\s*(Returns|Raises|Yields|Attributes|Examples?|Notes?|Warnings?|See Also|References|"
                     r"Example usage|Methods)\s*:\s*$")
ENTRY = re.compile(r"^(?P<names>\*{0,2}[A-Za-z_][\w]*(?:\s*,\s*[A-Za-z_][\w]*)*)\s*(?:\((?:[^()]|\([^()]*\))*\))?\s*:\s*"
                   r"(?P<text>.*)$")
#: The top-level keys of a training recipe that belong to the Lightning CLI itself.
CLI_KEYS = {
    "seed_everything": "the seed of every random generator, set before any class is built (an integer: `true` "
                       "would draw a random one, `false` seeds nothing)",
    "ckpt_path": "checkpoint to resume from (`last` for the newest `last*.ckpt`)",
}
#: What the data module's ``prepare`` block takes besides the survey configuration's fields.
PREPARE_KEYS = {
    "survey": "the survey, as `astromer data prepare SURVEY` takes it (`synthetic`, `macho`, `ogle3`, `atlas`, "
              "`ztf`, `gaia_dr3`, `astromer_archive`)",
    "config": "the survey's configuration, as `astromer data prepare --config` takes it",
}


# ------------------------------------------------------------------------------------------------------ docstrings
def _clean(text: str) -> str:
    """One line of Markdown: Sphinx roles and double backticks as inline code, ``|`` escaped for tables."""
    text = re.sub(r":paramref:`~?([^`]+)`", r"`\1`", text)
    return markdown_roles(" ".join(text.split())).replace("|", "\\|")


def args_section(docstring: str | None) -> dict[str, str]:
    """``name -> description`` of the ``Args:`` section of a Google-style docstring.

    Handles entries with a type in parentheses, several names sharing one description (``a, b: ...``), the inline
    form ``Args: a: ...; b: ...`` and entries indented like the ``Args:`` line itself.
    """
    if not docstring:
        return {}
    lines = inspect.cleandoc(docstring).splitlines()
    for start, line in enumerate(lines):
        match = re.match(r"^\s*(Args|Arguments|Parameters)\s*:\s*(.*)$", line)
        if match:
            break
    else:
        return {}
    found: dict[str, str] = {}
    inline = match.group(2).strip()
    if inline:  # "Args: a: text; b: text" (the rest of the docstring continues the last entry)
        body = " ".join([inline, *lines[start + 1:]])
        for part in re.split(r";\s+(?=[A-Za-z_]\w*\s*:)", body):
            entry = ENTRY.match(part.strip())
            if entry:
                for name in entry.group("names").split(","):
                    found[name.strip().lstrip("*")] = _clean(entry.group("text"))
        return found
    block: list[str] = []
    for line in lines[start + 1:]:
        if SECTION.match(line):
            break
        block.append(line)
    indents = [len(line) - len(line.lstrip()) for line in block if line.strip()]
    if not indents:
        return {}
    base = min(indents)
    current: list[str] | None = None
    for line in block:
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        entry = ENTRY.match(line.strip()) if indent == base else None
        if entry:
            current = [entry.group("text")]
            for name in entry.group("names").split(","):
                found[name.strip().lstrip("*")] = current  # shared list: continuation lines reach every name
        elif current is not None:
            current.append(line.strip())
    return {name: _clean(" ".join(parts)) for name, parts in found.items()}


def _docstrings(target: Any) -> list[str | None]:
    """The docstrings describing ``target``'s arguments: a class's own and its ``__init__``'s, then its parents'."""
    if inspect.isclass(target):
        docs = []
        for klass in target.__mro__:
            if klass is object:
                continue
            docs.append(klass.__dict__.get("__doc__"))
            init = klass.__dict__.get("__init__")
            docs.append(getattr(init, "__doc__", None))
        return docs
    return [getattr(target, "__doc__", None)]


def _parameters(target: Any) -> dict[str, inspect.Parameter]:
    """The named arguments of ``target``; a class's ``**kwargs`` passed on to its parent add the parent's."""
    if dataclasses.is_dataclass(target):
        return {f.name: inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=_field_default(f))
                for f in dataclasses.fields(target)}
    classes = target.__mro__ if inspect.isclass(target) else [target]
    found: dict[str, inspect.Parameter] = {}
    for klass in classes:
        function = klass.__dict__.get("__init__") if inspect.isclass(target) else klass
        if function is None:
            continue
        parameters = inspect.signature(function).parameters
        for name, parameter in parameters.items():
            if name != "self" and parameter.kind not in (parameter.VAR_KEYWORD, parameter.VAR_POSITIONAL):
                found.setdefault(name, parameter)
        if not any(p.kind == p.VAR_KEYWORD for p in parameters.values()):
            break
    return found


def _field_default(field: dataclasses.Field) -> Any:
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return inspect.Parameter.empty


def _first_sentence(text: str) -> str:
    return re.split(r"(?<!\bal)(?<!e\.g)(?<!i\.e)(?<=[.!?])\s+(?=[A-Z(`])", text, maxsplit=1)[0]


class Owner:
    """What a mapping's keys are the arguments of: their descriptions and defaults. For a class from another
    package (Lightning's), only the first sentence of each description is kept, and a default of None (which there
    usually means "the library decides") is not shown."""

    def __init__(self, target: Any, label: str) -> None:
        self.target, self.label = target, label
        self.ours = getattr(target, "__module__", "").startswith("astromer_hf")
        self.docs: dict[str, str] = {}
        for docstring in _docstrings(target):
            for name, text in args_section(docstring).items():
                self.docs.setdefault(name, text)
        self.parameters = _parameters(target)

    def describe(self, key: str) -> str:
        text = self.docs.get(key, "")
        if text and not self.ours:
            text = _first_sentence(text)
        parameter = self.parameters.get(key)
        default = parameter.default if parameter is not None else inspect.Parameter.empty
        if default is not inspect.Parameter.empty and not dataclasses.is_dataclass(default) and (
                self.ours or default is not None):
            shown = "null" if default is None else yaml.safe_dump(
                _plain(default), default_flow_style=True, width=10**6).strip().removesuffix("...").strip()
            if len(shown) > 60:
                shown = shown[:57] + "..."
            text = f"{text} (default `{shown}`)" if text else f"default `{shown}`"
        if parameter is None and key not in self.docs:
            raise KeyError(f"{key!r} is not an argument of {self.label}")
        return text or "(not documented)"


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        return dataclasses.asdict(value)
    if isinstance(value, tuple):
        return [_plain(item) for item in value]
    if isinstance(value, (list, dict, str, int, float, bool)) or value is None:
        return value
    return str(value)


def _import(path: str) -> Any:
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def _summary(target: Any) -> str:
    """The first sentence of a class's docstring."""
    doc = inspect.getdoc(target) or ""
    return _clean(_first_sentence(" ".join(doc.split("\n\n")[0].split())))


# ------------------------------------------------------------------------------------------------------ recipes
def _value(value: Any) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, width=10**6).strip().removesuffix("...").strip()
    if len(text) > 80:
        text = text[:77] + "..."
    return f"`{text}`".replace("|", "\\|")


def _prepare_owner(block: dict[str, Any]) -> Owner:
    from astromer_hf.data.prepare import builder_class

    config_class = builder_class(block["survey"]).BUILDER_CONFIG_CLASS
    owner = Owner(config_class, f"the {block['survey']} configuration ({config_class.__name__})")
    owner.docs.update(PREPARE_KEYS)
    return owner


def _sub_owner(owner: Owner, key: str, value: Any) -> Owner | None:
    """The owner of a nested mapping's keys, where it is not a ``class_path`` entry."""
    from astromer_hf import AstromerConfig
    from astromer_hf.data.splits import few_shot_splits

    if key == "config_overrides":
        return Owner(AstromerConfig, "AstromerConfig")
    if key == "prepare" and isinstance(value, dict) and "survey" in value:
        return _prepare_owner(value)
    if key == "few_shot":
        split_owner = Owner(few_shot_splits, "few_shot_splits")
        return split_owner
    hint = typing.get_type_hints(owner.target).get(key) if dataclasses.is_dataclass(owner.target) else None
    if hint is not None and dataclasses.is_dataclass(hint):
        return Owner(hint, hint.__name__)
    return None


def walk(value: Any, path: str, owner: Owner) -> Iterator[tuple[str, str, str]]:
    """``(field, value, meaning)`` rows of ``value`` (a recipe or a part of it) whose keys ``owner`` describes."""
    for key, item in value.items():
        here = f"{path}.{key}" if path else key
        meaning = owner.describe(key)
        if isinstance(item, dict) and "class_path" in item:
            yield from _class_rows(item, here, meaning)
        elif isinstance(item, list) and item and all(isinstance(entry, dict) and "class_path" in entry
                                                     for entry in item):
            yield here, f"{len(item)} entries", meaning
            for index, entry in enumerate(item):
                yield from _class_rows(entry, f"{here}[{index}]", "")
        elif isinstance(item, dict) and (sub := _sub_owner(owner, key, item)) is not None:
            if dataclasses.is_dataclass(sub.target):
                meaning = f"{meaning} {sub.label}: {_summary(sub.target)}"
            yield here, "", meaning
            yield from walk(item, here, sub)
        elif isinstance(item, dict) and key in ("models", "model_recipes"):
            yield here, "", meaning
            for name, entry in item.items():
                yield f"{here}.{name}", _value(entry), f"the `{name}` entry of `{key}`"
        else:
            yield here, _value(item), meaning


def _class_rows(entry: dict[str, Any], path: str, meaning: str) -> Iterator[tuple[str, str, str]]:
    target = _import(entry["class_path"])
    summary = _summary(target)
    text = f"{meaning.rstrip('.')}: {summary}" if meaning and summary else meaning or summary
    yield f"{path}.class_path", f"`{entry['class_path']}`", text
    yield from walk(entry.get("init_args") or {}, f"{path}.init_args", Owner(target, entry["class_path"]))


def recipe_rows(recipe: dict[str, Any]) -> list[tuple[str, str, str]]:
    """The rows of one recipe: a training recipe (``trainer`` / ``model`` / ``data``) or an evaluation one."""
    if "trainer" not in recipe:
        from astromer_hf.evaluation.config import EvaluationConfig

        return list(walk(recipe, "", Owner(EvaluationConfig, "EvaluationConfig")))
    from lightning.pytorch import Trainer

    rows: list[tuple[str, str, str]] = []
    for key, value in recipe.items():
        if key == "trainer":
            rows.extend(walk(value, "trainer", Owner(Trainer, "lightning.pytorch.Trainer")))
        elif key in ("model", "data", "optimizer", "lr_scheduler"):
            rows.extend(_class_rows(value, key, {"model": "the LightningModule", "data": "the LightningDataModule",
                                                  "optimizer": "the optimizer", "lr_scheduler": "the scheduler"}[key]))
        elif key in CLI_KEYS:
            rows.append((key, _value(value), CLI_KEYS[key]))
        else:
            raise KeyError(f"unknown top-level key {key!r} in a training recipe")
    return rows


def _header_comment(text: str) -> str:
    """The recipe's leading comment, first paragraph, as one line."""
    lines = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        stripped = line.lstrip("#").strip()
        if not stripped:
            if lines:
                break
            continue
        lines.append(stripped)
    return _clean(" ".join(lines))


def astromer_classes(recipes: dict[str, dict[str, Any]]) -> list[str]:
    """Every astromer_hf class a training recipe names, in order of first appearance."""
    found: list[str] = []

    def visit(value: Any) -> None:
        if isinstance(value, dict):
            path = value.get("class_path")
            if isinstance(path, str) and path.startswith("astromer_hf.") and path not in found:
                found.append(path)
            for item in value.values():
                visit(item)
        elif isinstance(value, list):
            for item in value:
                visit(item)

    for recipe in recipes.values():
        visit(recipe)
    return found


def render(recipes_dir: Path = RECIPES) -> str:
    """The whole page, for the recipes in ``recipes_dir``."""
    texts = {path.name: path.read_text() for path in sorted(Path(recipes_dir).glob("*.yaml"))}
    recipes = {name: yaml.safe_load(text) for name, text in texts.items()}
    training = [name for name, recipe in recipes.items() if "trainer" in recipe]
    evaluation = [name for name in recipes if name not in training]
    out = [
        "# Recipes reference",
        "",
        "Every field of every recipe in `recipes/`, with what it means and its default. This page is generated by",
        "`scripts/make_recipes_reference.py` from the recipes and from the code: the docstrings and signatures of",
        "the classes the recipes name, the fields of `AstromerConfig` and of the survey configurations, and the",
        "settings of `astromer evaluate`. `tests/test_docs_site.py` fails when the page differs from what the script",
        "writes now, so it cannot drift; change the code or the recipe, then run the script.",
        "",
        "Training recipes run with `lightning fit --config recipes/NAME.yaml` (or `astromer fit`); any field can be",
        "overridden on the command line by its path (`--trainer.max_epochs 3`, `--data.init_args.batch_size 64`).",
        "Evaluation recipes run with `astromer evaluate --config recipes/NAME.yaml` (overrides: `--folds 1`,",
        "`--head.epochs 50`). What each recipe is for is in [Training](training.md#recipes) and",
        "[Evaluation](evaluation.md).",
        "",
        "Where the meaning says *default*, that is the value the field takes when a recipe leaves it out.",
        "",
        "## Training recipes",
        "",
    ]
    for name in training:
        out += _recipe_section(name, texts[name], recipes[name], f"lightning fit --config recipes/{name}")
    out += ["## Evaluation recipes", ""]
    for name in evaluation:
        out += _recipe_section(name, texts[name], recipes[name], f"astromer evaluate --config recipes/{name}")
    out += ["## Every argument of the astromer_hf classes the recipes name", "",
            "Including those no recipe sets; a recipe gives them under the class's `init_args`.", ""]
    for path in astromer_classes(recipes):
        target = _import(path)
        owner = Owner(target, path)
        out += [f"### `{path}`", "", _summary(target), "", "| argument | meaning |", "|---|---|"]
        for key in owner.parameters:
            out.append(f"| `{key}` | {owner.describe(key)} |")
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def _recipe_section(name: str, text: str, recipe: dict[str, Any], command: str) -> list[str]:
    lines = [f"### {name}", "", _header_comment(text), "", f"`{command}`", "", "| field | value | meaning |",
             "|---|---|---|"]
    for field, value, meaning in recipe_rows(recipe):
        lines.append(f"| `{field}` | {value} | {meaning} |")
    return lines + [""]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if docs/recipes.md is out of date")
    parser.add_argument("--recipes", type=Path, default=RECIPES, help="the recipes folder (default recipes/)")
    args = parser.parse_args(argv)
    page = render(args.recipes)
    if args.check:
        if not PAGE.is_file() or PAGE.read_text() != page:
            print(f"{PAGE.relative_to(ROOT)} is out of date: run python scripts/make_recipes_reference.py",
                  file=sys.stderr)
            return 1
        print(f"{PAGE.relative_to(ROOT)} is up to date")
        return 0
    PAGE.write_text(page)
    print(f"wrote {PAGE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
