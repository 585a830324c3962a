"""packaging/check_aarch64_wheels.py without the network: the target's platform tags, reading
the pins, parsing pip's failure messages and wheel file names."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[3] / "packaging" / "check_aarch64_wheels.py"


@pytest.fixture(scope="module")
def check() -> Iterator[ModuleType]:
    spec = importlib.util.spec_from_file_location("check_aarch64_wheels", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


def test_platform_tags_cover_glibc_2_17_to_2_36_newest_first(check: ModuleType) -> None:
    tags = check.platform_tags((2, 36), "aarch64")
    assert tags[0] == "manylinux_2_36_aarch64"
    assert tags[-2:] == ["manylinux_2_17_aarch64", "manylinux2014_aarch64"]
    assert len(tags) == 21  # 2_36 .. 2_17, then the manylinux2014 alias
    assert "linux_aarch64" not in tags
    assert not any("x86_64" in t or "manylinux_2_16" in t for t in tags)


def test_platform_tags_refuse_a_glibc_older_than_aarch64_manylinux(check: ModuleType) -> None:
    with pytest.raises(ValueError, match=r"glibc >= 2\.17"):
        check.platform_tags((2, 16), "aarch64")


def test_requirements_runtime_plus_extras_and_unpinned(check: ModuleType, tmp_path: Path) -> None:
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(
        '[project]\nname = "x"\nversion = "0"\n'
        'dependencies = ["numpy==2.4.6", "uvicorn[standard]==0.54.0", "six>=1"]\n'
        '[project.optional-dependencies]\naudio = ["sounddevice==0.5.6"]\ncamera = ["cv==1"]\n'
    )
    requirements, unpinned = check.read_requirements(pyproject, ["audio"])
    assert requirements == [
        "numpy==2.4.6",
        "uvicorn[standard]==0.54.0",
        "six>=1",
        "sounddevice==0.5.6",
    ]
    assert unpinned == ["six>=1"]
    with pytest.raises(ValueError, match=r"no extra 'video'.*audio, camera"):
        check.read_requirements(pyproject, ["video"])


def test_missing_names_the_package_its_parent_and_versions_with_a_wheel(
    check: ModuleType,
) -> None:
    top = (
        "ERROR: Could not find a version that satisfies the requirement psutil==5.0.0 "
        "(from versions: 6.0.0, 7.2.2)\nERROR: No matching distribution found for psutil==5.0.0\n"
    )
    nested = (
        "ERROR: Could not find a version that satisfies the requirement docopt>=0.6.2 "
        "(from num2words) (from versions: none)\n"
    )
    assert check.missing_from(top) == [
        check.Missing("psutil==5.0.0", "pyproject.toml", ("6.0.0", "7.2.2"))
    ]
    assert check.missing_from(nested) == [check.Missing("docopt>=0.6.2", "num2words", ())]
    only_last_line = "ERROR: No matching distribution found for foo==1 (from bar)\n"
    assert check.missing_from(only_last_line) == [check.Missing("foo==1", "bar", ())]
    assert check.missing_from("Successfully downloaded numpy\n") == []


def test_wheel_names_glibc_and_fit(check: ModuleType, tmp_path: Path) -> None:
    allowed = set(check.platform_tags((2, 36), "aarch64"))
    files = {
        "numpy-2.4.6-cp311-cp311-manylinux_2_27_aarch64.manylinux_2_28_aarch64.whl": "2.28",
        "Typing_Extensions-4.16.0-py3-none-any.whl": "-",
        "psutil-7.2.2-cp36-abi3-manylinux2014_aarch64.manylinux_2_17_aarch64.whl": "2.17",
        "numpy-2.4.6-cp311-cp311-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl": "2.28",
        "foo-1.0-cp311-cp311-linux_aarch64.whl": "-",
    }
    wheels = {}
    for name, glibc in files.items():
        (tmp_path / name).write_bytes(b"x" * 10)
        wheel = check.Wheel.from_file(tmp_path / name)
        assert wheel.glibc == glibc, name
        assert wheel.size == 10
        wheels[name] = wheel
    fits = {name for name, wheel in wheels.items() if wheel.fits(allowed)}
    assert fits == set(list(files)[:3])
    assert wheels["Typing_Extensions-4.16.0-py3-none-any.whl"].name == "typing-extensions"
