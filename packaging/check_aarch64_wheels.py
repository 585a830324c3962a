"""Check that rigwatch's runtime dependencies install from binary wheels on a Raspberry Pi 4.

Target: Raspberry Pi OS Bookworm, 64-bit (aarch64, glibc 2.36), CPython 3.11. Nothing may be
compiled on the Pi: every pinned runtime dependency of ``pyproject.toml`` (``[project]
dependencies``, plus the optional extras named with ``--extras``) and its whole transitive tree
must come as a wheel that the Pi's pip accepts.

How: ``python -m pip download --only-binary=:all:`` resolves the full tree (dependencies
included) for the target interpreter instead of the running one, with ``--implementation cp
--python-version 3.11 --abi cp311 --abi abi3 --abi none`` and one ``--platform`` per wheel
platform tag that pip on that Pi accepts: ``manylinux_2_36_aarch64`` down to
``manylinux_2_17_aarch64`` (PEP 600) and ``manylinux2014_aarch64`` (PEP 599's name for
glibc 2.17, the oldest aarch64 manylinux), most specific first, as pip orders them on the Pi.
``linux_aarch64`` is left out: PyPI accepts no wheel with that tag, and a wheel carrying it is
built for one machine only. Pure Python wheels (``none-any``) match too. The wheels land in a
temporary folder that is removed afterwards; each is checked again against the target tags.

Output: one row per wheel (package, version, wheel file name with its platform tag, the glibc
that wheel needs, size), then a summary with the heavy wheels (5 MiB and more). Exit status 0
when every package resolved to a wheel; 1 naming each package (and the requirement that pulls
it in) without a wheel for the target, with the versions that have one; 2 for a usage or
``pyproject.toml`` error.

Run it from the project root with the venv's interpreter (PyPI must be reachable; the first
run downloads about 175 MB into pip's cache and may take some minutes)::

    .venv/bin/python packaging/check_aarch64_wheels.py
    .venv/bin/python packaging/check_aarch64_wheels.py --extras camera,audio --markdown

pip's own configuration (index, mirrors) applies. Limits: pip evaluates environment markers
(``; platform_machine == ...``) with the values of the machine running the check, not the
Pi's; requirements whose markers name the machine (and, off Linux, the system) are listed
after the table for review. A plain ``pip install`` on the Pi prefers the newest release of an
unpinned transitive dependency even when that release has only a source archive;
``pip install --only-binary=:all:`` keeps it to wheels, as resolved here.
"""

from __future__ import annotations

import argparse
import email.parser
import platform
import re
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYTHON_VERSION = "3.11"
ABIS = ("cp311", "abi3", "none")
GLIBC = (2, 36)  # Raspberry Pi OS Bookworm is Debian 12: glibc 2.36
ARCH = "aarch64"
HEAVY_BYTES = 5 * 2**20  # wheels from this size on are listed as heavy

_PIN = re.compile(
    r"^\s*(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)\s*(?P<extras>\[[^\]]*\])?\s*"
    r"==\s*(?P<version>[^\s;,]+)\s*(?:;.*)?$"
)
_NO_VERSION = re.compile(
    r"Could not find a version that satisfies the requirement (?P<req>.+?)"
    r"(?: \(from (?P<parent>[^)]*)\))? \(from versions: (?P<versions>[^)]*)\)"
)
_NO_MATCH = re.compile(
    r"No matching distribution found for (?P<req>\S+)(?: \(from (?P<parent>[^)]*)\))?"
)


def platform_tags(glibc: tuple[int, int] = GLIBC, arch: str = ARCH) -> list[str]:
    """Manylinux platform tags a pip on glibc ``glibc`` and ``arch`` accepts, most specific
    first: ``manylinux_2_<minor>_<arch>`` from ``glibc``'s minor down to 17, then the legacy
    alias ``manylinux2014_<arch>`` (PEP 599, PEP 600). aarch64 has no older manylinux."""
    major, minor = glibc
    if major != 2 or minor < 17:
        raise ValueError(f"glibc {major}.{minor}: aarch64 manylinux wheels need glibc >= 2.17")
    tags = [f"manylinux_2_{m}_{arch}" for m in range(minor, 16, -1)]
    tags.append(f"manylinux2014_{arch}")
    return tags


