"""A griffe extension for the API reference (mkdocs.yml): Sphinx roles in the docstrings become inline code.

The docstrings name other objects the Sphinx way (``:class:`AstromerConfig```, ``:func:`~astromer_hf.embed```,
``:mod:`astromer_hf.releases```), which Markdown would show with the role spelled out. Each role is replaced by the
object's name in backticks; a leading ``~`` keeps the last dotted part only, as in Sphinx. Double backticks (the
reStructuredText inline literal) become single ones, and the ``::`` that opens a reStructuredText literal block (an
indented block after a blank line, which Markdown shows as code too) becomes ``:``.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

#: ``:role:`target``` for the Python-domain roles the docstrings use (``:py:class:`` spelled out as well).
ROLE = re.compile(r":(?:py:)?(?:class|func|meth|mod|attr|obj|data|exc|const):`(~?)([^`]+)`")
DOUBLE_BACKTICKS = re.compile(r"(?<!`)``([^`\n]+)``(?!`)")
LITERAL_BLOCK = re.compile(r"::$", flags=re.M)


def markdown_roles(text: str) -> str:
    """``text`` with every Sphinx role and reStructuredText literal turned into Markdown inline code."""
    text = LITERAL_BLOCK.sub(":", DOUBLE_BACKTICKS.sub(r"`\1`", text))
    return ROLE.sub(lambda match: f"`{match.group(2).rsplit('.', 1)[-1] if match.group(1) else match.group(2)}`",
                    text)


class SphinxRoles(griffe.Extension):
    """Rewrite the docstring of every object griffe loads (see the module docstring)."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = markdown_roles(obj.docstring.value)
