"""Nothing in the agent is Unix-only: it must run as a Windows 10 service.

Two checks: a static scan of the agent's source for Unix-only modules and calls, and a fresh
import of every agent module with ``sys.platform`` set to ``win32``, the Unix-only modules made
unimportable, ``os.fork`` gone and Windows' ``signal.SIGBREAK`` present.
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
import signal
import sys
from pathlib import Path

import pytest

import rigwatch.agent

AGENT_DIR = Path(rigwatch.agent.__file__).parent
UNIX_ONLY_MODULES = {"fcntl", "termios", "pwd", "grp", "resource", "tty", "pty", "posix", "syslog"}
UNIX_ONLY_OS_CALLS = {
    "fork",
    "forkpty",
    "openpty",
    "setsid",
    "getuid",
    "geteuid",
    "getgid",
    "killpg",
    "uname",
    "getpgid",
    "setuid",
    "setgid",
    "chown",
    "mkfifo",
    "wait3",
    "wait4",
    "sysconf",
}
UNIX_ONLY_SIGNALS = {"SIGKILL", "SIGHUP", "SIGUSR1", "SIGUSR2", "SIGALRM", "SIGCHLD", "SIGPIPE"}


def _agent_modules() -> list[str]:
    return ["rigwatch.agent"] + [
        f"rigwatch.agent.{m.name}" for m in pkgutil.iter_modules([str(AGENT_DIR)])
    ]


def test_agent_source_uses_nothing_unix_only() -> None:
    problems = []
    files = sorted(AGENT_DIR.rglob("*.py"))
    assert len(files) >= 8
    for path in files:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name.split(".")[0] for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module.split(".")[0]]
                if node.module == "os":
                    names += [a.name for a in node.names if a.name in UNIX_ONLY_OS_CALLS]
            elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
                if node.value.id == "os" and node.attr in UNIX_ONLY_OS_CALLS:
                    names = [f"os.{node.attr}"]
                if node.value.id == "signal" and node.attr in UNIX_ONLY_SIGNALS:
                    names = [f"signal.{node.attr}"]
            bad = [
                n for n in names if n in UNIX_ONLY_MODULES or "." in n or n in UNIX_ONLY_OS_CALLS
            ]
            if bad:
                problems.append(f"{path.name}:{node.lineno}: {', '.join(bad)}")
    assert not problems, "Unix-only use in the agent:\n" + "\n".join(problems)


def test_agent_imports_on_windows(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import os

    # third-party and standard libraries pick their platform backends when first imported (here:
    # Linux's); what is checked is the agent's own module code under Windows, so everything
    # is imported once first, then the agent's modules alone again with the platform switched
    for name in _agent_modules():
        importlib.import_module(name)
    saved = {k: v for k, v in sys.modules.items() if k.startswith("rigwatch.agent")}
    for name in saved:
        monkeypatch.delitem(sys.modules, name)
    for name in UNIX_ONLY_MODULES:
        monkeypatch.setitem(sys.modules, name, None)  # import raises ImportError
    monkeypatch.setattr(sys, "platform", "win32")
    monkeypatch.delattr(os, "fork", raising=False)
    monkeypatch.setattr(signal, "SIGBREAK", 21, raising=False)
    monkeypatch.setenv("PROGRAMDATA", str(tmp_path / "ProgramData"))
    try:
        loaded = {name: importlib.import_module(name) for name in _agent_modules()}
        run = loaded["rigwatch.agent.run"]
        assert 21 in [int(s) for s in run.stop_signals()]  # Ctrl-Break stops the agent
        config = loaded["rigwatch.agent.config"]
        assert config.default_data_dir() == tmp_path / "ProgramData" / "rigwatch" / "agent"
        sensors = loaded["rigwatch.agent.sensors"]
        assert sensors.system_drive().endswith("\\")
    finally:
        for name in [k for k in sys.modules if k.startswith("rigwatch.agent")]:
            del sys.modules[name]
        sys.modules.update(saved)
    assert {"rigwatch.agent.outbox", "rigwatch.agent.sender", "rigwatch.agent.cli"} <= set(loaded)