@dataclass(frozen=True)
class Wheel:
    """One downloaded wheel: normalised project name, version, file, platform tag, bytes."""

    name: str
    version: str
    file: Path
    platform: str
    size: int

    @classmethod
    def from_file(cls, path: Path) -> Wheel:
        """Parse ``{name}-{version}(-{build})?-{python}-{abi}-{platform}.whl`` (PEP 427)."""
        parts = path.name[: -len(".whl")].split("-")
        if len(parts) not in (5, 6):
            raise ValueError(f"not a wheel file name: {path.name}")
        name = re.sub(r"[-_.]+", "-", parts[0]).lower()
        return cls(name, parts[1], path, parts[-1], path.stat().st_size)

    @property
    def glibc(self) -> str:
        """The glibc version the wheel needs (``2.28``), ``-`` for a pure Python wheel: the
        highest of its compressed tags, the one pip on the target matches first."""
        found = [(2, int(m[1])) for m in re.finditer(r"manylinux_2_(\d+)_", self.platform)]
        found += [(2, 17)] * ("manylinux2014" in self.platform)
        return ".".join(map(str, max(found))) if found else "-"

    def fits(self, platforms: set[str]) -> bool:
        """True when one of the wheel's (dot-compressed) platform tags is ``any`` or allowed."""
        return any(tag == "any" or tag in platforms for tag in self.platform.split("."))


@dataclass(frozen=True)
class Missing:
    """A requirement pip found no target wheel for, who needs it, versions that have one."""

    requirement: str
    needed_by: str
    versions_with_wheel: tuple[str, ...]


def read_requirements(pyproject: Path, extras: list[str]) -> tuple[list[str], list[str]]:
    """The runtime requirements (plus those of ``extras``) and the ones among them not pinned
    with ``==``. Raises ``ValueError`` naming an extra that ``pyproject`` does not define."""
    project = tomllib.loads(pyproject.read_text())["project"]
    requirements = list(project.get("dependencies", []))
    optional = project.get("optional-dependencies", {})
    for extra in extras:
        if extra not in optional:
            known = ", ".join(sorted(optional)) or "none"
            raise ValueError(f"no extra {extra!r} in {pyproject} (extras: {known})")
        requirements += optional[extra]
    return requirements, [r for r in requirements if not _PIN.match(r)]


