"""Recording file readers: round trips of every format, the shipped CWRU data, bad files."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from scipy.io import wavfile

from rigwatch.errors import FormatError
from rigwatch.recordings.readers import Recording, detect_format, read_recording

DATA = Path(__file__).resolve().parents[2] / "data"
CWRU = DATA / "cwru"
CWRU_FILES = [
    ("1797_IR_7_DE12.npz", 12_000.0, ["DE", "FE", "BA"], 121_265),
    ("1797_OR_6_7_DE12.npz", 12_000.0, ["DE", "FE", "BA"], 121_991),
    ("1797_B_7_DE12.npz", 12_000.0, ["DE", "FE", "BA"], 122_571),
    ("1797_Normal_48k.npz", 48_000.0, ["DE", "FE"], 243_938),
]


def _assert_bits_equal(a: np.ndarray, b: np.ndarray) -> None:
    assert a.dtype == b.dtype == np.float32
    assert a.shape == b.shape
    assert np.array_equal(a.view(np.uint32), b.view(np.uint32))


def _truncate(path: Path, keep: float = 0.5) -> Path:
    raw = path.read_bytes()
    out = path.with_name("truncated_" + path.name)
    out.write_bytes(raw[: int(len(raw) * keep)])
    return out


# ---------------------------------------------------------------------------------------------
# npz


def test_npz_channels_per_key_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    a = rng.standard_normal(500)  # float64
    b = rng.integers(-1000, 1000, size=(500, 1)).astype(np.int16)
    path = tmp_path / "two.npz"
    np.savez(path, a=a, b=b)

    rec = read_recording(path, sample_rate_hz=2_000.0)

    assert isinstance(rec, Recording)
    assert rec.format == "npz"
    assert rec.sample_rate_hz == 2_000.0
    assert rec.channel_names == ["a", "b"]
    assert rec.units == ["", ""]
    assert rec.timestamps_ns is None
    assert rec.source == str(path)
    assert rec.data.shape == (500, 2)
    assert rec.data.flags.c_contiguous
    _assert_bits_equal(rec.data[:, 0].copy(), a.astype(np.float32))
    _assert_bits_equal(rec.data[:, 1].copy(), b.ravel().astype(np.float32))


def test_npz_keys_select_and_order(tmp_path: Path) -> None:
    path = tmp_path / "k.npz"
    np.savez(path, x=np.arange(10.0), y=np.arange(10.0) * 2, z=np.arange(10.0) * 3)
    rec = read_recording(path, keys=["z", "x"], sample_rate_hz=10.0)
    assert rec.channel_names == ["z", "x"]
    assert np.array_equal(rec.data[:, 0], np.arange(10.0, dtype=np.float32) * 3)
    assert np.array_equal(rec.data[:, 1], np.arange(10.0, dtype=np.float32))


def test_npz_unknown_key_is_named(tmp_path: Path) -> None:
    path = tmp_path / "k.npz"
    np.savez(path, x=np.arange(10.0))
    with pytest.raises(FormatError, match=r"k\.npz.*'nope'.*has: x"):
        read_recording(path, keys=["x", "nope"], sample_rate_hz=10.0)


def test_npz_single_2d_array(tmp_path: Path) -> None:
    data = np.arange(30, dtype=np.float32).reshape(10, 3)
    path = tmp_path / "m.npz"
    np.savez(path, data)  # stored as arr_0
    rec = read_recording(path, sample_rate_hz=100.0)
    assert rec.channel_names == ["ch0", "ch1", "ch2"]
    assert np.array_equal(rec.data, data)


def test_npz_rate_from_file_scalar(tmp_path: Path) -> None:
    path = tmp_path / "r.npz"
    np.savez(path, sig=np.zeros(8), fs=np.float64(25_600.0))
    rec = read_recording(path)
    assert rec.sample_rate_hz == 25_600.0
    assert rec.channel_names == ["sig"]


def test_npz_scalars_become_metadata(tmp_path: Path) -> None:
    path = tmp_path / "r.npz"
    np.savez(path, sig=np.zeros(8), sample_rate_hz=np.array(100.0), rpm=np.array(1797))
    rec = read_recording(path)
    assert rec.sample_rate_hz == 100.0
    assert rec.channel_names == ["sig"]
    assert rec.metadata["rpm"] == "1797"


def test_npz_without_rate_asks_for_sample_rate_hz(tmp_path: Path) -> None:
    path = tmp_path / "norate.npz"
    np.savez(path, sig=np.zeros(8))
    with pytest.raises(FormatError, match=r"norate\.npz.*set sample_rate_hz"):
        read_recording(path)


def test_npz_mismatched_lengths_names_channels(tmp_path: Path) -> None:
    path = tmp_path / "len.npz"
    np.savez(path, short=np.zeros(5), long=np.zeros(7))
    with pytest.raises(FormatError, match=r"len\.npz.*different lengths.*short: 5.*long: 7"):
        read_recording(path, sample_rate_hz=10.0)


@pytest.mark.parametrize(
    ("value", "what"),
    [
        (np.zeros(4, dtype=np.complex128), "complex"),
        (np.array(["a", "b", "c"]), "<U1"),
        (np.zeros(4, dtype=[("a", "f4"), ("b", "f4")]), "dtype"),
    ],
)
def test_npz_wrong_dtype(tmp_path: Path, value: np.ndarray, what: str) -> None:
    path = tmp_path / "dtype.npz"
    np.savez(path, bad=value)
    with pytest.raises(FormatError, match=rf"dtype\.npz.*'bad'.*{what}"):
        read_recording(path, sample_rate_hz=10.0)


def test_npz_object_array_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "obj.npz"
    np.savez(path, bad=np.array([1, "x", None], dtype=object))
    with pytest.raises(FormatError, match=r"obj\.npz.*'bad'.*object"):
        read_recording(path, sample_rate_hz=10.0)


def test_npz_empty_array(tmp_path: Path) -> None:
    path = tmp_path / "empty.npz"
    np.savez(path, sig=np.zeros(0))
    with pytest.raises(FormatError, match=r"empty\.npz.*'sig' is empty"):
        read_recording(path, sample_rate_hz=10.0)


def test_npz_three_dimensional_array(tmp_path: Path) -> None:
    path = tmp_path / "cube.npz"
    np.savez(path, sig=np.zeros((4, 2, 2)))
    with pytest.raises(FormatError, match=r"cube\.npz.*shape \(4, 2, 2\)"):
        read_recording(path, sample_rate_hz=10.0)


def test_npz_truncated(tmp_path: Path) -> None:
    path = tmp_path / "whole.npz"
    np.savez(path, sig=np.arange(10_000.0))
    bad = _truncate(path)
    with pytest.raises(FormatError, match=r"truncated_whole\.npz"):
        read_recording(bad, sample_rate_hz=10.0)


def test_npz_corrupt_compressed_member(tmp_path: Path) -> None:
    path = tmp_path / "c.npz"
    np.savez_compressed(path, sig=np.random.default_rng(0).standard_normal(10_000))
    raw = bytearray(path.read_bytes())
    raw[200:260] = b"\x00" * 60  # inside the deflated data, the zip directory stays intact
    path.write_bytes(bytes(raw))
    with pytest.raises(FormatError, match=r"c\.npz.*'sig'"):
        read_recording(path, sample_rate_hz=10.0)


def test_npz_garbage_file(tmp_path: Path) -> None:
    path = tmp_path / "garbage.npz"
    path.write_bytes(b"this is not an archive at all" * 10)
    with pytest.raises(FormatError, match=r"garbage\.npz"):
        read_recording(path, sample_rate_hz=10.0)


@pytest.mark.parametrize(("name", "rate", "keys", "rows"), CWRU_FILES)
def test_cwru_npz_bit_identical_to_float32_cast(
    name: str, rate: float, keys: list[str], rows: int
) -> None:
    path = CWRU / name
    rec = read_recording(path, sample_rate_hz=rate)
    assert rec.channel_names == keys
    assert rec.data.shape == (rows, len(keys))
    assert rec.sample_rate_hz == rate
    with np.load(path) as ref:
        for j, k in enumerate(keys):
            assert ref[k].dtype == np.float64
            _assert_bits_equal(rec.data[:, j].copy(), ref[k].astype(np.float32).ravel())


# ---------------------------------------------------------------------------------------------
# wav


def test_wav_int16_scaled(tmp_path: Path) -> None:
    pcm = np.array([[0, -32768], [16384, 32767], [-1, 1]], dtype=np.int16)
    path = tmp_path / "a.wav"
    wavfile.write(path, 8_000, pcm)
    rec = read_recording(path)
    assert rec.format == "wav"
    assert rec.sample_rate_hz == 8_000.0
    assert rec.channel_names == ["ch0", "ch1"]
    expected = np.array(
        [[0.0, -1.0], [0.5, 32767 / 32768], [-1 / 32768, 1 / 32768]], dtype=np.float32
    )
    assert np.array_equal(rec.data, expected)


def test_wav_uint8_and_int32_scaled(tmp_path: Path) -> None:
    p8 = tmp_path / "u8.wav"
    wavfile.write(p8, 1_000, np.array([0, 128, 255, 64], dtype=np.uint8))
    rec = read_recording(p8)
    assert np.array_equal(rec.data[:, 0], np.array([-1.0, 0.0, 127 / 128, -0.5], np.float32))

    p32 = tmp_path / "i32.wav"
    wavfile.write(p32, 1_000, np.array([-(2**31), 2**30, 0], dtype=np.int32))
    rec = read_recording(p32)
    assert np.array_equal(rec.data[:, 0], np.array([-1.0, 0.5, 0.0], np.float32))


def test_wav_float_kept(tmp_path: Path) -> None:
    values = np.array([0.25, -1.5, 3.0, 1e-3], dtype=np.float32)
    path = tmp_path / "f.wav"
    wavfile.write(path, 44_100, values)
    rec = read_recording(path)
    assert rec.sample_rate_hz == 44_100.0
    assert np.array_equal(rec.data[:, 0], values)


def test_wav_keys_select_channels(tmp_path: Path) -> None:
    pcm = np.arange(12, dtype=np.int16).reshape(4, 3)
    path = tmp_path / "k.wav"
    wavfile.write(path, 1_000, pcm)
    rec = read_recording(path, keys=["ch2", "ch0"])
    assert rec.channel_names == ["ch2", "ch0"]
    assert np.array_equal(rec.data * 32768, pcm[:, [2, 0]].astype(np.float32))
    with pytest.raises(FormatError, match=r"k\.wav.*'ch7'"):
        read_recording(path, keys=["ch7"])


def test_wav_truncated(tmp_path: Path) -> None:
    path = tmp_path / "t.wav"
    wavfile.write(path, 8_000, np.zeros((1001, 2), dtype=np.int16))
    with pytest.raises(FormatError, match=r"truncated_t\.wav"):
        read_recording(_truncate(path))
    with pytest.raises(FormatError, match=r"truncated_t\.wav"):
        read_recording(_truncate(path, keep=0.005))  # inside the header


# ---------------------------------------------------------------------------------------------
# parquet


def _rigwatch_parquet(path: Path, data: np.ndarray, rate: float, t0_ns: int) -> np.ndarray:
    n = data.shape[0]
    ts = t0_ns + np.rint(np.arange(n) * (1e9 / rate)).astype(np.int64)
    channels = [
        {"name": "P1", "unit": "bar", "gain": 2.0, "offset": 0.5},
        {"name": "T1", "unit": "degC", "gain": 1.0, "offset": 0.0},
    ]
    table = pa.table(
        {
            "timestamp": pa.array(ts, type=pa.timestamp("ns", tz="UTC")),
            "P1": pa.array(data[:, 0], type=pa.float32()),
            "T1": pa.array(data[:, 1], type=pa.float32()),
        }
    )
    table = table.replace_schema_metadata(
        {
            b"rigwatch.device": b"mill",
            b"rigwatch.driver": b"stm32",
            b"rigwatch.sample_rate_hz": repr(rate).encode(),
            b"rigwatch.channels": json.dumps(channels).encode(),
            b"rigwatch.format_version": b"1",
        }
    )
    pq.write_table(table, path)
    return ts


def test_parquet_rigwatch_round_trip(tmp_path: Path) -> None:
    data = np.random.default_rng(2).standard_normal((300, 2)).astype(np.float32)
    path = tmp_path / "seg.parquet"
    ts = _rigwatch_parquet(path, data, 100.0, 1_700_000_000_000_000_000)

    rec = read_recording(path)

    assert rec.format == "parquet"
    assert rec.sample_rate_hz == 100.0
    assert rec.channel_names == ["P1", "T1"]
    assert rec.units == ["bar", "degC"]
    assert np.array_equal(rec.data, data)
    assert rec.timestamps_ns is not None
    assert rec.timestamps_ns.dtype == np.int64
    assert np.array_equal(rec.timestamps_ns, ts)
    assert rec.metadata["rigwatch.device"] == "mill"
    assert rec.metadata["rigwatch.driver"] == "stm32"


def test_parquet_rigwatch_keys_select_columns(tmp_path: Path) -> None:
    data = np.arange(20, dtype=np.float32).reshape(10, 2)
    path = tmp_path / "seg.pq"
    _rigwatch_parquet(path, data, 50.0, 0)
    rec = read_recording(path, keys=["T1"])
    assert rec.channel_names == ["T1"]
    assert rec.units == ["degC"]
    assert np.array_equal(rec.data[:, 0], data[:, 1])
    with pytest.raises(FormatError, match=r"seg\.pq.*'X'"):
        read_recording(path, keys=["X"])


def test_parquet_rigwatch_unknown_version(tmp_path: Path) -> None:
    path = tmp_path / "v.parquet"
    table = pa.table({"a": pa.array([1.0, 2.0], type=pa.float32())})
    table = table.replace_schema_metadata(
        {
            b"rigwatch.sample_rate_hz": b"10",
            b"rigwatch.channels": b'[{"name": "a"}]',
            b"rigwatch.format_version": b"9",
        }
    )
    pq.write_table(table, path)
    with pytest.raises(FormatError, match=r"v\.parquet.*format_version"):
        read_recording(path)


def test_plain_parquet_rate_inferred_from_timestamps(tmp_path: Path) -> None:
    n = 50
    ts = 1_000_000_000 + np.arange(n, dtype=np.int64) * 2_000_000  # 500 Hz
    table = pa.table(
        {
            "timestamp": pa.array(ts, type=pa.timestamp("ns", tz="UTC")),
            "x": np.arange(n, dtype=np.float64),
            "label": ["s"] * n,
            "n": np.arange(n, dtype=np.int32),
        }
    )
    path = tmp_path / "plain.parquet"
    pq.write_table(table, path)
    rec = read_recording(path)
    assert rec.sample_rate_hz == pytest.approx(500.0)
    assert rec.channel_names == ["x", "n"]  # the string column is not a channel
    assert np.array_equal(rec.data[:, 0], np.arange(n, dtype=np.float32))
    assert np.array_equal(rec.timestamps_ns, ts)
    with pytest.raises(FormatError, match=r"plain\.parquet.*'label'.*string"):
        read_recording(path, keys=["label"])


def test_plain_parquet_without_rate(tmp_path: Path) -> None:
    path = tmp_path / "norate.parquet"
    pq.write_table(pa.table({"x": np.arange(5.0)}), path)
    with pytest.raises(FormatError, match=r"norate\.parquet.*set sample_rate_hz"):
        read_recording(path)
    rec = read_recording(path, sample_rate_hz=20.0)
    assert rec.sample_rate_hz == 20.0
    assert rec.timestamps_ns is None
    assert np.array_equal(rec.data[:, 0], np.arange(5.0, dtype=np.float32))


def test_parquet_truncated(tmp_path: Path) -> None:
    path = tmp_path / "seg.parquet"
    _rigwatch_parquet(path, np.zeros((1000, 2), np.float32), 100.0, 0)
    with pytest.raises(FormatError, match=r"truncated_seg\.parquet"):
        read_recording(_truncate(path))


# ---------------------------------------------------------------------------------------------
# hdf5


def test_hdf5_acoular_round_trip(tmp_path: Path) -> None:
    data = np.random.default_rng(3).standard_normal((256, 4)).astype(np.float32)
    path = tmp_path / "ac.h5"
    with h5py.File(path, "w") as f:
        ds = f.create_dataset("time_data", data=data)
        ds.attrs["sample_freq"] = 51_200.0
    rec = read_recording(path)
    assert rec.format == "hdf5"
    assert rec.sample_rate_hz == 51_200.0
    assert rec.channel_names == ["ch0", "ch1", "ch2", "ch3"]
    assert np.array_equal(rec.data, data)
    sub = read_recording(path, keys=["ch3", "ch1"])
    assert np.array_equal(sub.data, data[:, [3, 1]])


def test_hdf5_array_benchmark_sample() -> None:
    path = DATA / "acoustics" / "b11aTimeSeries.h5"
    rec = read_recording(path)
    assert rec.sample_rate_hz == 48_000.0
    assert rec.data.shape == (480, 8)
    assert rec.units == ["Pa"] * 8
    with h5py.File(path, "r") as f:
        assert np.array_equal(rec.data, f["MicrophoneData/microphoneDataPa"][()])


def test_hdf5_without_known_dataset(tmp_path: Path) -> None:
    path = tmp_path / "other.hdf5"
    with h5py.File(path, "w") as f:
        f.create_dataset("something", data=np.zeros(3))
    with pytest.raises(FormatError, match=r"other\.hdf5.*time_data.*something"):
        read_recording(path)


def test_hdf5_without_rate(tmp_path: Path) -> None:
    path = tmp_path / "nr.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("time_data", data=np.zeros((4, 2), np.float32))
    with pytest.raises(FormatError, match=r"nr\.h5.*set sample_rate_hz"):
        read_recording(path)
    assert read_recording(path, sample_rate_hz=8.0).sample_rate_hz == 8.0


def test_hdf5_complex_dtype(tmp_path: Path) -> None:
    path = tmp_path / "cx.h5"
    with h5py.File(path, "w") as f:
        ds = f.create_dataset("time_data", data=np.zeros((4, 2), np.complex64))
        ds.attrs["sample_freq"] = 10.0
    with pytest.raises(FormatError, match=r"cx\.h5.*complex"):
        read_recording(path)


def test_hdf5_truncated(tmp_path: Path) -> None:
    path = tmp_path / "big.h5"
    with h5py.File(path, "w") as f:
        ds = f.create_dataset("time_data", data=np.ones((20_000, 2), np.float32))
        ds.attrs["sample_freq"] = 10.0
    with pytest.raises(FormatError, match=r"truncated_big\.h5"):
        read_recording(_truncate(path))


# ---------------------------------------------------------------------------------------------
# format selection


def test_unknown_suffix_lists_supported(tmp_path: Path) -> None:
    path = tmp_path / "rec.csv"
    path.write_text("1,2\n")
    with pytest.raises(FormatError, match=r"rec\.csv.*\.npz.*\.wav.*\.parquet.*\.h5"):
        read_recording(path)


def test_detect_format() -> None:
    assert detect_format("a.NPZ") == "npz"
    assert detect_format("a.pq") == "parquet"
    assert detect_format("a.hdf5") == "hdf5"
    assert detect_format("x/a.wav") == "wav"


def test_explicit_format_overrides_suffix(tmp_path: Path) -> None:
    path = tmp_path / "rec.bin"
    with path.open("wb") as fh:
        np.savez(fh, sig=np.arange(4.0))
    rec = read_recording(path, format="npz", sample_rate_hz=4.0)
    assert np.array_equal(rec.data[:, 0], np.arange(4.0, dtype=np.float32))
    with pytest.raises(FormatError, match="unknown format 'csv'"):
        read_recording(path, format="csv")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FormatError, match=r"absent\.npz.*does not exist"):
        read_recording(tmp_path / "absent.npz", sample_rate_hz=1.0)
