"""PCM encoding of focused signals for the WebSocket."""

from __future__ import annotations

import msgpack
import numpy as np
import pytest

from rigwatch.acoustics.pcm import PcmChunk, audio_frame_fields, decode_pcm, encode_pcm
from rigwatch.errors import AcousticsError


def test_int16_is_little_endian_scaled_and_round_trips_to_one_lsb() -> None:
    x = np.array([[0.0, 0.5], [-0.25, 1.0], [0.999, -1.0]], dtype=np.float32) * 2.0
    chunk = encode_pcm(x, dtype="<i2", full_scale=2.0)
    assert chunk.shape == (3, 2)
    assert len(chunk.data) == 3 * 2 * 2
    raw = np.frombuffer(chunk.data, dtype="<i2").reshape(3, 2)
    assert raw.tolist() == [[0, 16384], [-8192, 32767], [32734, -32767]]
    assert chunk.data[2:4] == (16384).to_bytes(2, "little", signed=True)  # interleaved, LE
    np.testing.assert_allclose(decode_pcm(chunk), x, atol=2.0 / 32767)
    assert chunk.clipped == 0


def test_int16_clips_and_counts() -> None:
    x = np.array([0.5, 1.5, -3.0, np.nan, 1.0], dtype=np.float32)
    chunk = encode_pcm(x, dtype="<i2")
    assert np.frombuffer(chunk.data, "<i2").tolist() == [16384, 32767, -32767, 0, 32767]
    assert chunk.clipped == 3  # 1.5, -3.0 and the NaN


def test_float32_keeps_values_and_counts_over_full_scale() -> None:
    x = np.linspace(-2, 2, 9, dtype=np.float32)
    chunk = encode_pcm(x, dtype="<f4", full_scale=1.0)
    np.testing.assert_array_equal(np.frombuffer(chunk.data, "<f4"), x)
    np.testing.assert_array_equal(decode_pcm(chunk)[:, 0], x)
    assert chunk.clipped == 4


def test_frame_fields_pack_and_describe_the_samples() -> None:
    chunk = encode_pcm(np.zeros((256, 2), np.float32), dtype="<i2", full_scale=0.1)
    fields = audio_frame_fields(
        chunk, seq=7, start_index=48_000, sample_rate_hz=48_000.0, selections=["p12", "p40"]
    )
    back = msgpack.unpackb(msgpack.packb(fields, use_bin_type=True), raw=False)
    assert back["type"] == "audio"
    assert back["shape"] == [256, 2] and back["channels"] == 2
    assert back["dtype"] == "<i2" and back["sample_rate_hz"] == 48_000.0
    assert back["seq"] == 7 and back["full_scale"] == pytest.approx(0.1)
    again = PcmChunk(back["data"], back["dtype"], tuple(back["shape"]), back["full_scale"], 0)
    np.testing.assert_array_equal(decode_pcm(again), np.zeros((256, 2), np.float32))
    with pytest.raises(AcousticsError, match="1 selection id"):
        audio_frame_fields(chunk, seq=0, start_index=0, sample_rate_hz=1.0, selections=["a"])


def test_bad_encodings_are_clear_errors() -> None:
    with pytest.raises(AcousticsError, match="PCM dtype"):
        encode_pcm(np.zeros(4), dtype="<i4")  # type: ignore[arg-type]
    with pytest.raises(AcousticsError, match="full_scale"):
        encode_pcm(np.zeros(4), full_scale=0.0)
    with pytest.raises(AcousticsError, match=r"\(n, channels\)"):
        encode_pcm(np.zeros((2, 2, 2)))
