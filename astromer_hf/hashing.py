"""The package's one file-hashing helper (downloads, release files, converted checkpoints all hash through it)."""

from __future__ import annotations

import hashlib
import os
import re

__all__ = ["BLOCK_SIZE", "file_digest", "normalize_sha256", "text_digest"]

#: Bytes read at a time: files are hashed in blocks, never loaded whole.
BLOCK_SIZE = 1 << 20

_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


def file_digest(path: str | os.PathLike[str], algorithm: str = "sha256") -> str:
    """Hex digest of a file's bytes (``algorithm``: any name ``hashlib.new`` knows, e.g. ``"sha256"``, ``"md5"``)."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        while block := handle.read(BLOCK_SIZE):
            digest.update(block)
    return digest.hexdigest()


def text_digest(text: str, algorithm: str = "sha256") -> str:
    """Hex digest of a text's UTF-8 bytes (stable short names for cache entries)."""
    return hashlib.new(algorithm, text.encode("utf-8")).hexdigest()


def normalize_sha256(value: str) -> str:
    """A published sha256, lower-cased and stripped; ``ValueError`` unless it is 64 hexadecimal characters."""
    normal = value.strip().lower()
    if not _SHA256_RE.match(normal):
        raise ValueError(f"sha256 must be 64 hexadecimal characters, got {value!r}")
    return normal