def pip_download(requirements: list[str], dest: Path, platforms: list[str]) -> tuple[int, str]:
    """Run ``pip download`` for the target into ``dest``; pip's exit status and its output."""
    reqfile = dest / "requirements.txt"
    reqfile.write_text("\n".join(requirements) + "\n")
    command = [sys.executable, "-m", "pip", "download", "--dest", str(dest / "wheels")]
    command += ["--only-binary=:all:", "--implementation", "cp"]
    command += ["--python-version", PYTHON_VERSION]
    for abi in ABIS:
        command += ["--abi", abi]
    for tag in platforms:
        command += ["--platform", tag]
    command += ["--progress-bar", "off", "--disable-pip-version-check", "--no-input"]
    command += ["-r", str(reqfile)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    return done.returncode, done.stdout + done.stderr


def missing_from(output: str) -> list[Missing]:
    """The requirements pip's ``output`` reports without a matching distribution."""
    found = []
    for m in _NO_VERSION.finditer(output):
        versions = tuple(v.strip() for v in m["versions"].split(",") if v.strip() != "none")
        found.append(Missing(m["req"], m["parent"] or "pyproject.toml", versions))
    if not found:
        found = [
            Missing(m["req"], m["parent"] or "pyproject.toml", ())
            for m in _NO_MATCH.finditer(output)
        ]
    return found


def host_dependent_markers() -> re.Pattern[str] | None:
    """The marker variables whose value differs between this machine and the target (Linux on
    aarch64), or None when there are none."""
    names = [] if platform.machine() == ARCH else ["platform_machine"]
    if sys.platform != "linux":
        names += ["sys_platform", "platform_system", "os_name"]
    return re.compile("|".join(names)) if names else None


def marker_requirements(wheels: list[Wheel]) -> list[tuple[str, str]]:
    """(package, requirement) for every ``Requires-Dist`` of the wheels whose marker names a
    variable pip evaluated on this machine with another value than the target would have."""
    pattern = host_dependent_markers()
    if pattern is None:
        return []
    rows = []
    for wheel in wheels:
        with zipfile.ZipFile(wheel.file) as archive:
            meta = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
            message = email.parser.Parser().parsestr(archive.read(meta).decode("utf-8"))
        for requirement in message.get_all("Requires-Dist") or []:
            marker = requirement.partition(";")[2]
            if pattern.search(marker) and "extra ==" not in marker:
                rows.append((wheel.name, requirement))
    return rows


def errors(output: str) -> str:
    """pip's ``ERROR`` lines, or all of its output when it has none."""
    return "\n".join(ln for ln in output.splitlines() if ln.startswith("ERROR")) or output


def human(size: int) -> str:
    """Bytes as KiB or MiB, one decimal."""
    return f"{size / 2**20:.1f} MiB" if size >= 2**20 else f"{size / 2**10:.1f} KiB"


def table(wheels: list[Wheel], markdown: bool) -> str:
    """The wheels as a plain or Markdown table, sorted by package name."""
    header = ("package", "version", "wheel (platform tag)", "glibc", "size")
    rows = [(w.name, w.version, w.file.name, w.glibc, human(w.size)) for w in wheels]
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += [
            "| " + " | ".join(f"`{c}`" if i == 2 else c for i, c in enumerate(r)) + " |"
            for r in rows
        ]
        return "\n".join(lines)
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    return "\n".join(
        "  ".join(
            c.rjust(w) if i == 4 else c.ljust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in [header, *rows]
    )


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; the exit status (0 all wheels, 1 some missing, 2 usage)."""
    parser = argparse.ArgumentParser(description=__doc__.partition("\n")[0])
    parser.add_argument("--extras", default="", help="comma-separated extras, e.g. camera,audio")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    parser.add_argument("--pyproject", type=Path, default=ROOT / "pyproject.toml")
    args = parser.parse_args(argv)
    extras = [e.strip() for e in args.extras.split(",") if e.strip()]
    try:
        requirements, unpinned = read_requirements(args.pyproject, extras)
    except (OSError, KeyError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    platforms = platform_tags()
    target = f"cp311 / {ARCH} / glibc {GLIBC[0]}.{GLIBC[1]}"
    print(
        f"{len(requirements)} requirements ({', '.join(['runtime', *extras])}), "
        f"target {target}; resolving with pip ...",
        file=sys.stderr,
    )
    for requirement in unpinned:
        print(f"warning: not pinned with ==: {requirement}", file=sys.stderr)

    with tempfile.TemporaryDirectory(prefix="rigwatch-aarch64-") as tmp:
        status, output = pip_download(requirements, Path(tmp), platforms)
        if status != 0:
            return report_failure(requirements, output, platforms, Path(tmp))
        wheels = sorted(
            (Wheel.from_file(p) for p in (Path(tmp) / "wheels").glob("*.whl")),
            key=lambda w: w.name,
        )
        others = [p.name for p in (Path(tmp) / "wheels").iterdir() if p.suffix != ".whl"]
        misfits = [w.file.name for w in wheels if not w.fits(set(platforms))]
        markers = marker_requirements(wheels)
        print(table(wheels, args.markdown))

    binary = [w for w in wheels if w.platform != "any"]
    print(
        f"\n{len(wheels)} packages, {len(binary)} with compiled code, "
        f"{human(sum(w.size for w in wheels))} of wheels."
    )
    if binary:
        newest = max(binary, key=lambda w: tuple(map(int, w.glibc.split("."))))
        print(
            f"Newest glibc among these wheels: {newest.glibc} ({newest.name}); the target has "
            f"{GLIBC[0]}.{GLIBC[1]}."
        )
    heavy = sorted((w for w in wheels if w.size >= HEAVY_BYTES), key=lambda w: -w.size)
    if heavy:
        print("Heavy: " + ", ".join(f"{w.name} {w.version} ({human(w.size)})" for w in heavy))
    if markers:
        print("Requirements with machine/system markers (evaluated on this host, review):")
        for package, requirement in markers:
            print(f"  {package}: {requirement}")
    if others or misfits:
        for name in others + misfits:
            print(f"NOT an {ARCH} wheel: {name}", file=sys.stderr)
        return 1
    print(f"OK: every package resolved to a wheel for {target}.")
    return 0


def report_failure(requirements: list[str], output: str, platforms: list[str], tmp: Path) -> int:
    """After a failed resolution, retry each top-level requirement alone to name every one
    whose tree lacks a target wheel (pip stops at the first); print them; return 1."""
    missing: dict[tuple[str, str], Missing] = {}
    unexplained: dict[str, str] = {}
    for index, requirement in enumerate(requirements):
        dest = tmp / f"alone-{index}"
        dest.mkdir()
        status, alone = pip_download([requirement], dest, platforms)
        if status == 0:
            continue
        found = missing_from(alone)
        for item in found:
            missing.setdefault((item.requirement, item.needed_by), item)
        if not found:
            unexplained[requirement] = errors(alone)
    for requirement, text in unexplained.items():
        print(f"pip failed for {requirement}:\n{text}", file=sys.stderr)
    if not missing and not unexplained:
        # each requirement resolves alone but not all together: a version conflict
        print("pip could not resolve the requirements together:", file=sys.stderr)
        print(errors(output), file=sys.stderr)
        return 1
    if not missing:
        return 1
    print(f"NO {ARCH} wheel for cp311 / glibc {GLIBC[0]}.{GLIBC[1]}:", file=sys.stderr)
    for item in missing.values():
        versions = ", ".join(item.versions_with_wheel[-8:]) or "none"
        print(
            f"  {item.requirement} (needed by {item.needed_by}); versions with a wheel: {versions}",
            file=sys.stderr,
        )
    return 1


if __name__ == "__main__":
    sys.exit(main())
