"""What the API shows of a station: response models built from its streams, recorders, mode
and counters. Reads only; nothing here changes the station."""

from __future__ import annotations

import math
import time

from rigwatch.acquisition.live import LiveHub
from rigwatch.station import Station
from rigwatch.timefmt import iso_utc
from rigwatch.web.schemas import (
    BufferDeviceStatus,
    BufferStatus,
    ChannelUnit,
    DeviceSensors,
    DeviceStatus,
    LiveStats,
    RecorderStatus,
    Sensors,
    StationStatus,
)


def station_status(station: Station, hub: LiveHub) -> StationStatus:
    """Acquisition, recorder, live, mode and error state."""
    started = station.started_monotonic
    uptime = 0.0 if started is None else time.monotonic() - started
    mode = station.modes.state
    return StationStatus(
        station=station.config.name,
        mode=mode.mode.value,
        mode_since=iso_utc(mode.since_ns),
        simulated=station.simulated,
        uptime_s=round(uptime, 3),
        devices=[
            DeviceStatus(
                name=s.name,
                driver=s.info.driver,
                state=s.state,
                sample_rate_hz=s.info.sample_rate_hz,
                channels=[ChannelUnit(name=c.name, unit=c.unit) for c in s.info.channels],
                rows=s.stats.rows,
                blocks=s.stats.blocks,
                device_errors=s.stats.device_errors,
                last_error=s.stats.last_error,
                simulated=s.info.extra.get("simulated") == "true",
            )
            for s in station.streams.values()
        ],
        recorder={
            name: RecorderStatus.model_validate(rec.status())
            for name, rec in station.recorders.items()
        },
        live=LiveStats(
            clients=hub.stats.clients,
            frames_sent=hub.stats.frames_sent,
            samples_skipped=hub.stats.samples_skipped,
        ),
        errors=station.counters.snapshot(),
        error_messages=station.counters.last_messages(),
    )


def buffer_status(station: Station) -> BufferStatus:
    """Fill state of every device's ring buffer."""
    out: dict[str, BufferDeviceStatus] = {}
    for s in station.streams.values():
        b = s.buffer
        out[s.name] = BufferDeviceStatus(
            capacity_rows=b.capacity,
            channels=b.channels,
            write_index=b.write_index,
            oldest_index=b.oldest_index,
            rows_available=b.rows_available,
            fill_ratio=round(b.rows_available / b.capacity, 6),
            memory_bytes=b.nbytes,
            seconds_available=round(b.rows_available / s.info.sample_rate_hz, 3),
        )
    return BufferStatus(devices=out)


def _finite(v: float) -> float | None:
    return v if math.isfinite(v) else None


def sensors(station: Station) -> Sensors:
    """Newest calibrated value of every channel of every device (``None`` before the first
    row, and for NaN or infinite values)."""
    devices: dict[str, DeviceSensors] = {}
    for s in station.streams.values():
        latest = s.buffer.latest()
        names = s.info.channel_names
        units = {c.name: c.unit for c in s.info.channels}
        if latest is None:
            devices[s.name] = DeviceSensors(
                timestamp=None, values=dict.fromkeys(names), units=units
            )
            continue
        row, ts_ns = latest
        values = {n: _finite(v) for n, v in zip(names, row.tolist(), strict=True)}
        devices[s.name] = DeviceSensors(timestamp=iso_utc(ts_ns), values=values, units=units)
    return Sensors(timestamp=iso_utc(time.time_ns()), devices=devices)


def latest_value(station: Station, device: str, channel: str) -> float | None:
    """Newest calibrated value of one channel; ``None`` before the first row or if not finite.

    Raises:
        KeyError: unknown device; ValueError: unknown channel.
    """
    s = station.streams[device]
    latest = s.buffer.latest()
    if latest is None:
        return None
    return _finite(float(latest[0][s.info.channel_names.index(channel)]))
