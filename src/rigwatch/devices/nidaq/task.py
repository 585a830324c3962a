"""The NI-DAQmx analog input as our own small interface, and its implementation over NI's
``nidaqmx`` package (imported only when such a task is created, so everything else imports and
runs without NI's software)."""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import numpy as np

from rigwatch.errors import DeviceError

log = logging.getLogger(__name__)

INSTALL_HINT = (
    "NI-DAQmx support needs the nidaqmx package and NI's driver: pip install 'rigwatch[nidaq]'"
)

_DAQMX_TIMEOUT = -200284
"""NI-DAQmx error code: samples not yet available when the read timeout elapsed."""


@runtime_checkable
class AnalogInputTask(Protocol):
    """A continuously sampling multi-channel analog input, in volts.

    Lifecycle: ``configure`` once, then ``start``, ``read`` repeatedly, ``stop``; ``start``
    again restarts sampling from an empty buffer; ``close`` releases the hardware.
    """

    @property
    def channel_count(self) -> int:
        """Channels of the configured task (0 before :meth:`configure`)."""
        ...

    def configure(
        self,
        physical_channels: str,
        sample_rate_hz: float,
        samples_per_block: int,
        terminal_config: str,
        min_val_v: float,
        max_val_v: float,
    ) -> None:
        """Create the channels and the sample clock.

        Args:
            physical_channels: NI-DAQmx channel string (``"Dev1/ai1:9"``, ``"Dev2/ai1"``).
            sample_rate_hz: samples per second per channel.
            samples_per_block: samples per channel of a typical :meth:`read` (sizes buffers).
            terminal_config: ``"RSE"``, ``"NRSE"``, ``"DIFF"``, ``"PSEUDO_DIFF"`` or
                ``"DEFAULT"``.
            min_val_v: lowest expected voltage (selects the input range).
            max_val_v: highest expected voltage.

        Raises:
            DeviceError: the hardware or driver refused the configuration.
        """
        ...

    def start(self) -> None:
        """Start sampling. Raises DeviceError."""
        ...

    def read(self, samples: int, timeout_s: float) -> np.ndarray:
        """Read the next ``samples`` samples of every channel, waiting up to ``timeout_s``.

        Returns:
            ``(channels, n)`` float64 volts, channel-major (the layout of nidaqmx's
            ``AnalogMultiChannelReader.read_many_sample``). ``n == samples`` normally; when the
            timeout elapses first, ``n < samples`` holds the samples that did arrive (possibly
            none), which are consumed and must not be lost.

        Raises:
            DeviceError: the acquisition failed (buffer overflow, device removed...).
        """
        ...

    def stop(self) -> None:
        """Stop sampling (the task can be started again)."""
        ...

    def close(self) -> None:
        """Release the task and the hardware; safe to call twice."""
        ...


def count_physical_channels(physical_channels: str) -> int:
    """Number of channels in an NI-DAQmx channel string.

    ``"Dev1/ai1:9"`` -> 9, ``"Dev2/ai1"`` -> 1, ``"Dev1/ai0, Dev1/ai4:5"`` -> 3 (ranges may
    descend: ``ai9:1`` -> 9).

    Raises:
        DeviceError: the string is empty.
    """
    parts = [p.strip() for p in physical_channels.split(",") if p.strip()]
    if not parts:
        raise DeviceError(f"no physical channel in {physical_channels!r}")
    total = 0
    for part in parts:
        m = re.fullmatch(r".*?(\d+):(\d+)", part)
        total += abs(int(m.group(2)) - int(m.group(1))) + 1 if m else 1
    return total


