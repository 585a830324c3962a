"""Segment recorder: content, rotation, layout, crash recovery, overrun and snapshots."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pydantic import ValidationError

from rigwatch.acquisition.engine import AcquisitionEngine, DeviceStream
from rigwatch.acquisition.recorder import SegmentRecorder, recover, save_buffer_snapshot
from rigwatch.config.station import RecorderConfig
from rigwatch.counters import Counters
from rigwatch.devices.protocols import (
    Block,
    ChannelInfo,
    EndOfStream,
    StreamInfo,
    regular_timestamps_ns,
)
from rigwatch.errors import RecorderError
from rigwatch.recordings.layout import writer_options

T0 = 1_700_000_000_000_000_000
RATE = 1000.0
SRC = Path(__file__).resolve().parents[2] / "src"

# deterministic rows, shared with the crash-test subprocess
GEN_SRC = textwrap.dedent(
    """
    import numpy as np

    def gen_rows(start, n, channels):
        i = np.arange(start, start + n, dtype=np.float64)[:, None]
        c = np.arange(channels, dtype=np.float64)[None, :]
        data = (np.sin(i * 0.013 + c) * (c + 1) * 1000.0 + i * 1e-3).astype(np.float32)
        return data
    """
)
_ns: dict[str, object] = {}
exec(GEN_SRC, _ns)
gen_rows = _ns["gen_rows"]


class FakeDevice:
    """A device that only describes itself (tests ingest blocks directly)."""

    def __init__(self, channels: int = 3, name: str = "dev", rate: float = RATE) -> None:
        self.info = StreamInfo(
            device=name,
            driver="fake",
            sample_rate_hz=rate,
            channels=tuple(
                ChannelInfo(f"ch{i}", ["g", "bar", "degC", "V"][i % 4]) for i in range(channels)
            ),
            extra={"source": "unit-test"},
        )

    def describe(self) -> StreamInfo:
        return self.info

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def read_block(self, timeout_s: float) -> Block | None:
        return None


class FiniteDevice(FakeDevice):
    """Delivers ``blocks`` then raises EndOfStream (for a real engine thread)."""

    def __init__(self, blocks: list[Block], channels: int = 3) -> None:
        super().__init__(channels)
        self._blocks = list(blocks)

    def read_block(self, timeout_s: float) -> Block | None:
        if not self._blocks:
            raise EndOfStream("done")
        return self._blocks.pop(0)


def make_stream(channels: int = 3, capacity: int = 100_000) -> tuple[DeviceStream, Counters]:
    counters = Counters()
    return DeviceStream(FakeDevice(channels), capacity, counters), counters


def block(start: int, n: int, channels: int = 3) -> Block:
    return Block(gen_rows(start, n, channels), regular_timestamps_ns(T0, start, n, RATE))


def config(tmp_path: Path, **kw: object) -> RecorderConfig:
    base: dict[str, object] = {"directory": tmp_path, "fsync": False, "flush_interval_s": 1.0}
    base.update(kw)
    return RecorderConfig(**base)  # type: ignore[arg-type]


def read_segments(paths: list[Path]) -> pa.Table:
    return pa.concat_tables([pq.read_table(p) for p in paths])


def assert_rows(table: pa.Table, start: int, n: int, channels: int = 3) -> None:
    """``table`` holds exactly stream rows [start, start + n), bit for bit."""
    assert table.num_rows == n
    ts = table.column("timestamp").combine_chunks().view(pa.int64()).to_numpy()
    np.testing.assert_array_equal(ts, regular_timestamps_ns(T0, start, n, RATE))
    expected = gen_rows(start, n, channels)
    for c in range(channels):
        got = table.column(f"ch{c}").to_numpy().astype(np.float32)
        np.testing.assert_array_equal(got.view(np.uint32), expected[:, c].view(np.uint32))


def hidden_files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("."))


# -- content and rotation -------------------------------------------------------------------
def test_rotation_by_duration_is_exact_and_lossless(tmp_path: Path) -> None:
    stream, counters = make_stream()
    rec = SegmentRecorder(stream, config(tmp_path, segment_duration_s=0.5), counters)
    rec.start()
    sizes = [37, 123, 250, 499, 1, 2, 1000, 333, 777, 1200, 78]  # crosses boundaries anywhere
    pos = 0
    for k, n in enumerate(sizes):
        stream.ingest(block(pos, n))
        pos += n
        if k % 3 == 0:
            assert rec.flush() == pos
    rec.stop()
    segs = rec.segments
    assert [pq.read_metadata(p).num_rows for p in segs] == [500] * (pos // 500) + [pos % 500]
    assert_rows(read_segments(segs), 0, pos)
    start = 0
    for p in segs:
        meta = pq.read_schema(p).metadata
        assert int(meta[b"rigwatch.start_index"]) == start
        assert_rows(pq.read_table(p), start, pq.read_metadata(p).num_rows)
        start += pq.read_metadata(p).num_rows
    assert segs[1].name == "dev_20231114T221320_500000Z.parquet"
    status = rec.status()
    assert status["state"] == "stopped"
    assert status["segments_closed"] == len(segs)
    assert status["rows_recorded"] == pos
    assert status["missed_rows"] == 0
    assert status["bytes_written"] == sum(p.stat().st_size for p in segs)
    assert hidden_files(tmp_path) == []


@pytest.mark.parametrize(
    ("limit", "rows", "block_rows", "min_fill"),
    [(64 * 1024, 20_000, 1500, 0.5), (1024 * 1024, 200_000, 5000, 0.85)],
)
def test_rotation_by_size_stays_under_limit(
    tmp_path: Path, limit: int, rows: int, block_rows: int, min_fill: float
) -> None:
    stream, counters = make_stream(channels=4, capacity=rows)
    rng = np.random.default_rng(1)
    cfg = config(tmp_path, segment_max_bytes=limit, segment_duration_s=3600.0, codec="none")
    rec = SegmentRecorder(stream, cfg, counters, row_group_rows=2000)
    rec.start()
    ts_all = regular_timestamps_ns(T0, 0, rows, RATE)
    data_all = rng.standard_normal((rows, 4)).astype(np.float32)  # incompressible
    for off in range(0, rows, block_rows):
        stream.ingest(Block(data_all[off : off + block_rows], ts_all[off : off + block_rows]))
        rec.flush()
    rec.stop()
    segs = rec.segments
    assert len(segs) >= 3
    sizes = [p.stat().st_size for p in segs]
    assert max(sizes) <= limit
    assert min(sizes[:-1]) > limit * min_fill  # the bound is not wastefully conservative
    table = read_segments(segs)
    got = np.stack([table.column(f"ch{c}").to_numpy() for c in range(4)], axis=1)
    np.testing.assert_array_equal(got.view(np.uint32), data_all.view(np.uint32))
    ts = table.column("timestamp").combine_chunks().view(pa.int64()).to_numpy()
    np.testing.assert_array_equal(ts, ts_all)


def test_stuck_clock_still_rotates_by_rows(tmp_path: Path) -> None:
    stream, counters = make_stream(channels=1)
    rec = SegmentRecorder(stream, config(tmp_path, segment_duration_s=0.1), counters)
    rec.start()
    stream.ingest(Block(gen_rows(0, 450, 1), np.full(450, T0, dtype=np.int64)))
    rec.stop()
    assert [pq.read_metadata(p).num_rows for p in rec.segments] == [200, 200, 50]


def test_row_groups_bounded(tmp_path: Path) -> None:
    stream, counters = make_stream()
    rec = SegmentRecorder(stream, config(tmp_path), counters, row_group_rows=1000)
    rec.start()
    for off in range(0, 4500, 300):
        stream.ingest(block(off, 300))
        rec.flush()
    rec.stop()
    (seg,) = rec.segments
    md = pq.read_metadata(seg)
    assert [md.row_group(i).num_rows for i in range(md.num_row_groups)] == [1000] * 4 + [500]
    assert_rows(pq.read_table(seg), 0, 4500)


# -- layout ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("codec", "expected"),
    [("zstd", "ZSTD"), ("snappy", "SNAPPY"), ("gzip", "GZIP"), ("none", "UNCOMPRESSED")],
)
def test_layout_metadata_encodings_and_codec(tmp_path: Path, codec: str, expected: str) -> None:
    stream, counters = make_stream()
    rec = SegmentRecorder(stream, config(tmp_path, codec=codec), counters, station="mill3")
    rec.start()
    stream.ingest(block(0, 3000))
    rec.stop()
    (seg,) = rec.segments
    table = pq.read_table(seg)  # plain pyarrow reads a closed segment
    schema = table.schema
    assert schema.names == ["timestamp", "ch0", "ch1", "ch2"]
    assert schema.field("timestamp").type == pa.timestamp("ns", tz="UTC")
    assert all(schema.field(f"ch{i}").type == pa.float32() for i in range(3))
    assert [schema.field(f"ch{i}").metadata for i in range(3)] == [
        {b"unit": b"g"},
        {b"unit": b"bar"},
        {b"unit": b"degC"},
    ]
    meta = schema.metadata
    assert meta[b"rigwatch.format_version"] == b"1"
    assert meta[b"rigwatch.device"] == b"dev"
    assert meta[b"rigwatch.driver"] == b"fake"
    assert meta[b"rigwatch.station"] == b"mill3"
    assert float(meta[b"rigwatch.sample_rate_hz"]) == RATE
    assert meta[b"rigwatch.start_index"] == b"0"
    assert json.loads(meta[b"rigwatch.extra"]) == {"source": "unit-test"}
    assert json.loads(meta[b"rigwatch.channels"])[1] == {
        "name": "ch1",
        "unit": "bar",
        "gain": 1.0,
        "offset": 0.0,
    }
    md = pq.ParquetFile(seg).metadata
    for rg in range(md.num_row_groups):
        cols = [md.row_group(rg).column(i) for i in range(4)]
        assert "DELTA_BINARY_PACKED" in cols[0].encodings
        for col in cols:
            assert col.compression == expected
            assert not {"PLAIN_DICTIONARY", "RLE_DICTIONARY"} & set(col.encodings)
        # the timestamp's min/max let readers skip row groups; channels carry none
        assert cols[0].statistics is not None and cols[0].statistics.has_min_max
        for col in cols[1:]:
            assert "BYTE_STREAM_SPLIT" in col.encodings
            assert col.statistics is None
    schema = pq.read_schema(seg)
    assert not any(f.nullable for f in schema)  # a missing value is NaN, never null


def test_bad_codec_level_rejected_by_config_and_writer_options(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="compression_level"):
        config(tmp_path, codec="snappy", compression_level=3)
    with pytest.raises(RecorderError, match="compression_level"):  # snapshots, export, recovery
        writer_options([], "snappy", 3)


def test_name_collision_never_overwrites(tmp_path: Path) -> None:
    stream, counters = make_stream()
    stream.ingest(block(0, 300))
    first = SegmentRecorder(stream, config(tmp_path), counters, start_index=0)
    first.start()
    first.stop()
    second = SegmentRecorder(stream, config(tmp_path), counters, start_index=0)
    second.start()
    second.stop()
    assert first.segments[0].name == "dev_20231114T221320_000000Z.parquet"
    assert second.segments[0].name == "dev_20231114T221320_000000Z-1.parquet"
    for p in (*first.segments, *second.segments):
        assert_rows(pq.read_table(p), 0, 300)


# -- lifecycle ------------------------------------------------------------------------------
def test_stream_end_closes_last_segment(tmp_path: Path) -> None:
    counters = Counters()
    blocks = [block(off, 250) for off in range(0, 2250, 250)]
    engine = AcquisitionEngine([FiniteDevice(blocks)], capacity_rows=10_000, counters=counters)
    stream = engine.streams["dev"]
    rec = SegmentRecorder(stream, config(tmp_path, segment_duration_s=1.0), counters)
    rec.start()
    engine.start()
    assert stream.wait_finished(10.0)
    assert rec.wait_finished(10.0)
    engine.stop()
    assert rec.status()["state"] == "finished"
    assert [pq.read_metadata(p).num_rows for p in rec.segments] == [1000, 1000, 250]
    assert_rows(read_segments(rec.segments), 0, 2250)
    rec.stop()  # idempotent after the end
    rec.stop()
    assert hidden_files(tmp_path) == []


def test_stop_without_start_and_flush_when_not_running(tmp_path: Path) -> None:
    stream, counters = make_stream()
    rec = SegmentRecorder(stream, config(tmp_path), counters)
    with pytest.raises(RecorderError, match="not running"):
        rec.flush()
    rec.stop()
    assert rec.status()["state"] == "stopped"
    assert rec.segments == []


def test_start_index_beyond_buffer_rejected(tmp_path: Path) -> None:
    stream, counters = make_stream()
    with pytest.raises(RecorderError, match="start_index"):
        SegmentRecorder(stream, config(tmp_path), counters, start_index=5)


def test_flush_writes_a_readable_journal(tmp_path: Path) -> None:
    stream, counters = make_stream()
    rec = SegmentRecorder(stream, config(tmp_path), counters)
    rec.start()
    stream.ingest(block(0, 400))
    assert rec.flush() == 400
    stream.ingest(block(400, 100))
    assert rec.flush() == 500
    name = rec.status()["segment"]
    journal = tmp_path / f".{name}.arrows"
    assert (tmp_path / f".{name}.tmp").exists()
    assert not (tmp_path / name).exists()
    with pa.OSFile(str(journal), "rb") as f:
        batches = list(pa.ipc.open_stream(f))
    assert [b.num_rows for b in batches] == [400, 100]
    assert_rows(pa.Table.from_batches(batches), 0, 500)
    rec.stop()
    assert not journal.exists()
    assert rec.segments == [tmp_path / name]


def test_overrun_counts_missed_rows_exactly(tmp_path: Path) -> None:
    stream, counters = make_stream(capacity=1000)
    rec = SegmentRecorder(stream, config(tmp_path), counters)  # start index 0
    for off in range(0, 2500, 100):  # not started: the buffer wraps past the recorder
        stream.ingest(block(off, 100))
    rec.start()
    assert rec.flush() == 2500
    stream.ingest(block(2500, 100))
    rec.stop()
    assert rec.status()["missed_rows"] == 1500
    assert counters.get("recorder.dev.missed_rows") == 1500
    (seg,) = rec.segments
    assert pq.read_schema(seg).metadata[b"rigwatch.start_index"] == b"1500"
    assert_rows(pq.read_table(seg), 1500, 1100)


def test_gap_closes_segment(tmp_path: Path) -> None:
    stream, counters = make_stream(capacity=1000)
    stream.ingest(block(0, 500))
    rec = SegmentRecorder(stream, config(tmp_path), counters, start_index=0)
    rec.start()
    assert rec.flush() == 500
    rec.stop()  # segment [0, 500) closed
    for off in range(500, 2000, 100):
        stream.ingest(block(off, 100))
    late = SegmentRecorder(stream, config(tmp_path), counters, start_index=500)
    late.start()
    late.stop()
    assert counters.get("recorder.dev.missed_rows") == 500
    (seg,) = late.segments
    assert_rows(pq.read_table(seg), 1000, 1000)


# -- crash recovery -------------------------------------------------------------------------
CHILD = GEN_SRC + textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from rigwatch.acquisition.engine import DeviceStream
    from rigwatch.acquisition.recorder import SegmentRecorder
    from rigwatch.config.station import RecorderConfig
    from rigwatch.counters import Counters
    from rigwatch.devices.protocols import Block, ChannelInfo, StreamInfo, regular_timestamps_ns

    T0, RATE = 1_700_000_000_000_000_000, 1000.0

    class Dev:
        def describe(self):
            return StreamInfo("dev", "fake", RATE, tuple(ChannelInfo(f"ch{i}") for i in range(3)))
        def start(self): pass
        def stop(self): pass
        def read_block(self, timeout_s): return None

    cfg = RecorderConfig(directory=Path(sys.argv[1]), segment_duration_s=1.0, fsync=True)
    stream = DeviceStream(Dev(), 100_000, Counters())
    rec = SegmentRecorder(stream, cfg, Counters())
    rec.start()
    pos = 0
    for n in [300, 400, 700, 350, 750]:
        stream.ingest(Block(gen_rows(pos, n, 3), regular_timestamps_ns(T0, pos, n, RATE)))
        pos += n
        done = rec.flush()
    print("flushed", done, flush=True)
    stream.ingest(Block(gen_rows(pos, 150, 3), regular_timestamps_ns(T0, pos, 150, RATE)))
    print("ingested", pos + 150, flush=True)
    sys.stdin.read()  # wait for the kill
    """
)


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_kill_9_then_recover(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(tmp_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        assert line.startswith("flushed "), line + proc.stderr.read()  # type: ignore[union-attr]
        flushed = int(line.split()[1])
        line = proc.stdout.readline()  # type: ignore[union-attr]
        assert line.startswith("ingested "), line
        ingested = int(line.split()[1])
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdin.close()  # type: ignore[union-attr]
        proc.stdout.close()  # type: ignore[union-attr]
        proc.stderr.close()  # type: ignore[union-attr]
    assert flushed == 2500
    closed = sorted(tmp_path.glob("*.parquet"))
    assert [p.name for p in closed] == [
        "dev_20231114T221320_000000Z.parquet",
        "dev_20231114T221321_000000Z.parquet",
    ]
    assert len(list(tmp_path.glob(".*.arrows"))) == 1

    counters = Counters()
    recovered = recover(tmp_path, counters)
    assert [p.name for p in recovered] == ["dev_20231114T221322_000000Z.parquet"]
    assert counters.get("recorder.recovered_segments") == 1
    assert hidden_files(tmp_path) == []  # journal and partial tmp removed
    table = read_segments(sorted(tmp_path.glob("*.parquet")))
    assert flushed <= table.num_rows <= ingested
    assert_rows(table, 0, table.num_rows)
    assert pq.read_schema(recovered[0]).metadata[b"rigwatch.start_index"] == b"2000"
    assert recover(tmp_path, counters) == []  # idempotent


def _journal_copy_of_open_segment(tmp_path: Path, flushes: list[int]) -> tuple[Path, bytes]:
    """Record ``flushes`` rows per flush, copy the journal before closing; return its name."""
    live = tmp_path / "live"
    stream, counters = make_stream()
    rec = SegmentRecorder(stream, config(live), counters)
    rec.start()
    pos = 0
    for n in flushes:
        stream.ingest(block(pos, n))
        pos += n
        rec.flush()
    name = rec.status()["segment"]
    content = (live / f".{name}.arrows").read_bytes()
    rec.stop()
    return live / name, content


def test_recover_truncated_tail_keeps_complete_batches(tmp_path: Path) -> None:
    closed, content = _journal_copy_of_open_segment(tmp_path, [300, 200, 100])
    crash = tmp_path / "crash"
    crash.mkdir()
    (crash / f".{closed.name}.arrows").write_bytes(content[:-10])  # cut inside batch 3
    (crash / f".{closed.name}.tmp").write_bytes(b"PAR1 partial")
    counters = Counters()
    (path,) = recover(crash, counters)
    assert path == crash / closed.name
    assert_rows(pq.read_table(path), 0, 500)
    assert counters.get("recorder.recovered_truncated_tail") == 1
    assert hidden_files(crash) == []


def test_recover_journal_without_complete_batch_is_removed(tmp_path: Path) -> None:
    closed, content = _journal_copy_of_open_segment(tmp_path, [300])
    crash = tmp_path / "crash"
    crash.mkdir()
    (crash / f".{closed.name}.arrows").write_bytes(content[:-100])
    counters = Counters()
    assert recover(crash, counters) == []
    assert counters.get("recorder.empty_journal") == 1
    assert list(crash.iterdir()) == []


def test_recover_after_close_before_journal_delete_does_not_duplicate(tmp_path: Path) -> None:
    closed, content = _journal_copy_of_open_segment(tmp_path, [300, 200])
    before = closed.read_bytes()
    (closed.parent / f".{closed.name}.arrows").write_bytes(content)
    counters = Counters()
    assert recover(closed.parent, counters) == []
    assert counters.get("recorder.recovered_already_closed") == 1
    assert closed.read_bytes() == before
    assert hidden_files(closed.parent) == []


def test_corrupt_journals_are_moved_aside(tmp_path: Path) -> None:
    garbage = tmp_path / ".dev_20240101T000000_000000Z.parquet.arrows"
    garbage.write_bytes(os.urandom(3000))
    foreign = tmp_path / ".dev_20240101T000001_000000Z.parquet.arrows"
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, pa.schema([("x", pa.int32())])) as w:
        w.write_batch(pa.record_batch([pa.array([1, 2], pa.int32())], names=["x"]))
    foreign.write_bytes(sink.getvalue().to_pybytes())
    stale_tmp = tmp_path / ".dev_20240101T000002_000000Z.parquet.tmp"
    stale_tmp.write_bytes(b"x")
    counters = Counters()
    assert recover(tmp_path, counters) == []
    assert counters.get("recorder.unrecoverable_journal") == 2
    assert garbage.name in counters.last_messages()["recorder.unrecoverable_journal"] or (
        foreign.name in counters.last_messages()["recorder.unrecoverable_journal"]
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        garbage.name + ".corrupt",
        foreign.name + ".corrupt",
    ]
    assert counters.get("recorder.removed_stale_tmp") == 1
    assert recover(tmp_path, counters) == []  # moved aside: not retried
    assert counters.get("recorder.unrecoverable_journal") == 2


def test_recover_missing_directory(tmp_path: Path) -> None:
    assert recover(tmp_path / "nope", Counters()) == []


# -- snapshots ------------------------------------------------------------------------------
def test_save_buffer_snapshot(tmp_path: Path) -> None:
    stream, _ = make_stream(capacity=1000)
    with pytest.raises(RecorderError, match="empty"):
        save_buffer_snapshot(stream, tmp_path)
    stream.ingest(block(0, 300))
    path = save_buffer_snapshot(stream, tmp_path, station="mill3")
    assert re.fullmatch(r"buffer_dev_\d{8}T\d{6}_\d{6}Z(-\d+)?\.parquet", path.name)
    assert_rows(pq.read_table(path), 0, 300)
    assert pq.read_schema(path).metadata[b"rigwatch.station"] == b"mill3"
    last = save_buffer_snapshot(stream, tmp_path, last_n=50, codec="snappy")
    assert last != path
    assert_rows(pq.read_table(last), 250, 50)
    assert pq.read_schema(last).metadata[b"rigwatch.start_index"] == b"250"
    for off in range(300, 2500, 200):  # wrap the buffer
        stream.ingest(block(off, 200))
    wrapped = save_buffer_snapshot(stream, tmp_path)
    assert_rows(pq.read_table(wrapped), 1500, 1000)
    assert hidden_files(tmp_path) == []


# -- write errors ---------------------------------------------------------------------------
def test_failed_segment_open_is_retried_without_loss(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rigwatch.acquisition.recorder import open_segment as open_segment_mod
    from rigwatch.acquisition.recorder import segments as segments_mod

    real_open = open_segment_mod.open_parquet_writer
    failures = [OSError("disk full")]

    def flaky_open(*args: object, **kwargs: object) -> pq.ParquetWriter:
        if failures:
            raise failures.pop()
        return real_open(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(open_segment_mod, "open_parquet_writer", flaky_open)
    monkeypatch.setattr(segments_mod, "_ERROR_BACKOFF_S", 0.0)
    stream, counters = make_stream()
    rec = SegmentRecorder(stream, config(tmp_path), counters)
    rec.start()
    stream.ingest(block(0, 300))
    with contextlib.suppress(RecorderError):
        rec.flush()  # fails if it is served before the retry
    assert rec.flush() == 300
    rec.stop()
    assert counters.get("recorder.dev.write_error") == 1
    assert "disk full" in rec.status()["last_error"]
    assert_rows(read_segments(rec.segments), 0, 300)
    assert hidden_files(tmp_path) == []


def test_failed_flush_salvages_the_journal_and_counts_lost_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rigwatch.acquisition.recorder import segments as segments_mod
    from rigwatch.acquisition.recorder.open_segment import OpenSegment

    real_flush = OpenSegment.flush
    failures = [OSError("I/O error")]

    def flaky_flush(self: OpenSegment, wait: bool = False) -> int:
        if self.rows > 300 and failures:
            raise failures.pop()
        return real_flush(self, wait=wait)

    monkeypatch.setattr(OpenSegment, "flush", flaky_flush)
    monkeypatch.setattr(segments_mod, "_ERROR_BACKOFF_S", 0.0)
    stream, counters = make_stream()
    rec = SegmentRecorder(stream, config(tmp_path), counters)
    rec.start()
    stream.ingest(block(0, 300))
    assert rec.flush() == 300
    stream.ingest(block(300, 200))
    with pytest.raises(RecorderError, match="I/O error"):
        rec.flush()
    stream.ingest(block(500, 100))
    assert rec.flush() == 600
    rec.stop()
    assert counters.get("recorder.dev.write_error") == 1
    assert counters.get("recorder.dev.lost_rows") == 200
    first, second = rec.segments
    assert_rows(pq.read_table(first), 0, 300)  # salvaged from the journal
    assert_rows(pq.read_table(second), 500, 100)
    assert hidden_files(tmp_path) == []


def test_snapshot_streams_row_groups_and_stays_gap_free_when_overwritten(tmp_path: Path) -> None:
    stream, counters = make_stream(capacity=1000)
    for off in range(0, 1000, 100):
        stream.ingest(block(off, 100))
    whole = save_buffer_snapshot(stream, tmp_path, chunk_rows=300)
    md = pq.read_metadata(whole)
    assert [md.row_group(i).num_rows for i in range(md.num_row_groups)] == [300, 300, 300, 100]
    assert_rows(pq.read_table(whole), 0, 1000)

    # the writer overwrites rows while the snapshot reads its second row group
    buf = stream.buffer
    reads = []

    def writer_strikes_on_second_read() -> None:
        reads.append(1)
        if len(reads) == 2:
            stream.ingest(block(1000, 500))  # rows 0..499 overwritten

    buf.after_copy_hook = writer_strikes_on_second_read
    cut = save_buffer_snapshot(stream, tmp_path, chunk_rows=300, counters=counters)
    buf.after_copy_hook = None
    table = pq.read_table(cut)
    assert pq.read_schema(cut).metadata[b"rigwatch.start_index"] == b"0"
    assert_rows(table, 0, 300)  # ends before the overwritten rows, no gap inside
    assert counters.get("recorder.dev.snapshot_truncated") == 1
    assert hidden_files(tmp_path) == []
