"""A station: devices, acquisition engine, ring buffers, recorders, the acoustic camera and the
control part, assembled from config.

The :class:`Station` is synchronous and framework-free; the web layer (``rigwatch.web``) wraps
it in a FastAPI app and adds the live hub. Start order: recover journals of segments a crash
left open, apply retention to the recordings directory, start recorders (so they see every row
from index 0), then the engine, then the control part
(:class:`~rigwatch.control.service.StationControl`). Stop order: the control part first (an
abort sequence during a hot sequence still reaches the valves through the acquisition
device's port), then acquisition and recorders.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from rigwatch.acoustics.live import AcousticCamera
from rigwatch.acquisition.engine import AcquisitionEngine, DeviceStream
from rigwatch.acquisition.recorder import (
    Disk,
    Retention,
    SegmentRecorder,
    recover,
    save_buffer_snapshot,
)
from rigwatch.config.station import StationConfig
from rigwatch.control.service import StationControl
from rigwatch.control.system_mode import ModeState, SystemMode
from rigwatch.counters import Counters
from rigwatch.devices.protocols import AcquisitionDevice
from rigwatch.devices.registry import DriverContext, build_device

log = logging.getLogger(__name__)


class Station:
    """Everything that runs next to one machine, minus the web server.

    Args:
        config: the validated station configuration.
        devices: driver instances to use instead of building them from ``config.devices``
            (tests and benchmarks); their names must match nothing in particular.
        counters: shared counters; a new set when omitted.
        simulate: build every hardware device's simulated twin instead of the device
            (``rigwatch station run --simulate``).
        disk: the recordings' file-system seam (free space, a hook before each write) used by
            retention and every recorder; default: the operating system's.

    Attributes:
        retention: the recordings directory's :class:`Retention`, shared by the recorders;
            run at start, after each closed segment and after each buffer snapshot.
        acoustics: the acoustic camera (``[acoustics]``), or ``None``.
        control: the control part (:class:`~rigwatch.control.service.StationControl`;
            without ``[control]``: no actuators, no scenarios). Simulated, its audit log is
            kept in the recordings directory (under the configured file name), apart from the
            real stand's.
        modes: the system mode, i.e. the scenario runner's state
            (:mod:`rigwatch.control.system_mode`).

    Raises:
        DeviceError: a device cannot be built (a replay file that does not load...).
        AcousticsError: the acoustic camera's array or band does not fit its device.
        ConfigError: a scenario does not fit the station.
    """

    def __init__(
        self,
        config: StationConfig,
        devices: list[AcquisitionDevice] | None = None,
        counters: Counters | None = None,
        *,
        simulate: bool = False,
        disk: Disk | None = None,
    ) -> None:
        self.config = config
        self.counters = counters or Counters()
        self.simulated = simulate
        if devices is None:
            ctx = DriverContext(counters=self.counters)
            devices = [build_device(d, ctx, simulate=simulate) for d in config.devices]
        self.engine = AcquisitionEngine(devices, config.buffer.capacity_rows, self.counters)
        self.retention = Retention(
            config.recorder.directory, config.recorder.retention, self.counters, disk=disk
        )
        self.recorders: dict[str, SegmentRecorder] = {}
        if config.recorder.enabled:
            for name, stream in self.engine.streams.items():
                self.recorders[name] = SegmentRecorder(
                    stream,
                    config.recorder,
                    self.counters,
                    station=config.name,
                    start_index=0,
                    retention=self.retention,
                )
        self.acoustics: AcousticCamera | None = None
        if config.acoustics is not None:
            self.acoustics = AcousticCamera(
                config.acoustics, self.engine.streams[config.acoustics.device], self.counters
            )
        control = config.control
        if control is not None and simulate:
            # a simulated run never writes into the real stand's audit log: it keeps its own
            # beside its recordings
            audit = config.recorder.directory / control.audit.name
            control = control.model_copy(update={"audit": audit})
        self.control = StationControl(control, self.engine, self.counters, simulate=simulate)
        self.modes: SystemMode = self.control.system_mode
        self.started_monotonic: float | None = None
        self.recovered: list[Path] = []

    @property
    def streams(self) -> dict[str, DeviceStream]:
        """Device streams by name."""
        return self.engine.streams

    @property
    def recordings_dir(self) -> Path:
        """Folder of recorded segments and buffer snapshots."""
        return self.config.recorder.directory

    def start(self) -> None:
        """Recover crashed segments, apply retention, start recorders, then acquisition.

        Raises:
            DeviceError: a device could not start.
        """
        self.recordings_dir.mkdir(parents=True, exist_ok=True)
        self.recovered = recover(
            self.recordings_dir,
            self.counters,
            codec=self.config.recorder.codec,
            compression_level=self.config.recorder.compression_level,
            disk=self.retention.disk,
        )
        if self.recovered:
            log.info("recovered %d segment(s) left open by a crash", len(self.recovered))
        self.retention.enforce()
        for rec in self.recorders.values():
            rec.start()
        if self.acoustics is not None:
            self.acoustics.start()  # reads from the first block on
        self.engine.start()
        self.control.start()
        self.started_monotonic = time.monotonic()

    def stop(self) -> None:
        """Stop the control part (running the abort sequence first when the stand is hot),
        acquisition and the acoustic camera, then close every recorder's open segment.
        Idempotent."""
        self.control.stop()
        self.engine.stop()
        if self.acoustics is not None:
            self.acoustics.stop()
        for rec in self.recorders.values():
            rec.stop()

    @property
    def mode(self) -> str:
        """The current operating mode's name: the scenario runner's state (see
        :mod:`rigwatch.control.system_mode`)."""
        return self.modes.mode.value

    def set_mode(self, mode: str, who: str = "api", source: str = "api") -> ModeState:
        """Request a change of operating mode, mapped onto the scenario runner.

        Raises:
            ModeRefused: unknown mode or a change the runner's table does not allow.
        """
        return self.modes.request(mode, who, source=source)

    def save_buffers(self, device: str | None = None, last_n: int | None = None) -> list[Path]:
        """Write ring-buffer content to Parquet snapshots, one file per (non-empty) device,
        then apply retention (the new snapshots are kept by that pass).

        Raises:
            KeyError: unknown ``device``.
            DiskFull: free space is below ``recorder.retention.min_free_bytes`` (nothing is
                written), or the file system ran out of space while writing.
        """
        names = [device] if device is not None else list(self.streams)
        self.retention.require_room("buffer snapshot")
        files: list[Path] = []
        for name in names:
            stream = self.streams[name]
            if stream.buffer.rows_available == 0:
                continue
            files.append(
                save_buffer_snapshot(
                    stream,
                    self.recordings_dir,
                    codec=self.config.recorder.codec,
                    station=self.config.name,
                    last_n=last_n,
                    compression_level=self.config.recorder.compression_level,
                    fsync=self.config.recorder.fsync,
                    counters=self.counters,
                )
            )
        if files:
            self.retention.enforce(keep=files)
        return files
