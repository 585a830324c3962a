"""Acquisition engine: one reader thread per device, feeding a ring buffer and its listeners.

Data flows one way: device -> (calibration) -> ring buffer -> readers. Readers (the recorder,
the live hub, REST handlers) never receive data pushed at them: they are *notified* that the
buffer advanced and read from their own position. A slow reader therefore cannot slow or block
acquisition; if it falls behind by more than the buffer's capacity, the buffer tells it exactly
how many rows it missed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from rigwatch.acquisition.ringbuffer import RingBuffer
from rigwatch.counters import Counters
from rigwatch.devices.protocols import AcquisitionDevice, Block, EndOfStream, StreamInfo
from rigwatch.errors import DeviceError

log = logging.getLogger(__name__)

Listener = Callable[[int], None]
"""Called from the acquisition thread with the buffer's new write index; must not block."""


@dataclass
class StreamStats:
    """Counts of one device's stream since start."""

    blocks: int = 0
    rows: int = 0
    device_errors: int = 0
    last_ingest_ns: int = 0
    last_error: str = ""


class DeviceStream:
    """One device inside the engine: what it delivers, its ring buffer and its listeners.

    Attributes:
        info: the device's :class:`StreamInfo`; values in ``buffer`` are calibrated with it.
        buffer: the device's :class:`RingBuffer` of calibrated float32 rows.
        stats: :class:`StreamStats`.
        state: ``"idle"``, ``"starting"``, ``"retrying"`` (the device failed to start and is
            tried again), ``"running"``, ``"finished"`` (a finite source ended), ``"failed"``
            or ``"stopped"``.
    """

    def __init__(self, device: AcquisitionDevice, capacity_rows: int, counters: Counters) -> None:
        self.device = device
        self.info: StreamInfo = device.describe()
        self.buffer = RingBuffer(capacity_rows, len(self.info.channels))
        self.stats = StreamStats()
        self.state = "idle"
        self._counters = counters
        self._listeners: list[Listener] = []
        self._listeners_lock = threading.Lock()
        self._finished = threading.Event()
        self._gain = np.array([c.gain for c in self.info.channels], dtype=np.float32)
        self._offset = np.array([c.offset for c in self.info.channels], dtype=np.float32)
        self._identity = all(c.is_identity for c in self.info.channels)

    @property
    def name(self) -> str:
        """The device's name."""
        return self.info.device

    def add_listener(self, listener: Listener) -> None:
        """Be called (from the acquisition thread) after each block reaches the buffer."""
        with self._listeners_lock:
            self._listeners = [*self._listeners, listener]

    def remove_listener(self, listener: Listener) -> None:
        """Stop calling ``listener``; unknown listeners are ignored."""
        with self._listeners_lock:
            self._listeners = [x for x in self._listeners if x is not listener]

    def wait_finished(self, timeout_s: float | None = None) -> bool:
        """Block until the stream ended (finite source done, failure or stop)."""
        return self._finished.wait(timeout_s)

    def calibrate(self, raw: np.ndarray) -> np.ndarray:
        """Apply each channel's ``gain * raw + offset``; identity calibration returns ``raw``.

        Args:
            raw: ``(rows, channels)`` float32.

        Returns:
            ``(rows, channels)`` float32, a new array unless calibration is the identity.
        """
        if self._identity:
            return raw
        out = raw * self._gain
        out += self._offset
        return out

    def ingest(self, block: Block) -> None:
        """Calibrate ``block``, append it to the buffer and notify listeners."""
        if block.data.shape[1] != self.buffer.channels:
            self._counters.inc(
                f"device.{self.name}.wrong_channel_count",
                message=f"block has {block.data.shape[1]} channels, "
                f"device describes {self.buffer.channels}",
            )
            return
        if block.rows == 0:
            return
        end = self.buffer.write(self.calibrate(block.data), block.timestamps_ns)
        self.stats.blocks += 1
        self.stats.rows += block.rows
        self.stats.last_ingest_ns = time.time_ns()
        for listener in self._listeners:
            try:
                listener(end)
            except Exception:  # a broken reader must not stop acquisition
                log.exception("listener of %s failed", self.name)
                self._counters.inc("engine.listener_error")

    def _finish(self, state: str) -> None:
        self.state = state
        self._finished.set()
        for listener in self._listeners:
            try:
                listener(self.buffer.write_index)
            except Exception:
                log.exception("listener of %s failed", self.name)


