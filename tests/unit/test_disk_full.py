"""A full disk stops recording, not acquisition: segments stay complete, rows dropped are
counted, the status says so, and recording resumes when there is room again."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rigwatch.acquisition.engine import AcquisitionEngine, DeviceStream
from rigwatch.acquisition.recorder import SegmentRecorder, is_disk_full, recover
from rigwatch.acquisition.recorder.recovery import recover_journal
from rigwatch.config.station import RecorderConfig, RetentionConfig
from rigwatch.counters import Counters
from rigwatch.devices.mock import ListDevice, ramp_block
from rigwatch.errors import DiskFull, RecorderError
from support.disk import FakeDisk, wait_until

SRC = Path(__file__).resolve().parents[2] / "src"
MIB = 1 << 20


def config(directory: Path, **kw: object) -> RecorderConfig:
    base: dict[str, object] = {
        "directory": directory,
        "fsync": False,
        "segment_duration_s": 0.5,  # 500 rows of the 1 kHz ramp
        "disk_full_retry_s": 0.02,
        "retention": RetentionConfig(min_free_bytes=MIB),
    }
    base.update(kw)
    return RecorderConfig(**base)  # type: ignore[arg-type]


def check_ramp(path: Path) -> tuple[int, int]:
    """The file reads completely and holds consecutive ramp rows from its start index;
    returns ``(start_index, rows)``."""
    table = pq.read_table(path)
    start = int(table.schema.metadata[b"rigwatch.start_index"])
    want = ramp_block(start, table.num_rows, 2)
    got = np.stack([table.column(c).to_numpy() for c in ("a", "b")], axis=1)
    np.testing.assert_array_equal(got, want.data)
    ts = table.column("timestamp").combine_chunks().view(pa.int64()).to_numpy()
    np.testing.assert_array_equal(ts, want.timestamps_ns)
    return start, table.num_rows


def visible(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.parquet"))


def hidden(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("."))


def lost(counters: Counters) -> int:
    return counters.get("recorder.dev.lost_rows")


class Rig:
    """A ListDevice acquired by a real engine thread, recorded through a FakeDisk."""

    def __init__(self, directory: Path, disk: FakeDisk, **cfg: object) -> None:
        self.counters = Counters()
        self.device = ListDevice("dev")
        self.engine = AcquisitionEngine([self.device], 100_000, self.counters)
        self.stream = self.engine.streams["dev"]
        self.rec = SegmentRecorder(
            self.stream, config(directory, **cfg), self.counters, start_index=0, disk=disk
        )
        self.put_rows = 0

    def put(self, rows: int) -> None:
        """Deliver the next ``rows`` ramp rows and wait until the engine acquired them."""
        self.device.blocks.put(ramp_block(self.put_rows, rows, 2))
        self.put_rows += rows
        wait_until(lambda: self.stream.stats.rows == self.put_rows, what="acquisition")


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[tuple[Rig, FakeDisk]]:
    disk = FakeDisk()
    r = Rig(tmp_path, disk)
    r.rec.start()
    r.engine.start()
    yield r, disk
    r.engine.stop()
    r.rec.stop()


def test_enospc_on_a_journal_write_stops_recording_not_acquisition(
    rig: tuple[Rig, FakeDisk], tmp_path: Path
) -> None:
    r, disk = rig
    r.put(700)  # segment [0, 500) closed, [500, 700) open
    assert r.rec.flush() == 700
    (first,) = r.rec.segments

    disk.fill()
    r.put(300)  # rows 700..999 join the open segment; journaling them fails
    with pytest.raises(DiskFull, match="disk full"):
        r.rec.flush()
    status = r.rec.status()
    assert status["state"] == "disk_full"
    assert r.counters.get("recorder.dev.disk_full") == 1
    assert str(tmp_path) in status["last_error"] and "0 bytes free" in status["last_error"]
    assert status["free_bytes"] == 0 and status["min_free_bytes"] == MIB
    assert status["segment"] is None
    assert lost(r.counters) == status["lost_rows"] == 300  # queued, never journaled
    # no visible file is incomplete; the abandoned segment's journal waits for recovery
    assert visible(tmp_path) == [first]
    assert check_ramp(first) == (0, 500)
    assert hidden(tmp_path) == [".dev_20231114T221320_500000Z.parquet.arrows"]

    # acquisition goes on; the recorder keeps reading and drops (and counts) every row
    for _ in range(4):
        r.put(500)
    assert r.stream.stats.rows == 3000
    with pytest.raises(DiskFull):
        r.rec.flush()  # served after the recorder caught up with the buffer
    assert lost(r.counters) == r.rec.status()["lost_rows"] == 300 + 2000
    assert r.counters.get("recorder.dev.disk_full") == 1  # one episode, counted once

    disk.free_up()
    wait_until(lambda: r.rec.status()["state"] == "recording", what="recording resumes")
    r.put(400)
    assert r.rec.flush() == 3400
    r.rec.stop()
    assert r.rec.status()["state"] == "stopped"
    files = visible(tmp_path)
    spans = sorted(check_ramp(p) for p in files)
    # [0, 500) closed, [500, 700) recovered from the journal, [3000, 3400) after resuming
    assert spans == [(0, 500), (500, 200), (3000, 400)]
    assert sum(n for _, n in spans) + lost(r.counters) == r.put_rows
    assert r.counters.get("recorder.recovered_segments") == 1
    assert hidden(tmp_path) == []


def test_free_space_below_the_floor_closes_the_segment_cleanly(
    rig: tuple[Rig, FakeDisk], tmp_path: Path
) -> None:
    r, disk = rig
    r.put(300)
    assert r.rec.flush() == 300
    disk.free_bytes = 1000  # below the 1 MiB floor; writes would still succeed
    r.put(100)
    with pytest.raises(DiskFull):
        r.rec.flush()  # rows journaled, then the floor check stops the recording
    status = r.rec.status()
    assert status["state"] == "disk_full"
    assert "1000 bytes free" in status["last_error"] and str(tmp_path) in status["last_error"]
    (seg,) = visible(tmp_path)
    assert check_ramp(seg) == (0, 400)  # closed, complete: nothing lost
    assert hidden(tmp_path) == []
    assert lost(r.counters) == 0
    r.put(250)
    with pytest.raises(DiskFull):
        r.rec.flush()
    assert lost(r.counters) == 250

    disk.free_up()
    wait_until(lambda: r.rec.status()["state"] == "recording", what="recording resumes")
    r.put(50)
    assert r.rec.flush() == 700
    r.rec.stop()
    assert sorted(check_ramp(p) for p in visible(tmp_path)) == [(0, 400), (650, 50)]


def test_enospc_while_closing_abandons_the_segment_and_recovers_it_later(
    rig: tuple[Rig, FakeDisk], tmp_path: Path
) -> None:
    r, disk = rig
    r.put(200)
    assert r.rec.flush() == 200
    # the journal still takes writes, the Parquet file does not: its close fails
    disk.fail_when = lambda path, _n: path.name.endswith(".tmp")
    r.put(400)  # crosses the 500-row boundary: rotation closes [0, 500)
    with pytest.raises(DiskFull):
        r.rec.flush()
    assert r.rec.status()["state"] == "disk_full"
    assert visible(tmp_path) == []  # never a partial visible file
    assert hidden(tmp_path) == [".dev_20231114T221320_000000Z.parquet.arrows"]
    assert lost(r.counters) == 100  # rows 500..599, read after the failure
    disk.free_up()
    wait_until(lambda: r.rec.status()["state"] == "recording", what="recording resumes")
    r.rec.stop()
    assert [check_ramp(p) for p in visible(tmp_path)] == [(0, 500)]  # every journaled row
    assert hidden(tmp_path) == []


def test_enospc_when_opening_a_segment_leaves_nothing_behind(
    rig: tuple[Rig, FakeDisk], tmp_path: Path
) -> None:
    r, disk = rig
    disk.fail_when = lambda path, _n: path.name.endswith(".arrows.new")
    r.put(100)
    with pytest.raises(DiskFull):
        r.rec.flush()
    assert r.rec.status()["state"] == "disk_full"
    assert list(tmp_path.iterdir()) == []
    assert lost(r.counters) == 100
    disk.free_up()
    wait_until(lambda: r.rec.status()["state"] == "recording", what="recording resumes")
    r.put(100)
    assert r.rec.flush() == 200
    r.rec.stop()
    assert [check_ramp(p) for p in visible(tmp_path)] == [(100, 100)]


def test_a_full_disk_at_start_records_nothing_until_there_is_room(tmp_path: Path) -> None:
    disk = FakeDisk(free_bytes=10)
    r = Rig(tmp_path, disk)
    r.rec.start()
    r.engine.start()
    try:
        wait_until(lambda: r.rec.status()["state"] == "disk_full", what="disk_full")
        r.put(300)
        with pytest.raises(DiskFull):
            r.rec.flush()
        assert lost(r.counters) == 300
        assert list(tmp_path.iterdir()) == []
        disk.free_up()
        wait_until(lambda: r.rec.status()["state"] == "recording", what="recording resumes")
        r.put(10)
        assert r.rec.flush() == 310
    finally:
        r.engine.stop()
        r.rec.stop()
    assert [check_ramp(p) for p in visible(tmp_path)] == [(300, 10)]


def test_stop_while_the_disk_is_full_keeps_the_journal_for_the_next_start(
    rig: tuple[Rig, FakeDisk], tmp_path: Path
) -> None:
    r, disk = rig
    r.put(300)
    assert r.rec.flush() == 300
    disk.fill()
    r.put(100)
    with pytest.raises(DiskFull):
        r.rec.flush()
    r.put(100)
    r.rec.stop()  # acquisition still running: the stop path, not the stream's end
    assert r.rec.status()["state"] == "stopped"
    assert lost(r.counters) == 200  # the unjournaled 100, then the 100 read while full
    assert visible(tmp_path) == []
    counters = Counters()
    (path,) = recover(tmp_path, counters)  # the next start
    assert check_ramp(path) == (0, 300)


def test_recover_keeps_a_journal_it_has_no_room_for(tmp_path: Path) -> None:
    counters = Counters()
    stream = DeviceStream(ListDevice("dev"), 10_000, counters)
    rec = SegmentRecorder(stream, config(tmp_path, segment_duration_s=60), counters)
    rec.start()
    stream.ingest(ramp_block(0, 250, 2))
    rec.flush()
    journal = tmp_path / f".{rec.status()['segment']}.arrows"
    content = journal.read_bytes()
    rec.stop()
    for p in tmp_path.iterdir():
        p.unlink()
    journal.write_bytes(content)  # as a crash would have left it

    full = FakeDisk()
    full.fill()
    assert recover(tmp_path, counters, disk=full) == []
    assert counters.get("recorder.recover_disk_full") == 1
    assert counters.get("recorder.unrecoverable_journal") == 0
    assert hidden(tmp_path) == [journal.name]  # kept as it is, no partial file
    (path,) = recover(tmp_path, counters)
    assert check_ramp(path) == (0, 250)
    with pytest.raises(FileNotFoundError):
        recover_journal(journal, counters, "zstd", None)


def test_is_disk_full_recognises_the_errnos_and_their_chains() -> None:
    assert is_disk_full(OSError(errno.ENOSPC, "No space left on device"))
    assert is_disk_full(OSError(errno.EDQUOT, "Disk quota exceeded"))
    assert is_disk_full(DiskFull("below the floor"))
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError as inner:
            raise RecorderError("cannot write") from inner
    except RecorderError as outer:
        assert is_disk_full(outer)
    assert not is_disk_full(OSError("disk full"))  # no errno: an ordinary write error
    assert not is_disk_full(OSError(errno.EIO, "I/O error"))
    assert not is_disk_full(ValueError("x"))


# -- a real ENOSPC: a small tmpfs in a user and mount namespace --------------------------------
CHILD = textwrap.dedent(
    """
    import json, os, sys, time
    from pathlib import Path
    import numpy as np
    import pyarrow.parquet as pq
    from rigwatch.acquisition.engine import DeviceStream
    from rigwatch.acquisition.recorder import SegmentRecorder
    from rigwatch.config.station import RecorderConfig, RetentionConfig
    from rigwatch.counters import Counters
    from rigwatch.devices.mock import ListDevice
    from rigwatch.devices.protocols import Block, ChannelInfo
    from rigwatch.errors import DiskFull

    root = Path(sys.argv[1])
    rec_dir = root / "rec"
    filler = root / "filler"
    filler.write_bytes(os.urandom(5 << 20))  # 5 of the 8 MiB: about 3 MiB left to record
    channels = [ChannelInfo(f"c{i}") for i in range(8)]
    counters = Counters()
    stream = DeviceStream(ListDevice("dev", channels), 400_000, counters)
    cfg = RecorderConfig(
        directory=rec_dir, fsync=True, codec="none", segment_duration_s=3600,
        segment_max_bytes=1 << 20, disk_full_retry_s=0.02,
        retention=RetentionConfig(min_free_bytes=0),
    )
    rec = SegmentRecorder(stream, cfg, counters, row_group_rows=4096)
    rec.start()
    rng = np.random.default_rng(0)
    t0 = time.time_ns()
    pos = 0
    full_at = None
    def put(n):
        global pos
        ts = t0 + (np.arange(pos, pos + n, dtype=np.int64) * 1_000_000)
        data = (np.arange(pos, pos + n, dtype=np.float32)[:, None] + rng.random((n, 8), np.float32))
        stream.ingest(Block(data.astype(np.float32), ts))
        pos += n
    for _ in range(200):  # far more than fits
        put(2000)
        try:
            rec.flush()
        except DiskFull:
            full_at = pos
            break
    status = rec.status()
    visible = sorted(rec_dir.glob("*.parquet"))
    readable = [pq.read_table(p).num_rows for p in visible]
    # whatever the recorder freed when it gave up its open segment is taken too: the disk stays
    # full until the fillers go, however long the recorder's retries take to come round
    fd = os.open(root / "filler2", os.O_WRONLY | os.O_CREAT)
    try:
        while os.write(fd, bytes(65536)):
            pass
    except OSError:
        pass
    finally:
        os.close(fd)
    put(5000)
    try:
        rec.flush()
        dropped_while_full = None
    except DiskFull:
        dropped_while_full = counters.get("recorder.dev.lost_rows")
    filler.unlink()
    (root / "filler2").unlink()
    deadline = time.monotonic() + 20
    while rec.status()["state"] != "recording" and time.monotonic() < deadline:
        time.sleep(0.01)
    resumed = rec.status()["state"]
    put(1000)
    rec.flush()
    rec.stop()
    final = sorted(rec_dir.glob("*.parquet"))
    rows = [pq.read_table(p).num_rows for p in final]
    print(json.dumps({
        "full_at": full_at, "state": status["state"], "last_error": status["last_error"],
        "readable_when_full": readable, "dropped_while_full": dropped_while_full,
        "resumed": resumed, "final_rows": rows, "ingested": pos,
        "lost": counters.get("recorder.dev.lost_rows"),
        "disk_full": counters.get("recorder.dev.disk_full"),
        "hidden_left": sorted(p.name for p in rec_dir.iterdir() if p.name.startswith(".")),
    }))
    """
)


def _mount_namespace_available() -> bool:
    unshare = shutil.which("unshare")
    if unshare is None or not sys.platform.startswith("linux"):
        return False
    probe = subprocess.run(
        [unshare, "-rm", "sh", "-c", 'd=$(mktemp -d) && mount -t tmpfs -o size=1m tmpfs "$d"'],
        capture_output=True,
        timeout=30,
    )
    return probe.returncode == 0


@pytest.mark.skipif(not _mount_namespace_available(), reason="cannot mount a tmpfs here")
def test_real_enospc_on_a_small_tmpfs(tmp_path: Path) -> None:
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    proc = subprocess.run(
        [
            "unshare",
            "-rm",
            "sh",
            "-c",
            'mount -t tmpfs -o size=8m tmpfs "$1" && exec "$2" "$3" "$1"',
            "sh",
            str(mnt),
            sys.executable,
            str(script),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["full_at"] is not None, out
    assert out["state"] == "disk_full", out
    assert "No space left on device" in out["last_error"] and str(mnt) in out["last_error"]
    assert all(n > 0 for n in out["readable_when_full"])  # every visible file reads completely
    assert out["dropped_while_full"] is not None and out["dropped_while_full"] >= 5000
    assert out["resumed"] == "recording", out
    assert out["disk_full"] == 1
    assert sum(out["final_rows"]) + out["lost"] == out["ingested"]
    assert out["final_rows"][-1] == 1000  # recorded again after space came back
    assert out["hidden_left"] == []
