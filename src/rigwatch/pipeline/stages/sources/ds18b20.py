"""DS18B20 one-wire temperature sensors through the Linux ``w1_therm`` driver.

Each sensor appears as ``/sys/bus/w1/devices/28-<serial>/w1_slave``; reading it makes the
kernel convert and returns two lines::

    72 01 4b 46 7f ff 0e 10 57 : crc=57 YES
    72 01 4b 46 7f ff 0e 10 57 t=23125

The first line ends in ``YES`` when the scratchpad's CRC matched; the second holds the
temperature in milli-degrees Celsius. A read is retried (today: up to 5 times) when the CRC
failed, the file is missing a line, or the value is the sensor's power-on reset value
(+85 degC, Maxim DS18B20 datasheet, "Operation - Measuring Temperature": the register holds
85 degC until the first conversion) or outside the rated -55..+125 degC.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from rigwatch.errors import SensorError

log = logging.getLogger(__name__)

FAMILY_PREFIX = "28-"
"""Device-folder prefix of the DS18B20 family (family code 0x28)."""
RATED_RANGE_C = (-55.0, 125.0)
"""Rated measuring range (datasheet)."""
POWER_ON_RESET_MILLI_C = 85_000
"""The temperature register's value before the first conversion (datasheet)."""
_T_RE = re.compile(r"t=(-?\d+)\s*$")


def parse_w1_slave(text: str, source: str = "w1_slave") -> float:
    """The temperature (degC) of a ``w1_slave`` text.

    Raises:
        SensorError: CRC not ``YES``, missing lines or value, power-on reset value, or a value
            outside the rated range; the message names ``source``.
    """
    lines = [ln.strip() for ln in text.strip().splitlines()]
    if len(lines) < 2:
        raise SensorError(f"{source}: expected two lines, got {len(lines)}")
    if not lines[0].endswith("YES"):
        raise SensorError(f"{source}: CRC check failed ({lines[0]!r})")
    m = _T_RE.search(lines[1])
    if m is None:
        raise SensorError(f"{source}: no t=<milli-degC> value in {lines[1]!r}")
    milli = int(m.group(1))
    if milli == POWER_ON_RESET_MILLI_C:
        raise SensorError(f"{source}: power-on reset value 85 degC (no conversion yet)")
    value = milli / 1000.0
    if not RATED_RANGE_C[0] <= value <= RATED_RANGE_C[1]:
        raise SensorError(f"{source}: {value} degC outside the rated range {RATED_RANGE_C}")
    return value


@dataclass(frozen=True)
class TemperatureReading:
    """One reading of every sensor.

    Attributes:
        timestamp_ns: when it was read, ns since the Unix epoch (UTC).
        data: ``{sensor name: degC or None}`` (``None``: failed after its retries).
        errors: ``{sensor name: reason}`` of the failed sensors.
    """

    timestamp_ns: int
    data: dict[str, float | None]
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def error_flag(self) -> bool:
        """True when a sensor failed."""
        return bool(self.errors)


class Ds18b20Bus:
    """The DS18B20 sensors of a one-wire devices folder.

    Args:
        devices_dir: ``/sys/bus/w1/devices`` (a fake tree in tests).
        sensors: ``{name: device id}``; empty: every ``28-*`` device, named by its id.
        retries: reads per sensor before it counts as failed.
        retry_delay_s: pause between two reads of one sensor.
        sleep: the pause function (tests pass one that does not wait).
    """

    def __init__(
        self,
        devices_dir: Path,
        sensors: Mapping[str, str] | None = None,
        retries: int = 5,
        retry_delay_s: float = 0.2,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if retries < 1:
            raise ValueError(f"retries must be >= 1, got {retries}")
        self.devices_dir = Path(devices_dir)
        self.sensors = dict(sensors or {})
        self.retries = retries
        self.retry_delay_s = retry_delay_s
        self.sleep = sleep

    def discover(self) -> dict[str, str]:
        """``{name: device id}`` of the configured sensors, else of every ``28-*`` device."""
        if self.sensors:
            return dict(self.sensors)
        try:
            found = sorted(p.name for p in self.devices_dir.glob(f"{FAMILY_PREFIX}*"))
        except OSError:
            found = []
        return {dev: dev for dev in found}

    def read_sensor(self, device_id: str) -> float:
        """One sensor's temperature (degC), retried.

        Raises:
            SensorError: still unreadable after ``retries`` reads (the last reason).
        """
        path = self.devices_dir / device_id / "w1_slave"
        last = "not read"
        for attempt in range(1, self.retries + 1):
            try:
                return parse_w1_slave(path.read_text(), str(path))
            except OSError as exc:
                last = f"{path}: {exc.strerror or exc}"
            except SensorError as exc:
                last = str(exc)
            log.debug("DS18B20 %s attempt %d: %s", device_id, attempt, last)
            if attempt < self.retries:
                self.sleep(self.retry_delay_s)
        raise SensorError(f"DS18B20 {device_id} failed after {self.retries} reads: {last}")

    def read(self) -> TemperatureReading:
        """Read every sensor; a failed sensor is ``None`` with its reason in ``errors``."""
        data: dict[str, float | None] = {}
        errors: dict[str, str] = {}
        for name, device in self.discover().items():
            try:
                data[name] = self.read_sensor(device)
            except SensorError as exc:
                data[name] = None
                errors[name] = str(exc)
                log.warning("%s", exc)
        return TemperatureReading(time.time_ns(), data, errors)
