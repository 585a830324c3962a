"""Recording files: listing, safe lookup, decimated range queries and export."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest

from rigwatch.channels import ChannelInfo, StreamInfo
from rigwatch.devices.protocols import regular_timestamps_ns
from rigwatch.errors import RecordingError
from rigwatch.recordings.catalog import UnsafePath, list_recordings, safe_recording_path
from rigwatch.recordings.export import export_recording
from rigwatch.recordings.files import write_table_atomically
from rigwatch.recordings.layout import recording_schema, rows_to_batch
from rigwatch.recordings.query import UnknownChannel, query_range


def query_recording(*args, **kwargs):
    """The query's result as plain data, as the API serves it."""
    return query_range(*args, **kwargs).to_model().model_dump()


T0 = 1_700_000_000_000_000_000
RATE = 1000.0
ROWS = 10_000
SPIKE_A = 4321  # +100 on channel a
SPIKE_B = 777  # -50 on channel b

INFO = StreamInfo(
    device="mill",
    driver="sim",
    sample_rate_hz=RATE,
    channels=(ChannelInfo("a", "g"), ChannelInfo("b", "bar", 2.0, 0.5), ChannelInfo("c", "V")),
)


def make_rows() -> tuple[np.ndarray, np.ndarray]:
    ts = regular_timestamps_ns(T0, 0, ROWS, RATE)
    i = np.arange(ROWS, dtype=np.float64)
    data = np.stack([np.sin(i * 0.01), np.cos(i * 0.01), i / ROWS], axis=1).astype(np.float32)
    data[SPIKE_A, 0] = 100.0
    data[SPIKE_B, 1] = -50.0
    return ts, data


@pytest.fixture
def recording(tmp_path: Path) -> Path:
    ts, data = make_rows()
    schema = recording_schema(INFO, "st", 0)
    path = tmp_path / "mill_20231114T221320_000000Z.parquet"
    write_table_atomically([rows_to_batch(schema, ts, data)], schema, path, row_group_rows=1000)
    return path


# -- listing --------------------------------------------------------------------------------
def test_list_recordings(tmp_path: Path, recording: Path) -> None:
    (tmp_path / ".hidden.parquet").write_bytes(b"x")
    (tmp_path / ".mill_x.parquet.tmp").write_bytes(b"x")
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "bad_20240101T000000_000000Z.parquet").write_bytes(os.urandom(500))
    (tmp_path / "sub.parquet").mkdir()
    outside = tmp_path.parent / f"{tmp_path.name}_outside"
    outside.mkdir()
    (outside / "o.parquet").write_bytes(recording.read_bytes())
    (tmp_path / "escape.parquet").symlink_to(outside / "o.parquet")
    (tmp_path / "alias.parquet").symlink_to(recording)

    infos = {i.filename: i for i in list_recordings(tmp_path)}
    assert sorted(infos) == [
        "alias.parquet",
        "bad_20240101T000000_000000Z.parquet",
        recording.name,
    ]
    bad = infos["bad_20240101T000000_000000Z.parquet"]
    assert bad.error and bad.device == "bad" and bad.size_bytes == 500
    info = infos[recording.name]
    assert info.error is None
    assert info.device == "mill"
    assert info.driver == "sim"
    assert info.station == "st"
    assert info.rows == ROWS
    assert info.size_bytes == recording.stat().st_size
    ts, _ = make_rows()
    assert (info.start_ns, info.end_ns) == (int(ts[0]), int(ts[-1]))
    assert info.channels == ["a", "b", "c"]
    assert info.units == ["g", "bar", "V"]
    assert info.sample_rate_hz == RATE
    json.dumps(info.model_dump())
    assert list_recordings(tmp_path / "missing") == []


