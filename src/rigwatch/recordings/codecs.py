"""Parquet compression codecs a recording may be written with (no pyarrow import here, so the
configuration models can name them cheaply)."""

from __future__ import annotations

from typing import Literal, get_args

Codec = Literal["zstd", "snappy", "lz4", "gzip", "brotli", "none"]
"""A Parquet codec name; ``"none"`` writes uncompressed pages."""

CODECS: tuple[str, ...] = get_args(Codec)
"""Every :data:`Codec`, zstd (the default) first."""

LEVEL_CODECS: frozenset[str] = frozenset({"zstd", "gzip", "brotli", "lz4"})
"""Codecs that take a ``compression_level``."""
