"""The page's API types are generated from the station's OpenAPI document, so a field renamed
in a Python response model fails the page's type check, naming the field.

Runs what ``make frontend`` runs (``rigwatch openapi``, openapi-typescript, ``tsc --noEmit``)
on a copy of the page's sources, once with the document as the station serves it (it must
pass) and once per field with that field renamed in a copy of the document (it must fail).
Needs ``frontend/node_modules`` (``make frontend``); skips without, unless
RIGWATCH_REQUIRE_SERVICES=1.
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
FRONTEND = ROOT / "frontend"

# (schema, field the page reads, file of the page that reads it)
RENAMED = [
    ("RecorderStatus", "segment", "device-cards.ts"),
    ("RecordingInfo", "start_ns", "recordings.ts"),
    ("RangeQuery", "t_s", "charts.ts"),
    ("BufferDeviceStatus", "fill_ratio", "device-cards.ts"),
    ("Problem", "detail", "problems.ts"),
]


@pytest.fixture(scope="module")
def openapi() -> dict[str, Any]:
    """The station API's document, as `make frontend` gets it."""
    out = subprocess.run(
        [sys.executable, "-m", "rigwatch", "openapi"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    doc: dict[str, Any] = json.loads(out.stdout)
    return doc


def typecheck(tools: Path, doc: dict[str, Any], work: Path) -> subprocess.CompletedProcess[str]:
    """Generates the types from ``doc`` into a copy of the page's sources and type-checks it."""
    (work / "src").mkdir(parents=True)
    for item in (FRONTEND / "src").iterdir():
        if item.name == "generated":
            continue
        if item.is_dir():
            shutil.copytree(item, work / "src" / item.name)
        else:
            shutil.copy2(item, work / "src" / item.name)
    shutil.copy2(FRONTEND / "tsconfig.json", work / "tsconfig.json")
    (work / "node_modules").symlink_to(FRONTEND / "node_modules", target_is_directory=True)
    (work / "openapi.json").write_text(json.dumps(doc), encoding="utf-8")
    gen = subprocess.run(
        [str(tools / "openapi-typescript"), "openapi.json", "-o", "src/generated/api.ts"],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert gen.returncode == 0, gen.stdout + gen.stderr
    return subprocess.run(
        [str(tools / "tsc"), "--noEmit", "--pretty", "false", "-p", "tsconfig.json"],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=300,
    )


def rename_field(doc: dict[str, Any], schema: str, field: str, new: str) -> dict[str, Any]:
    out = copy.deepcopy(doc)
    s = out["components"]["schemas"][schema]
    assert field in s["properties"], f"{schema}.{field} is not in the document"
    s["properties"][new] = s["properties"].pop(field)
    s["required"] = [new if f == field else f for f in s.get("required", [])]
    return out


def test_page_type_checks_against_the_served_api(
    frontend_tools: Path, openapi: dict[str, Any], tmp_path: Path
) -> None:
    result = typecheck(frontend_tools, openapi, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(("schema", "field", "reader"), RENAMED)
def test_renamed_response_field_fails_the_build(
    frontend_tools: Path,
    openapi: dict[str, Any],
    tmp_path: Path,
    schema: str,
    field: str,
    reader: str,
) -> None:
    doc = rename_field(openapi, schema, field, f"{field}_renamed")
    result = typecheck(frontend_tools, doc, tmp_path)
    out = result.stdout + result.stderr
    assert result.returncode != 0, f"tsc accepted {schema}.{field} renamed:\n{out}"
    errors = [line for line in out.splitlines() if "error TS" in line]
    assert errors, out
    assert any(f"'{field}'" in line for line in errors), out
    assert any(reader in line for line in errors), out


def test_new_device_state_fails_the_build(
    frontend_tools: Path, openapi: dict[str, Any], tmp_path: Path
) -> None:
    """A state added to the server's enum needs a badge tone before the page builds."""
    doc = copy.deepcopy(openapi)
    state = doc["components"]["schemas"]["DeviceStatus"]["properties"]["state"]
    state["enum"] = [*state["enum"], "overheated"]
    result = typecheck(frontend_tools, doc, tmp_path)
    out = result.stdout + result.stderr
    assert result.returncode != 0, out
    assert any("badges.ts" in line and "overheated" in line for line in out.splitlines()), out