# -- safe paths -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("../x.parquet", "directory part"),
        ("sub/x.parquet", "directory part"),
        ("..\\x.parquet", "directory part"),
        ("/etc/passwd", "absolute"),
        ("C:\\x.parquet", "absolute"),
        (".hidden.parquet", "hidden"),
        ("..", "hidden"),
        ("x.txt", "not a .parquet"),
        ("x.parquet\x00.txt", "NUL"),
        ("", "empty"),
    ],
)
def test_safe_recording_path_refuses(tmp_path: Path, name: str, why: str) -> None:
    with pytest.raises(UnsafePath, match=why):
        safe_recording_path(tmp_path, name)


def test_safe_recording_path_symlinks(tmp_path: Path, recording: Path) -> None:
    assert safe_recording_path(tmp_path, recording.name) == recording.resolve()
    assert (
        safe_recording_path(tmp_path, "not_yet.parquet") == tmp_path.resolve() / "not_yet.parquet"
    )
    outside = tmp_path.parent / f"{tmp_path.name}_out.parquet"
    outside.write_bytes(b"x")
    (tmp_path / "escape.parquet").symlink_to(outside)
    with pytest.raises(UnsafePath, match="outside"):
        safe_recording_path(tmp_path, "escape.parquet")
    (tmp_path / "alias.parquet").symlink_to(recording)
    assert safe_recording_path(tmp_path, "alias.parquet") == recording.resolve()
    assert issubclass(UnsafePath, RecordingError)


