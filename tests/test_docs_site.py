"""The documentation site (issue H item 1-2): it builds with `mkdocs build --strict`, every page is in its navigation,
the recipes reference is what the code generates now, and the figures exist and are what their script draws."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
MKDOCS = ROOT / ".venv" / "bin" / "mkdocs"
sys.path.insert(0, str(ROOT / "scripts"))

pytestmark = pytest.mark.timeout(300)


def _mkdocs_config() -> dict:
    class Loader(yaml.SafeLoader):
        pass

    # mkdocs.yml may hold `!!python/name:` tags (Material's emoji options); none is needed to read the nav
    Loader.add_multi_constructor("tag:yaml.org,2002:python/", lambda loader, suffix, node: None)
    return yaml.load((ROOT / "mkdocs.yml").read_text(), Loader=Loader)


def _nav_pages(nav) -> list[str]:
    pages = []
    for entry in nav:
        value = next(iter(entry.values())) if isinstance(entry, dict) else entry
        if isinstance(value, list):
            pages += _nav_pages(value)
        elif isinstance(value, str) and value.endswith(".md"):
            pages.append(value)
    return pages


def test_every_page_is_in_the_navigation_and_every_entry_exists():
    nav = _nav_pages(_mkdocs_config()["nav"])
    on_disk = {str(path.relative_to(DOCS)) for path in DOCS.rglob("*.md")}
    assert not on_disk - set(nav), f"pages missing from the nav of mkdocs.yml: {sorted(on_disk - set(nav))}"
    assert not set(nav) - on_disk, f"nav entries without a page: {sorted(set(nav) - on_disk)}"
    assert len(nav) == len(set(nav)), "a page is listed twice in the nav"


def test_the_site_builds_strict(tmp_path):
    """Broken links and anchors, missing images, pages outside the nav and docstrings the API reference cannot
    parse are all warnings, and `--strict` makes them errors."""
    if not MKDOCS.exists():
        pytest.skip("mkdocs is installed into .venv by scripts/setup.sh (the docs extra, part of dev)")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    result = subprocess.run([str(MKDOCS), "build", "--strict", "--site-dir", str(tmp_path / "site")], cwd=ROOT,
                            env=env, capture_output=True, text=True, timeout=280)
    assert result.returncode == 0, result.stderr[-5000:]
    site = tmp_path / "site"
    for page in ("index.html", "getting_started/index.html", "recipes/index.html", "api/models/index.html",
                 "tutorials/embed/index.html", "changelog/index.html"):
        assert (site / page).is_file(), page
    api = (site / "api" / "models" / "index.html").read_text()
    assert "AstromerForMaskedReconstruction" in api and "time_encoding_base" in api  # rendered from the docstrings
    assert ":class:" not in api and ":func:" not in api  # Sphinx roles rewritten by scripts/griffe_sphinx_roles.py
    changelog = (site / "changelog" / "index.html").read_text()
    assert "Keep a Changelog" in changelog  # CHANGELOG.md included from the repository root


def test_the_recipes_reference_is_what_the_code_generates():
    from make_recipes_reference import PAGE, render

    assert PAGE.read_text() == render(), ("docs/recipes.md is out of date with recipes/ or the docstrings it is "
                                          "generated from: run `.venv/bin/python scripts/make_recipes_reference.py`")


def test_the_recipes_reference_names_every_field_of_every_recipe():
    from make_recipes_reference import recipe_rows

    page = (DOCS / "recipes.md").read_text()
    for path in sorted((ROOT / "recipes").glob("*.yaml")):
        assert f"### {path.name}\n" in page
        section = page.split(f"### {path.name}\n", 1)[1].split("\n### ", 1)[0]
        recipe = yaml.safe_load(path.read_text())
        rows = recipe_rows(recipe)
        fields = [row[0] for row in rows]
        valued = [field for field, value, _ in rows if value]  # a mapping shown whole covers its keys
        for leaf in _leaf_paths(recipe):
            assert any(leaf == field or leaf.startswith(field + ".") for field in valued), (path.name, leaf)
        for field in fields:
            assert f"| `{field}` |" in section, (path.name, field)


def _leaf_paths(value, path: str = ""):
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _leaf_paths(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list) and value and all(isinstance(item, dict) for item in value):
        for index, item in enumerate(value):
            yield from _leaf_paths(item, f"{path}[{index}]")
    else:
        yield path


def test_the_docstring_parser_of_the_reference_reads_every_layout():
    from make_recipes_reference import args_section

    indented = '''Summary.

    Args:
        path: folder of the prepared dataset.
        mask_probed_fraction, mask_random_fraction: masking fractions; None takes
            the model's.
        times (`torch.Tensor` of shape `(B, T)`): centred times.

    Returns:
        nothing: not an argument.
    '''
    parsed = args_section(indented)
    assert parsed["path"] == "folder of the prepared dataset."
    assert parsed["mask_random_fraction"] == "masking fractions; None takes the model's."
    assert parsed["times"] == "centred times." and "nothing" not in parsed
    inline = "Args: n_curves: how many objects to simulate; seed: the draw; cadence: ``macho`` or ``ztf``."
    assert args_section(inline) == {"n_curves": "how many objects to simulate", "seed": "the draw",
                                    "cadence": "`macho` or `ztf`."}
    flush = "Args:\nfields: MACHO field numbers.\n    More about fields.\ntiles: tile files.\n"
    assert args_section(flush) == {"fields": "MACHO field numbers. More about fields.", "tiles": "tile files."}
    assert args_section("No arguments here.") == {}


def test_sphinx_roles_become_inline_code_in_the_api_reference():
    from griffe_sphinx_roles import markdown_roles

    text = "See :class:`AstromerConfig`, :func:`~astromer_hf.lightcurves.window_slices` and ``x = 1``. Example::"
    assert markdown_roles(text) == "See `AstromerConfig`, `window_slices` and `x = 1`. Example:"
    fenced = "```python\nprint(1)\n```"
    assert markdown_roles(fenced) == fenced


# ------------------------------------------------------------------------------------------------ figures
def _images() -> list[tuple[Path, str]]:
    found = []
    for page in DOCS.rglob("*.md"):
        for target in re.findall(r"!\[[^\]]*\]\(([^)\s]+)\)", page.read_text()):
            found.append((page, target))
    return found


def test_every_image_the_pages_show_exists():
    images = _images()
    assert images
    for page, target in images:
        assert (page.parent / target).resolve().is_file(), f"{page.relative_to(ROOT)} shows {target}, which is missing"


@pytest.mark.parametrize("name", ["windows_and_masks.png", "time_encoding.png"])
def test_the_code_drawn_figures_are_what_the_script_draws_now(name, tmp_path):
    """scripts/make_doc_figures.py draws these from the package's own code (simulator, processor, time encoding);
    drawn again, they must match the committed files (a changed window rule, mask or encoding changes them). A
    small tolerance absorbs font rendering differences between matplotlib builds."""
    from matplotlib.image import imread

    import make_doc_figures

    make = {"windows_and_masks.png": make_doc_figures.windows_and_masks_figure,
            "time_encoding.png": make_doc_figures.time_encoding_figure}[name]
    make().savefig(tmp_path / name, dpi=110)
    committed, fresh = imread(DOCS / "figures" / name), imread(tmp_path / name)
    assert committed.shape == fresh.shape, "the figure changed size: run scripts/make_doc_figures.py"
    differing = np.mean(np.abs(committed[..., :3] - fresh[..., :3]).max(axis=-1) > 0.25)
    assert differing < 0.002, (f"{differing:.2%} of the pixels of {name} differ from what the code draws now: run "
                               "`.venv/bin/python scripts/make_doc_figures.py` and look at the result")


def test_the_windows_figure_counts_what_the_processor_computes():
    """The numbers the concepts page quotes about its figure come from the processor."""
    import make_doc_figures

    from astromer_hf import AstromerProcessor

    curve = make_doc_figures.example_curve()
    processor = AstromerProcessor()
    tiling = processor([curve], windows="tiling", return_tensors="np")
    legacy = processor([curve], windows="legacy", return_tensors="np")
    masked = processor([curve], windows="random", mask=True, seed=0, return_tensors="np")
    concepts = (DOCS / "concepts.md").read_text()
    assert f"{len(curve)} observations over" in concepts
    lengths = ", ".join(str(n) for n in tiling["window_length"][:-1]) + f" and {tiling['window_length'][-1]}"
    assert f"windows of {lengths} observations" in concepts
    overlap = int(legacy["window_start"][-2] + legacy["window_length"][-2] - legacy["window_start"][-1])
    assert f"the last one sharing {overlap} observations" in concepts
    probed, hidden = masked["probed_positions"][0], masked["masked_positions"][0]
    assert (int(probed.sum()), int(hidden.sum())) == (100, 64)
