"""PCM encoding of focused signals for the WebSocket (played with the Web Audio API).

Frame format
------------
One audio frame is a MessagePack map (the live protocol's conventions: arrays as raw
little-endian bytes plus ``shape`` and ``dtype``, a sequence number) with the fields of
:func:`audio_frame_fields`:

- ``type``: ``"audio"``; ``seq``: frame counter per connection, +1 per frame (gaps = loss);
- ``start_index``: index of the first sample in the acquisition's sample count;
- ``sample_rate_hz``: rate of the samples (the acquisition's rate: the browser resamples);
- ``selections``: one id per channel (the selected points), ``channels = len(selections)``;
- ``shape``: ``[n_samples, channels]``, interleaved C-order (sample-major);
- ``dtype``: ``"<i2"`` (signed 16-bit little-endian, value / 32767 = signal / full_scale) or
  ``"<f4"`` (float32 little-endian, signal / full_scale, not clipped);
- ``full_scale``: the signal value (input unit, Pa) that maps to 1.0 in Web Audio;
- ``clipped``: samples of this frame beyond +-full_scale (clipped in ``<i2``, left as they are
  in ``<f4`` where Web Audio clips them);
- ``data``: the samples, ``n_samples * channels * itemsize`` bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from rigwatch.errors import AcousticsError

__all__ = ["PcmChunk", "PcmDtype", "audio_frame_fields", "decode_pcm", "encode_pcm"]

PcmDtype = Literal["<i2", "<f4"]
_INT16_MAX = 32767


@dataclass(frozen=True, slots=True)
class PcmChunk:
    """Encoded samples.

    Attributes:
        data: interleaved little-endian samples.
        dtype: ``"<i2"`` or ``"<f4"``.
        shape: ``(n_samples, channels)``.
        full_scale: signal value mapped to 1.0.
        clipped: samples whose magnitude exceeded ``full_scale``.
    """

    data: bytes
    dtype: PcmDtype
    shape: tuple[int, int]
    full_scale: float
    clipped: int


def encode_pcm(samples: ArrayLike, *, dtype: PcmDtype = "<i2", full_scale: float = 1.0) -> PcmChunk:
    """Encode ``(n,)`` or ``(n, channels)`` samples as little-endian PCM.

    ``<i2``: ``round(clip(x / full_scale, -1, 1) * 32767)``; ``<f4``: ``x / full_scale``.
    NaN samples are encoded as 0 and counted as clipped.

    Raises:
        AcousticsError: an unknown dtype, a non-positive ``full_scale`` or more than 2 dims.
    """
    if dtype not in ("<i2", "<f4"):
        raise AcousticsError(f"PCM dtype must be '<i2' or '<f4', got {dtype!r}")
    if not (np.isfinite(full_scale) and full_scale > 0):
        raise AcousticsError(f"full_scale must be positive and finite, got {full_scale}")
    x = np.asarray(samples, dtype=np.float32)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2:
        raise AcousticsError(f"samples must be (n,) or (n, channels), got {x.shape}")
    scaled = x / np.float32(full_scale)
    bad = ~np.isfinite(scaled)
    over = np.abs(np.where(bad, 0.0, scaled)) > 1.0
    clipped = int(np.count_nonzero(over) + np.count_nonzero(bad))
    scaled = np.where(bad, np.float32(0.0), scaled)
    if dtype == "<i2":
        ints = np.rint(np.clip(scaled, -1.0, 1.0) * _INT16_MAX).astype("<i2")
        data = np.ascontiguousarray(ints).tobytes()
    else:
        data = np.ascontiguousarray(scaled, dtype="<f4").tobytes()
    return PcmChunk(data, dtype, (int(x.shape[0]), int(x.shape[1])), float(full_scale), clipped)


def decode_pcm(chunk: PcmChunk) -> NDArray[np.float32]:
    """The ``(n_samples, channels)`` float32 signal of a chunk, in the input's unit."""
    arr = np.frombuffer(chunk.data, dtype=chunk.dtype).reshape(chunk.shape)
    if chunk.dtype == "<i2":
        return (arr.astype(np.float32) / _INT16_MAX * np.float32(chunk.full_scale)).astype(
            np.float32
        )
    return (arr * np.float32(chunk.full_scale)).astype(np.float32)


def audio_frame_fields(
    chunk: PcmChunk,
    *,
    seq: int,
    start_index: int,
    sample_rate_hz: float,
    selections: list[str],
) -> dict[str, Any]:
    """The MessagePack map of one audio frame (module docstring).

    Raises:
        AcousticsError: ``len(selections)`` is not the chunk's channel count.
    """
    if len(selections) != chunk.shape[1]:
        raise AcousticsError(
            f"{len(selections)} selection id(s) for {chunk.shape[1]} PCM channel(s)"
        )
    return {
        "type": "audio",
        "seq": int(seq),
        "start_index": int(start_index),
        "sample_rate_hz": float(sample_rate_hz),
        "selections": list(selections),
        "channels": chunk.shape[1],
        "shape": [chunk.shape[0], chunk.shape[1]],
        "dtype": chunk.dtype,
        "full_scale": chunk.full_scale,
        "clipped": chunk.clipped,
        "data": chunk.data,
    }
