"""How the pipeline writes files atomically: the stages' status files and the supervisor's
state file through one writer, and the stages' temporary names the recordings' rule."""

from __future__ import annotations

import json
import logging
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from rigwatch.pipeline.manifest.backup import backup_sqlite
from rigwatch.pipeline.stages.compressor import compress_file
from rigwatch.pipeline.stages.files import write_bytes_durably
from rigwatch.pipeline.stages.status import StatusFile, read_status, write_json_atomically
from rigwatch.pipeline.supervisor import STATE_FILE, Supervisor
from rigwatch.recordings.files import tmp_path as recordings_tmp_path
from support.pipeline_stages import base_config, write_config

Replace = Callable[[Any, Any], None]


def replaces(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Path, Path]]:
    """Record every ``os.replace(source, destination)`` (and do it)."""
    calls: list[tuple[Path, Path]] = []
    real: Replace = os.replace

    def spy(src: Any, dst: Any) -> None:
        calls.append((Path(src), Path(dst)))
        real(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    return calls


# -- state files -----------------------------------------------------------------------------


def test_supervisor_state_is_written_by_the_status_files_writer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, _ = write_config(tmp_path, base_config(tmp_path))
    supervisor = Supervisor(path, fork_stages=False)
    calls = replaces(monkeypatch)
    supervisor.write_state()
    state_file = tmp_path / "state" / STATE_FILE
    data = read_status(state_file)
    assert data is not None
    assert (data["pid"], data["state"]) == (os.getpid(), "starting")
    assert set(data["children"]) == {"collector", "processor", "reporter", "retention"}
    assert state_file.read_text() == json.dumps(data, indent=1)  # as before: indented
    # the one writer's temporary name, renamed into place
    assert calls == [(state_file.with_name(f".{STATE_FILE}.{os.getpid()}.tmp"), state_file)]
    assert not [p for p in state_file.parent.iterdir() if p.name.startswith(".")]


def test_a_state_file_that_cannot_be_written_leaves_no_work_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path, _ = write_config(tmp_path, base_config(tmp_path))
    state = tmp_path / "state"
    (state / STATE_FILE).mkdir(parents=True)  # renaming onto a folder fails
    supervisor = Supervisor(path, fork_stages=False)
    with pytest.raises(OSError):
        supervisor.write_state()  # the supervisor is told
    (state / "reporter.status.json").mkdir()
    with caplog.at_level(logging.WARNING):
        status = StatusFile(state / "reporter.status.json", "reporter")  # a stage goes on
        status.set("running")
    assert "cannot write status file" in caplog.text
    assert sorted(p.name for p in state.iterdir()) == ["reporter.status.json", STATE_FILE]


def test_write_json_atomically_replaces_the_whole_file(tmp_path: Path) -> None:
    target = tmp_path / "x.json"
    write_json_atomically(target, {"a": [1, 2]})
    assert target.read_text() == '{"a": [1, 2]}'
    write_json_atomically(target, {"b": None}, indent=1)
    assert target.read_text() == '{\n "b": null\n}'
    with pytest.raises(TypeError):
        write_json_atomically(target, {"c": object()})
    assert target.read_text() == '{\n "b": null\n}'  # left as it was
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]


# -- temporary names -------------------------------------------------------------------------


def test_stages_write_under_the_recordings_temporary_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "reading.json"
    db = tmp_path / "manifest.sqlite"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE t (x INTEGER)")
    conn.close()
    calls = replaces(monkeypatch)
    write_bytes_durably(source, b'{"t": 21.5}')
    compressed, _, _ = compress_file(source, "gzip")
    backup = backup_sqlite(db, tmp_path / "backups")
    assert calls == [
        (recordings_tmp_path(source), source),
        (recordings_tmp_path(compressed), compressed),
        (recordings_tmp_path(backup), backup),
    ]
    assert recordings_tmp_path(source).name == ".reading.json.tmp"