class NidaqmxTask:
    """:class:`AnalogInputTask` over NI's ``nidaqmx`` package (continuous sampling).

    Uses ``Task.ai_channels.add_ai_voltage_chan``, ``Task.timing.cfg_samp_clk_timing`` with
    ``AcquisitionType.CONTINUOUS`` and ``stream_readers.AnalogMultiChannelReader``.

    Raises:
        DeviceError: ``nidaqmx`` is not installed (message gives the install command).
    """

    def __init__(self) -> None:
        try:
            import nidaqmx
            import nidaqmx.constants
            import nidaqmx.errors
            import nidaqmx.stream_readers
        except ImportError as exc:
            raise DeviceError(f"{INSTALL_HINT} ({exc})") from exc
        self._nidaqmx: Any = nidaqmx
        self._task: Any = None
        self._reader: Any = None
        self._channels = 0
        self._name = ""

    @property
    def channel_count(self) -> int:
        """Channels of the configured task (0 before :meth:`configure`)."""
        return self._channels

    def configure(
        self,
        physical_channels: str,
        sample_rate_hz: float,
        samples_per_block: int,
        terminal_config: str,
        min_val_v: float,
        max_val_v: float,
    ) -> None:
        """Create the task; the on-board buffer holds at least 10 blocks or 2 s of samples.

        Raises:
            DeviceError: unknown terminal configuration or NI-DAQmx refused the settings.
        """
        nidaqmx = self._nidaqmx
        constants = nidaqmx.constants
        term = _terminal_configuration(constants.TerminalConfiguration, terminal_config)
        buffer = max(10 * samples_per_block, math.ceil(2 * sample_rate_hz), 2)
        self._name = physical_channels
        task = None
        try:
            task = nidaqmx.Task()
            task.ai_channels.add_ai_voltage_chan(
                physical_channels, terminal_config=term, min_val=min_val_v, max_val=max_val_v
            )
            task.timing.cfg_samp_clk_timing(
                sample_rate_hz,
                sample_mode=constants.AcquisitionType.CONTINUOUS,
                samps_per_chan=buffer,
            )
            self._channels = int(task.number_of_channels)
            self._reader = nidaqmx.stream_readers.AnalogMultiChannelReader(task.in_stream)
        except nidaqmx.errors.DaqError as exc:
            if task is not None:
                task.close()
            raise DeviceError(
                f"NI-DAQmx refused {physical_channels!r} ({terminal_config}, "
                f"{sample_rate_hz:g} Hz, {min_val_v:g}..{max_val_v:g} V): {exc}"
            ) from exc
        self._task = task

    def start(self) -> None:
        """Start sampling. Raises DeviceError."""
        self._call("start", self._required().start)

    def read(self, samples: int, timeout_s: float) -> np.ndarray:
        """``(channels, n)`` float64 volts, ``n < samples`` only when ``timeout_s`` elapsed.

        Raises:
            DeviceError: any NI-DAQmx error other than the read timeout (-200284).
        """
        self._required()
        errors = self._nidaqmx.errors
        buf = np.empty((self._channels, samples), dtype=np.float64)
        try:
            n = self._reader.read_many_sample(
                buf, number_of_samples_per_channel=samples, timeout=timeout_s
            )
        except errors.DaqReadError as exc:
            if exc.error_code != _DAQMX_TIMEOUT:
                raise DeviceError(f"NI-DAQmx read of {self._name!r} failed: {exc}") from exc
            n = int(exc.samps_per_chan_read or 0)
        except errors.DaqError as exc:
            raise DeviceError(f"NI-DAQmx read of {self._name!r} failed: {exc}") from exc
        return buf if n == samples else buf[:, :n]

    def stop(self) -> None:
        """Stop sampling. Raises DeviceError."""
        if self._task is not None:
            self._call("stop", self._task.stop)

    def close(self) -> None:
        """Release the task; safe to call twice."""
        task, self._task = self._task, None
        self._reader = None
        if task is not None:
            try:
                task.close()
            except self._nidaqmx.errors.DaqError:
                log.warning("closing NI-DAQmx task %r failed", self._name, exc_info=True)

    def _required(self) -> Any:
        if self._task is None:
            raise DeviceError("NI-DAQmx task is not configured (or already closed)")
        return self._task

    def _call(self, what: str, fn: Callable[[], Any]) -> None:
        try:
            fn()
        except self._nidaqmx.errors.DaqError as exc:
            raise DeviceError(f"NI-DAQmx {what} of {self._name!r} failed: {exc}") from exc


def _terminal_configuration(enum: Any, name: str) -> Any:
    """Member ``name`` of nidaqmx's ``TerminalConfiguration`` (older releases spelt DIFF and
    PSEUDO_DIFF as DIFFERENTIAL and PSEUDODIFFERENTIAL)."""
    aliases = {
        "DIFF": ("DIFF", "DIFFERENTIAL"),
        "PSEUDO_DIFF": ("PSEUDO_DIFF", "PSEUDODIFFERENTIAL"),
    }
    for candidate in aliases.get(name, (name,)):
        member = getattr(enum, candidate, None)
        if member is not None:
            return member
    raise DeviceError(f"unknown NI-DAQmx terminal configuration {name!r}")
