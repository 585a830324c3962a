"""Helpers shared by benchmarks: run a station process, update docs/benchmarks.md."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "benchmarks.md"
sys.path.insert(0, str(ROOT / "tests"))

if TYPE_CHECKING:
    from support.process import StationProcess


def start_station(config: Path) -> StationProcess:
    """A station process on a free port, ready to serve (see ``tests/support/process.py``);
    imported here only, so benchmarks of other parts need no station code."""
    from support.process import StationProcess

    return StationProcess(config)


def station_status(station: StationProcess) -> dict:
    """The station's ``GET /api/status``."""
    return httpx.get(f"{station.base_url}/api/status", timeout=10).json()


def update_docs(section: str, markdown: str) -> None:
    """Replace the block between ``<!-- section:begin -->`` and ``<!-- section:end -->``."""
    begin, end = f"<!-- {section}:begin -->", f"<!-- {section}:end -->"
    text = DOCS.read_text() if DOCS.exists() else "# Benchmarks\n"
    block = f"{begin}\n{markdown.rstrip()}\n{end}"
    if begin in text:
        text = re.sub(
            re.escape(begin) + r".*?" + re.escape(end), lambda _m: block, text, flags=re.S
        )
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    DOCS.write_text(text)


def machine_line() -> str:
    import platform

    import psutil

    return (
        f"{platform.processor() or platform.machine()}, {psutil.cpu_count()} cores, "
        f"{psutil.virtual_memory().total / 2**30:.0f} GiB, Python {platform.python_version()}"
    )
