"""Keep the resident memory of a memory-mapped dataset bounded while it is read at random.

`datasets` memory-maps a split's Arrow files. Every page of a mapped file the process touches stays mapped in it,
and counts in its resident memory (``VmRSS``), until the mapping goes away. A training loader that draws its
batches at random from a large split touches a few kilobytes per curve, but on Linux each such read maps the whole
page-cache folio around it (about 0.5 MB per curve on the machine of docs/benchmarks.md): pretraining from a
million curves grew to 2.7 GB resident for 0.9 GB it had allocated, on its way to the size of the whole split.
Schedulers and monitors that account ``VmRSS`` see that as the job's memory.

Those pages are clean copies of the file. ``madvise(MADV_DONTNEED)`` on a read-only file mapping unmaps them from
the process without touching the file or the page cache: the addresses stay valid, and a later read maps the page
again from the cache (or the disk). :class:`MappedPageBudget` does that when the mapped pages of a split's files have
grown past a budget since the last time. Python's ``mmap`` has ``madvise``, but these mappings are made by Arrow,
which does not expose them, so they are found by file name in ``/proc/self/maps`` (the kernel's list of this
process's mappings) and advised through the C library. On other systems nothing is done.
"""

from __future__ import annotations

import ctypes
import os
import sys
from collections.abc import Iterable
from pathlib import Path

#: ``MADV_DONTNEED`` of Linux (``<sys/mman.h>``; the same value on every Linux architecture).
_MADV_DONTNEED = 4
_ON_LINUX = sys.platform.startswith("linux")


def mapped_ranges(paths: Iterable[str]) -> list[tuple[int, int]]:
    """``(start, end)`` addresses of this process's memory mappings of the files ``paths`` (empty off Linux)."""
    wanted = {os.path.realpath(path) for path in paths}
    if not wanted or not _ON_LINUX:
        return []
    ranges = []
    with open("/proc/self/maps", encoding="utf-8", errors="surrogateescape") as maps:
        for line in maps:
            # "start-end perms offset dev inode   path": the path may hold spaces, so split off the first five fields
            fields = line.rstrip("\n").split(maxsplit=5)
            if len(fields) == 6 and fields[5] in wanted and "w" not in fields[1]:
                start, end = (int(address, 16) for address in fields[0].split("-"))
                ranges.append((start, end))
    return ranges


def release_mapped_pages(paths: Iterable[str]) -> int:
    """Unmap from this process the resident pages of its read-only mappings of the files ``paths``.

    The file and the page cache are untouched and the mappings stay usable. Returns the bytes of mappings advised
    (0 where the files are not mapped, or not on Linux).
    """
    ranges = mapped_ranges(paths)
    if not ranges:
        return 0
    libc = ctypes.CDLL(None, use_errno=True)
    libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    libc.madvise.restype = ctypes.c_int
    return sum(end - start for start, end in ranges if libc.madvise(start, end - start, _MADV_DONTNEED) == 0)


def resident_file_pages_mb() -> float:
    """This process's resident pages of mapped files (``RssFile``), in MB; 0 off Linux."""
    if not _ON_LINUX:
        return 0.0
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssFile:"):
            return int(line.split()[1]) / 1024
    return 0.0


class MappedPageBudget:
    """Releases a dataset's mapped pages when this process's resident file pages grew by ``budget_mb`` since the
    last release (or since the first :meth:`check` in this process).

    Call :meth:`check` after each read. It costs one read of ``/proc/self/status`` (tens of microseconds); a release
    costs a few milliseconds and happens once per ``budget_mb`` of pages read. Pickles by file names, so each
    DataLoader worker keeps its own budget.
    """

    def __init__(self, paths: Iterable[str], budget_mb: float = 256.0) -> None:
        self.paths = [str(path) for path in paths]
        self.budget_mb = budget_mb
        self._pid: int | None = None
        self._baseline = 0.0

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_pid": None}

    def check(self) -> bool:
        """Release the pages if over budget; returns whether it did."""
        if not self.paths or not _ON_LINUX:
            return False
        resident = resident_file_pages_mb()
        if self._pid != os.getpid():
            self._pid, self._baseline = os.getpid(), resident
            return False
        if resident - self._baseline < self.budget_mb:
            return False
        release_mapped_pages(self.paths)
        self._baseline = resident_file_pages_mb()
        return True