# -- query ----------------------------------------------------------------------------------
def test_query_decimates_and_keeps_spikes(recording: Path) -> None:
    q = query_recording(recording, max_points=100)
    json.dumps(q, allow_nan=False)
    assert q["filename"] == recording.name
    assert q["device"] == "mill"
    assert q["sample_rate_hz"] == RATE
    assert q["channels"] == [
        {"name": "a", "unit": "g"},
        {"name": "b", "unit": "bar"},
        {"name": "c", "unit": "V"},
    ]
    assert (q["rows_total"], q["rows_selected"], q["bucket_size"]) == (ROWS, ROWS, 100)
    assert len(q["t_s"]) == 100
    ts, data = make_rows()
    np.testing.assert_allclose(q["t_s"], ts[::100] / 1e9)
    a_max = q["series"]["a"]["max"]
    assert max(a_max) == 100.0 and a_max[SPIKE_A // 100] == 100.0
    assert min(q["series"]["b"]["min"]) == -50.0
    assert q["series"]["b"]["min"][SPIKE_B // 100] == -50.0
    # exact min/max of every bucket
    for name, col in (("a", 0), ("c", 2)):
        buckets = data[:, col].reshape(100, 100)
        assert q["series"][name]["min"] == buckets.min(axis=1).astype(np.float64).tolist()
        assert q["series"][name]["max"] == buckets.max(axis=1).astype(np.float64).tolist()


def test_query_time_range_reads_only_needed_row_groups(
    recording: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    read: list[int] = []
    original = pq.ParquetFile.read_row_group

    def spy(self: pq.ParquetFile, i: int, *args: object, **kwargs: object) -> pa.Table:
        read.append(i)
        return original(self, i, *args, **kwargs)

    monkeypatch.setattr(pq.ParquetFile, "read_row_group", spy)
    ts, data = make_rows()
    q = query_recording(recording, int(ts[2500]), int(ts[2999]), channels=["b"])
    assert set(read) == {2}
    assert (q["rows_selected"], q["bucket_size"]) == (500, 1)
    assert list(q["series"]) == ["b"]
    assert q["series"]["b"]["min"] == data[2500:3000, 1].astype(np.float64).tolist()
    assert q["series"]["b"]["max"] == q["series"]["b"]["min"]
    np.testing.assert_allclose(q["t_s"], ts[2500:3000] / 1e9)


def test_query_range_across_row_groups(recording: Path) -> None:
    ts, data = make_rows()
    lo, hi = 1234, 5678  # partial first and last row groups, spike A inside
    q = query_recording(recording, int(ts[lo]), int(ts[hi]), channels=["a"], max_points=7)
    n = hi - lo + 1
    bucket = -(-n // 7)
    assert (q["rows_selected"], q["bucket_size"]) == (n, bucket)
    sel = data[lo : hi + 1, 0]
    expected_max = [float(sel[i : i + bucket].max()) for i in range(0, n, bucket)]
    assert q["series"]["a"]["max"] == expected_max
    assert 100.0 in expected_max
    np.testing.assert_allclose(q["t_s"], ts[lo : hi + 1 : bucket] / 1e9)


def test_query_empty_range_and_errors(recording: Path) -> None:
    q = query_recording(recording, start_ns=0, end_ns=1)
    assert q["rows_selected"] == 0 and q["t_s"] == [] and q["series"]["a"]["min"] == []
    with pytest.raises(UnknownChannel, match=r"'zz'.*a, b, c"):
        query_recording(recording, channels=["a", "zz"])
    with pytest.raises(ValueError):
        query_recording(recording, max_points=0)
    bad = recording.with_name("bad.parquet")
    bad.write_bytes(b"not parquet")
    with pytest.raises(RecordingError, match=r"bad\.parquet"):
        query_recording(bad)


def test_query_nan_becomes_none(tmp_path: Path) -> None:
    schema = recording_schema(INFO, None, 0)
    data = np.ones((6, 3), dtype=np.float32)
    data[0:2, 0] = np.nan  # a whole bucket of NaN
    data[3, 1] = np.nan  # NaN beside numbers is ignored
    data[5, 2] = np.inf
    path = tmp_path / "n.parquet"
    ts = regular_timestamps_ns(T0, 0, 6, RATE)
    write_table_atomically([rows_to_batch(schema, ts, data)], schema, path)
    q = query_recording(path, max_points=3)
    assert q["series"]["a"]["min"] == [None, 1.0, 1.0]
    assert q["series"]["b"]["max"] == [1.0, 1.0, 1.0]
    assert q["series"]["c"]["max"] == [1.0, 1.0, None]
    json.dumps(q, allow_nan=False)


# -- export ---------------------------------------------------------------------------------
def test_export_csv(tmp_path: Path, recording: Path) -> None:
    calls: list[tuple[int, int]] = []
    out = tmp_path / "out" / "x.csv"
    out.parent.mkdir()
    n = export_recording(
        recording, out, "csv", channels=["c", "a"], progress=lambda d, t: calls.append((d, t))
    )
    assert n == ROWS
    assert calls == [(k * 1000, ROWS) for k in range(1, 11)]
    lines = out.read_text().splitlines()
    assert lines[0] == '"timestamp","c","a"'
    assert lines[1].startswith('"2023-11-14T22:13:20.000000000Z",')
    back = pcsv.read_csv(
        out,
        convert_options=pcsv.ConvertOptions(
            column_types={"timestamp": pa.string(), "a": pa.float32(), "c": pa.float32()}
        ),
    )
    _, data = make_rows()
    assert back.column("timestamp")[SPIKE_A].as_py() == "2023-11-14T22:13:24.321000000Z"
    np.testing.assert_array_equal(back.column("a").to_numpy(), data[:, 0])
    np.testing.assert_array_equal(back.column("c").to_numpy(), data[:, 2])
    assert [p.name for p in out.parent.iterdir()] == ["x.csv"]


def test_export_parquet_subset(tmp_path: Path, recording: Path) -> None:
    out = tmp_path / "sub_export.parquet"
    assert export_recording(recording, out, "parquet", channels=["b"]) == ROWS
    t = pq.read_table(out)
    assert t.schema.names == ["timestamp", "b"]
    assert t.schema.field("b").metadata == {b"unit": b"bar"}
    meta = t.schema.metadata
    assert [c["name"] for c in json.loads(meta[b"rigwatch.channels"])] == ["b"]
    assert meta[b"rigwatch.device"] == b"mill"
    src = pq.read_table(recording, columns=["timestamp", "b"])
    assert t.equals(src)
    md = pq.read_metadata(out)
    assert md.num_row_groups == 10
    assert "BYTE_STREAM_SPLIT" in md.row_group(0).column(1).encodings
    with pytest.raises(RecordingError, match="onto itself"):
        export_recording(recording, recording, "parquet")
    with pytest.raises(ValueError):
        export_recording(recording, tmp_path / "x.json", "json")  # type: ignore[arg-type]
    with pytest.raises(UnknownChannel):
        export_recording(recording, tmp_path / "y.csv", "csv", channels=["nope"])
    assert not (tmp_path / "y.csv").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_a_symlink_loop_is_listed_with_its_error_not_fatal(recording: Path) -> None:
    d = recording.parent
    (d / "loop_a.parquet").symlink_to(d / "loop_b.parquet")
    (d / "loop_b.parquet").symlink_to(d / "loop_a.parquet")
    (d / "dangling.parquet").symlink_to(d / "nowhere.parquet")
    infos = {i.filename: i for i in list_recordings(d)}
    assert infos[recording.name].error is None and infos[recording.name].rows == ROWS
    assert infos["loop_a.parquet"].error == "symbolic link loop"
    assert infos["dangling.parquet"].error == "file vanished or dangling symbolic link"
    with pytest.raises(UnsafePath, match="cannot be resolved: symbolic link loop"):
        safe_recording_path(d, "loop_a.parquet")


def test_names_longer_than_the_file_system_allows_are_refused(tmp_path: Path) -> None:
    with pytest.raises(UnsafePath, match="300 bytes is longer than 255 bytes"):
        safe_recording_path(tmp_path, "a" * 292 + ".parquet")
    assert safe_recording_path(tmp_path, "a" * 247 + ".parquet").name == "a" * 247 + ".parquet"


def test_corrupt_pages_behind_an_intact_footer_are_a_format_error(recording: Path) -> None:
    from rigwatch.errors import FormatError

    raw = bytearray(recording.read_bytes())
    footer = int.from_bytes(raw[-8:-4], "little") + 8
    for i in range(200, len(raw) - footer - 200, 97):  # scribble over the data pages
        raw[i] ^= 0x5A
    recording.write_bytes(bytes(raw))
    with pytest.raises(FormatError, match="corrupt"):
        query_recording(recording)
    out = recording.with_name("out.csv")
    with pytest.raises(FormatError, match="corrupt"):
        export_recording(recording, out, "csv")
    assert not out.exists() and not any(p.name.startswith(".") for p in recording.parent.iterdir())


def test_json_reply_encodes_the_same_numbers_as_the_model(tmp_path: Path) -> None:
    import orjson

    ts = regular_timestamps_ns(T0, 0, 6, RATE)
    data = np.array([[np.nan, 1], [np.nan, np.inf], [0.1, 2], [3, 2], [5, 2], [7, -np.inf]])
    schema = recording_schema(INFO, "st", 0)
    path = tmp_path / "nan.parquet"
    cols = np.concatenate([data, np.zeros((6, 1))], axis=1).astype(np.float32)
    write_table_atomically([rows_to_batch(schema, ts, cols)], schema, path)
    arrays = query_range(path, max_points=3)
    decoded = orjson.loads(arrays.to_json())
    model = arrays.to_model().model_dump()

    def f32(values: list) -> np.ndarray:  # JSON carries float32 values in their shortest form
        return np.array([np.nan if v is None else v for v in values], dtype=np.float32)

    assert {k: v for k, v in decoded.items() if k != "series"} == {
        k: v for k, v in model.items() if k != "series"
    }
    for name, series in model["series"].items():
        for side in ("min", "max"):
            np.testing.assert_array_equal(f32(decoded["series"][name][side]), f32(series[side]))
    assert decoded["series"]["a"]["min"] == [None, 0.1, 5.0]  # NaN-only bucket: null
    assert decoded["series"]["b"]["max"] == [None, 2.0, 2.0]  # infinite extreme: null
