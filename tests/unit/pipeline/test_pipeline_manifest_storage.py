"""The manifest's storage: migrations, SQLite settings, network-FS refusal, the JSONL results
log and its rotation, online backups while writes go on."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import orjson
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from rigwatch.errors import BackupError, ManifestError, ManifestLocationError
from rigwatch.pipeline.manifest import (
    Manifest,
    NewArtifact,
    ResultsLog,
    backup_sqlite,
    create_manifest_engine,
    migrate,
)
from rigwatch.pipeline.manifest.database import current_revision, head_revision
from rigwatch.pipeline.manifest.location import Mount, check_local, read_mounts
from rigwatch.pipeline.manifest.models import Base
from rigwatch.pipeline.manifest.results_log import LEGACY_KEYS


def test_migrations_upgrade_an_empty_database_and_are_idempotent(tmp_path: Path) -> None:
    engine = create_manifest_engine(tmp_path / "m.sqlite")
    assert current_revision(engine) is None
    assert migrate(engine) == head_revision()
    assert migrate(engine) == head_revision()  # nothing to do the second time
    assert current_revision(engine) == head_revision()
    names = set(inspect(engine).get_table_names())
    assert {"artifacts", "stage_status", "results", "alembic_version"} <= names
    with engine.connect() as conn:  # the migrations build exactly what the models describe
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []
    engine.dispose()
    Manifest.open(tmp_path / "m.sqlite").close()  # opening an existing manifest keeps it


def test_many_openers_of_a_new_manifest_migrate_it_once(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    def open_close(_: int) -> str | None:
        m = Manifest.open(tmp_path / "new.sqlite")
        try:
            return current_revision(m.engine)
        finally:
            m.close()

    with ThreadPoolExecutor(4) as pool:
        revisions = list(pool.map(open_close, range(4)))
    assert revisions == [head_revision()] * 4
    with sqlite3.connect(tmp_path / "new.sqlite") as db:
        assert db.execute("SELECT count(*) FROM alembic_version").fetchone()[0] == 1


def test_sqlite_runs_in_wal_mode_with_the_chosen_settings(tmp_path: Path) -> None:
    for sync, code in (("NORMAL", 1), ("FULL", 2)):
        m = Manifest.open(tmp_path / f"m_{sync}.sqlite", synchronous=sync, busy_timeout_s=7)
        with m.engine.connect() as conn:
            pragma = {
                p: conn.exec_driver_sql(f"PRAGMA {p}").scalar()
                for p in ("journal_mode", "synchronous", "busy_timeout", "foreign_keys")
            }
        assert pragma == {
            "journal_mode": "wal",
            "synchronous": code,
            "busy_timeout": 7000,
            "foreign_keys": 1,
        }
        m.close()
    with pytest.raises(ManifestError, match="NORMAL or FULL"):
        create_manifest_engine(tmp_path / "x.sqlite", synchronous="OFF")  # type: ignore[arg-type]
    with pytest.raises(ManifestError, match="SQLite file"):
        create_manifest_engine("sqlite://")
    with pytest.raises(ManifestError, match="unsupported"):
        create_manifest_engine("mysql://u@h/db")


def test_a_manifest_on_a_network_share_is_refused(tmp_path: Path) -> None:
    share = tmp_path / "share"
    share.mkdir()
    mounts = [Mount("/", "ext4"), Mount(str(share), "nfs4")]
    with pytest.raises(ManifestLocationError, match=r"network file system \(nfs4"):
        Manifest.open(share / "m.sqlite", mounts_reader=lambda: mounts)
    with pytest.raises(ManifestLocationError, match=r"fuse\.sshfs"):
        check_local(share / "sub" / "m.sqlite", lambda: [Mount(str(share), "fuse.sshfs")])
    assert not (share / "m.sqlite").exists()
    # a symbolic link from local disk into the share is followed
    link = tmp_path / "local_name"
    link.symlink_to(share)
    with pytest.raises(ManifestLocationError):
        check_local(link / "m.sqlite", lambda: mounts)
    # a local folder beside the share is fine, as is a longer local mount inside a share
    assert check_local(tmp_path / "m.sqlite", lambda: mounts) == (tmp_path / "m.sqlite").resolve()
    inner = share / "usb"
    assert check_local(inner / "m.sqlite", lambda: [*mounts, Mount(str(inner), "vfat")])
    Manifest.open(tmp_path / "ok.sqlite", mounts_reader=lambda: mounts).close()


def test_the_default_mounts_reader_is_consulted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rigwatch.pipeline.manifest import location

    monkeypatch.setattr(location, "read_mounts", lambda: [Mount(str(tmp_path), "cifs")])
    with pytest.raises(ManifestLocationError, match="cifs"):
        Manifest.open(tmp_path / "m.sqlite")


def test_mounts_are_read_with_escaped_names(tmp_path: Path) -> None:
    mounts_file = tmp_path / "mounts"
    mounts_file.write_text(
        "/dev/vda / ext4 rw 0 0\n//nas/lab\\040data /mnt/lab\\040data cifs rw 0 0\n"
    )
    mounts = read_mounts(mounts_file)
    assert mounts[1] == Mount("/mnt/lab data", "cifs")
    assert read_mounts(tmp_path / "missing") == []


def test_results_lines_keep_todays_layout(tmp_path: Path) -> None:
    log = ResultsLog(tmp_path / "results" / "processing_results.jsonl")
    m = Manifest.open(tmp_path / "m.sqlite", results_log=log)
    m.add(
        NewArtifact(
            "image",
            "/data/image_20240501_120000_000001_cam0.png",
            captured_ns=1_714_564_800_000_001_000,
            meta={"temperature_readings": {"28-01": 21.5}, "temperature_timestamp": "T"},
        )
    )
    (lease,) = m.claim("process", "W")
    analysis = [
        {"brightness": 10.0, "contrast": 3.0},
        {"ROI-label": "A1", "Analysis-method": "centre"},
    ]
    m.complete(lease, {"image_analysis": analysis})
    (line,) = list(log.read())
    assert list(line)[: len(LEGACY_KEYS)] == list(LEGACY_KEYS)
    assert line["image_filename"] == "image_20240501_120000_000001_cam0.png"
    assert line["image_timestamp"] == "2024-05-01T12:00:00.000001Z"
    assert line["processing_successful"] is True and line["processing_error_message"] is None
    assert line["image_analysis"] == analysis
    assert line["temperature_readings"] == {"28-01": 21.5}
    assert line["temperature_timestamp"] == "T"
    assert line["artifact_id"] == lease.artifact_id and line["seq"] >= 1
    # a stage that is not logged leaves the log alone
    (report,) = m.claim("report", "W")
    m.complete(report, {"delivered": ["csv"]})
    assert len(list(log.read())) == 1
    # a lost line (process died between commit and append) is caught up from the manifest
    log.path.unlink()
    assert m.catch_up_log() == 1
    assert [x["artifact_id"] for x in log.read()] == [lease.artifact_id]
    assert m.catch_up_log() == 0
    m.close()


def test_results_log_rotates_by_size_and_keeps_whole_lines(tmp_path: Path) -> None:
    log = ResultsLog(tmp_path / "r.jsonl", max_bytes=1000, backups=2)
    written = 0
    for _ in range(40):
        log.append([{"seq": written + k, "pad": "x" * 40} for k in range(3)])
        written += 3
    files = log.files()
    assert files == [log.rotated(2), log.rotated(1), log.path]
    assert all(f.stat().st_size <= 1000 for f in files)
    seqs = [line["seq"] for line in log.read()]
    assert seqs == list(range(written - len(seqs), written))  # newest kept, in order, whole
    assert log.last_seq() == written - 1
    for f in files:
        assert f.read_bytes().endswith(b"\n")
        assert all(orjson.loads(raw) for raw in f.read_bytes().splitlines())
    with pytest.raises(Exception, match="max_bytes"):
        ResultsLog(tmp_path / "bad.jsonl", max_bytes=0)


def test_backup_is_a_consistent_copy_while_writes_go_on(tmp_path: Path) -> None:
    m = Manifest.open(tmp_path / "m.sqlite", lease_s=600)
    stop = threading.Event()
    started = threading.Event()
    errors: list[BaseException] = []

    def writer() -> None:
        k = 0
        try:
            while not stop.is_set():
                m.add_many([NewArtifact("image", f"/d/{k}_{i}.png") for i in range(20)])
                k += 1
                leases = m.claim("process", "W", limit=15)
                m.complete_many([(x, {"k": k}) for x in leases])
                started.set()
        except BaseException as exc:
            errors.append(exc)
            started.set()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        assert started.wait(timeout=30)
        backups = [backup_sqlite(m.engine, tmp_path / "backups", keep=2) for _ in range(3)]
    finally:
        stop.set()
        thread.join(timeout=30)
    assert not errors
    kept = sorted((tmp_path / "backups").glob("*.sqlite"))
    assert kept == sorted(backups[1:])
    assert not list((tmp_path / "backups").glob(".*"))  # no temporary file left
    for path in kept:
        with sqlite3.connect(path) as db:
            assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            assert db.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
            n_art = db.execute("SELECT count(*) FROM artifacts").fetchone()[0]
            n_rows = db.execute("SELECT count(*) FROM stage_status").fetchone()[0]
            done = db.execute(
                "SELECT count(*) FROM stage_status WHERE stage='process' AND status='done'"
            ).fetchone()[0]
            results = db.execute("SELECT count(*) FROM results").fetchone()[0]
        assert n_art > 0 and n_art % 20 == 0  # whole transactions only
        assert n_rows == 6 * n_art and done == results
    m.close()
    with pytest.raises(BackupError, match="keep"):
        backup_sqlite(tmp_path / "m.sqlite", tmp_path / "b2", keep=0)
    with pytest.raises(BackupError, match="does not exist"):
        backup_sqlite(tmp_path / "none.sqlite", tmp_path / "b2")


def test_manifest_cli_status_backup_retry(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from rigwatch.pipeline.manifest.cli import app

    db = tmp_path / "m.sqlite"
    with Manifest.open(db) as m:
        m.add(NewArtifact("image", "/d/a.png"))
        (lease,) = m.claim("process", "W")
        m.fail(lease, "corrupt", retry=False)
    runner = CliRunner()
    out = runner.invoke(app, ["status", str(db)])
    assert out.exit_code == 0 and orjson.loads(out.stdout)["process"] == {"failed": 1}
    out = runner.invoke(app, ["backup", str(db), str(tmp_path / "bk"), "--keep", "1"])
    assert out.exit_code == 0 and Path(out.stdout.strip()).is_file()
    out = runner.invoke(app, ["retry", str(db), "process"])
    assert out.exit_code == 0 and "1 items" in out.stdout
    out = runner.invoke(app, ["retry", str(db), "nope"])
    assert out.exit_code == 2 and "unknown stage" in out.stderr


class _LockedCursor:
    """A sqlite3 cursor whose journal-mode pragma finds the database locked ``locked`` times."""

    def __init__(self, locked: int, error: str = "database is locked") -> None:
        self.locked = locked
        self.error = error
        self.calls = 0

    def execute(self, sql: str) -> _LockedCursor:
        assert sql == "PRAGMA journal_mode = WAL"
        self.calls += 1
        if self.calls <= self.locked:
            raise sqlite3.OperationalError(self.error)
        return self

    def fetchone(self) -> tuple[str]:
        return ("wal",)


def test_switch_to_wal_is_tried_again_while_another_opener_holds_the_lock() -> None:
    from rigwatch.storage import _journal_mode_wal

    cursor = _LockedCursor(locked=3)
    assert _journal_mode_wal(cursor, timeout_s=10) == "wal"
    assert cursor.calls == 4


def test_switch_to_wal_gives_up_after_the_busy_timeout_and_on_other_errors() -> None:
    from rigwatch.storage import _journal_mode_wal

    with pytest.raises(sqlite3.OperationalError, match="locked"):
        _journal_mode_wal(_LockedCursor(locked=10**9), timeout_s=0.02)
    other = _LockedCursor(locked=1, error="disk I/O error")
    with pytest.raises(sqlite3.OperationalError, match="disk I/O"):
        _journal_mode_wal(other, timeout_s=10)
    assert other.calls == 1  # not tried again
