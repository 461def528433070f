"""Hiding transformers' own progress bars without hiding downloads.

``transformers.utils.logging.disable_progress_bar()`` turns off transformers' bars ("Loading weights" for a model
read from disk, "Writing model shards" at each save) and, with them, every ``huggingface_hub`` progress bar of the
process, including the download bars of named releases and survey files that users wait on. The functions here
turn off the first and leave the second as they were.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

__all__ = ["hide_weight_loading_bars", "weight_loading_bars_hidden"]


def hide_weight_loading_bars() -> None:
    """Turn transformers' own progress bars off for the rest of the process (a command's entry point)."""
    from huggingface_hub.utils import are_progress_bars_disabled, enable_progress_bars
    from transformers.utils import logging as transformers_logging

    downloads_shown = not are_progress_bars_disabled()
    transformers_logging.disable_progress_bar()
    if downloads_shown:
        enable_progress_bars()


@contextlib.contextmanager
def weight_loading_bars_hidden() -> Iterator[None]:
    """Transformers' own progress bars off inside the block, as they were after it (library code)."""
    from transformers.utils import logging as transformers_logging

    shown = transformers_logging.is_progress_bar_enabled()
    hide_weight_loading_bars()
    try:
        yield
    finally:
        if shown:
            transformers_logging.enable_progress_bar()


#: Loggers whose level a command lowers for its own output (``astromer embed`` prints the cleaning report itself).
COMMAND_LOGGERS = ("astromer_hf.embedding",)


@contextlib.contextmanager
def command_settings_restored() -> Iterator[None]:
    """Put back, after a command run in this process (``astromer_hf.cli.main`` called from Python, a notebook or a
    test), the process-wide switches the command changes for its own output: transformers' and huggingface_hub's
    progress bars and the levels of :data:`COMMAND_LOGGERS`."""
    import logging

    from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars
    from transformers.utils import logging as transformers_logging

    transformers_shown, hub_shown = transformers_logging.is_progress_bar_enabled(), not are_progress_bars_disabled()
    levels = {name: logging.getLogger(name).level for name in COMMAND_LOGGERS}
    try:
        yield
    finally:
        (transformers_logging.enable_progress_bar if transformers_shown else transformers_logging.disable_progress_bar)()
        (enable_progress_bars if hub_shown else disable_progress_bars)()
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