class AcquisitionEngine:
    """Runs one acquisition thread per device.

    Args:
        devices: the devices, each an :class:`AcquisitionDevice`; names must be unique.
        capacity_rows: ring-buffer rows per device.
        counters: where errors are counted.
        read_timeout_s: how long one ``read_block`` call may wait.
        max_consecutive_errors: a device failing this many reads in a row is stopped
            (state ``"failed"``); each failure is counted and logged.
        start_retry_s: first wait before retrying a device that failed to start (a serial port
            not plugged in yet); doubles up to ``max_start_retry_s``. Other devices run
            meanwhile.
    """

    def __init__(
        self,
        devices: list[AcquisitionDevice],
        capacity_rows: int,
        counters: Counters,
        read_timeout_s: float = 0.5,
        max_consecutive_errors: int = 50,
        start_retry_s: float = 0.5,
        max_start_retry_s: float = 10.0,
    ) -> None:
        self.counters = counters
        self.streams: dict[str, DeviceStream] = {}
        for dev in devices:
            stream = DeviceStream(dev, capacity_rows, counters)
            if stream.name in self.streams:
                raise DeviceError(f"two devices are named {stream.name!r}")
            self.streams[stream.name] = stream
        self._read_timeout_s = read_timeout_s
        self._max_errors = max_consecutive_errors
        self._start_retry_s = start_retry_s
        self._max_start_retry_s = max_start_retry_s
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        """Start one acquisition thread per device; each thread starts its device.

        A device that fails to start does not stop the others: its failure is counted
        (``device.<name>.start_error``), shown in its stream's ``stats.last_error`` and state
        ``"retrying"``, and the start is tried again with a growing wait.
        """
        self._stop.clear()
        for stream in self.streams.values():
            stream.state = "starting"
            t = threading.Thread(
                target=self._run, args=(stream,), name=f"acq-{stream.name}", daemon=True
            )
            self._threads.append(t)
            t.start()

    def _start_device(self, stream: DeviceStream) -> bool:
        wait = self._start_retry_s
        while not self._stop.is_set():
            try:
                stream.device.start()
                return True
            except Exception as exc:
                stream.state = "retrying"
                stream.stats.device_errors += 1
                stream.stats.last_error = str(exc)
                self.counters.inc(f"device.{stream.name}.start_error", message=str(exc))
                log.warning("%s: cannot start (retrying in %.1f s): %s", stream.name, wait, exc)
                self._stop.wait(wait)
                wait = min(wait * 2, self._max_start_retry_s)
        return False

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop acquisition threads and devices; idempotent."""
        self._stop.set()
        for t in self._threads:
            t.join(timeout_s)
        self._threads.clear()
        for stream in self.streams.values():
            try:
                stream.device.stop()
            except Exception:
                log.exception("stopping %s failed", stream.name)
            if stream.state in ("running", "starting", "retrying"):
                stream._finish("stopped")

    def _run(self, stream: DeviceStream) -> None:
        if not self._start_device(stream):
            stream._finish("stopped")
            return
        stream.state = "running"
        errors_in_row = 0
        while not self._stop.is_set():
            try:
                block = stream.device.read_block(self._read_timeout_s)
            except EndOfStream:
                log.info("%s: end of stream after %d rows", stream.name, stream.stats.rows)
                stream._finish("finished")
                return
            except Exception as exc:
                errors_in_row += 1
                stream.stats.device_errors += 1
                stream.stats.last_error = str(exc)
                self.counters.inc(f"device.{stream.name}.read_error", message=str(exc))
                log.warning("%s: read failed (%d in a row): %s", stream.name, errors_in_row, exc)
                if errors_in_row >= self._max_errors:
                    log.error("%s: stopped after %d failed reads", stream.name, errors_in_row)
                    stream._finish("failed")
                    return
                self._stop.wait(min(0.05 * errors_in_row, 1.0))
                continue
            errors_in_row = 0
            if block is not None:
                stream.ingest(block)
        if stream.state == "running":
            stream._finish("stopped")
