"""The fleet dashboard's sources set text, never markup: machine names, sites, tags, alarm
messages and system info are free text stored verbatim (an HTML or SQL string included), so
every place that shows them must create text nodes (``h(tag, attrs, ...children)``,
``textContent``). A markup sink in the dashboard's code, or in the shared modules it imports,
fails this test; tests/e2e/test_fleet_dashboard.py checks the result in a browser."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

FRONTEND = Path(__file__).resolve().parents[3] / "frontend" / "src"

SINKS = re.compile(
    r"\.innerHTML\b|\.outerHTML\b|insertAdjacentHTML|document\.write|createContextualFragment"
    r"|DOMParser|\.bindPopup\(|\.bindTooltip\(|divIcon\(|\bmountHtml\("
    r"|\.setContent\(\s*[`'\"]|\.setContent\([^)]*\+"
)
"""Ways a string becomes markup: DOM HTML setters, Leaflet's popups and tooltips given text
(they take it as HTML; an element is safe), and the shell's ``mountHtml`` (static layouts)."""


def _dashboard_sources() -> list[Path]:
    files = sorted((FRONTEND / "fleet").rglob("*.ts"))
    imports = re.compile(r"""from\s+["'](\.{1,2}/[^"']+)["']""")
    shared: set[Path] = set()
    for f in files:
        for rel in imports.findall(f.read_text(encoding="utf-8")):
            target = (f.parent / rel).resolve()
            if FRONTEND / "fleet" not in target.parents:
                shared.add(target.with_suffix(".ts"))
    return files + sorted(p for p in shared if p.is_file())


def test_fleet_dashboard_sources_are_found() -> None:
    if not FRONTEND.is_dir():
        pytest.skip(f"no frontend sources at {FRONTEND}")
    names = {p.relative_to(FRONTEND).as_posix() for p in _dashboard_sources()}
    assert {"fleet/main.ts", "fleet/pages/map.ts", "fleet/pages/machine.ts"} <= names
    assert {"util.ts", "components/problems.ts"} <= names  # shared modules followed too


def test_fleet_dashboard_sets_text_never_markup() -> None:
    if not FRONTEND.is_dir():
        pytest.skip(f"no frontend sources at {FRONTEND}")
    found = []
    for path in _dashboard_sources():
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            code = line.split("//", 1)[0]
            if SINKS.search(code) and not _defines_mount_html(path, code):
                found.append(f"{path.relative_to(FRONTEND)}:{n}: {line.strip()}")
    assert found == []


def _defines_mount_html(path: Path, code: str) -> bool:
    # util.ts defines mountHtml (static layouts of the station pages); the dashboard never
    # calls it, which the pattern checks in the dashboard's own files
    return path.name == "util.ts" and ("function mountHtml" in code or "innerHTML = html" in code)


def test_fleet_dashboard_sink_pattern_catches_markup() -> None:
    for bad in (
        "el.innerHTML = m.name;",
        "row.insertAdjacentHTML('beforeend', name)",
        "marker.bindPopup(fleet.names[i])",
        "L.popup().setContent(`<b>${name}</b>`)",
        'L.popup().setContent("<b>" + name)',
        "mountHtml(root, `<p>${m.site}</p>`, [])",
    ):
        assert SINKS.search(bad), bad
    for good in ("el.textContent = m.name;", "L.popup().setContent(body)", "h('b', {}, name)"):
        assert not SINKS.search(good), good
