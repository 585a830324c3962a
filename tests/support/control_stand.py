"""A test stand for the control part's tests: the STM32 firmware emulator on a pty, the stm32
driver reading it, a feeder thread standing in for acquisition (blocks -> latest values and
redlines), the valve bank sharing the driver's port, the Arduino emulator, the ``[control]``
section of configs/rocket_stand.toml and the shipped scenarios, an audit log in a temporary
folder."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

from rigwatch.config.base import ChannelConfig
from rigwatch.config.control import ArduinoMotorsConfig, StationControlConfig
from rigwatch.config.loader import load_config
from rigwatch.control.audit import AuditLog
from rigwatch.control.backends.build import build_backend
from rigwatch.control.commander import Commander
from rigwatch.control.interlocks import Interlocks
from rigwatch.control.redlines import RedlineMonitor
from rigwatch.control.runner import ScenarioRunner
from rigwatch.control.scenarios import load_scenarios
from rigwatch.control.values import LatestValues
from rigwatch.devices.emulators.arduino import ArduinoEmulator
from rigwatch.devices.emulators.stm32 import FIRMWARE_KEYS, Stm32Emulator
from rigwatch.devices.stm32.codec import SCENARIO_WORDS
from rigwatch.devices.stm32.device import Stm32Device, Stm32DeviceConfig

ROOT = Path(__file__).resolve().parents[2]
STATION_CONFIG = ROOT / "configs" / "rocket_stand.toml"
SCENARIOS = ROOT / "configs" / "scenarios"


def rocket_control_config() -> StationControlConfig:
    """The ``[control]`` section of configs/rocket_stand.toml (validated with the station)."""
    control = load_config(STATION_CONFIG).control
    assert control is not None, f"{STATION_CONFIG} has no [control] section"
    return control


@dataclass
class Stand:
    emulator: Stm32Emulator
    arduino: ArduinoEmulator
    device: Stm32Device
    values: LatestValues
    monitor: RedlineMonitor
    audit: AuditLog
    commander: Commander
    runner: ScenarioRunner
    rows_fed: list[int] = field(default_factory=lambda: [0])
    _stop: threading.Event = field(default_factory=threading.Event)
    _feeder: threading.Thread | None = None

    def close(self) -> None:
        self.runner.close()
        self._stop.set()
        if self._feeder is not None:
            self._feeder.join(5.0)
        for b in self.commander.backends:
            b.close()
        self.device.stop()
        self.emulator.stop()
        self.arduino.stop()
        self.audit.close()

    def _feed(self) -> None:
        names = [c.name for c in self.device.config.channels]
        while not self._stop.is_set():
            try:
                block = self.device.read_block(0.05)
            except Exception:
                if self._stop.is_set():
                    return
                continue
            if block is None:
                continue
            self.values.feed(names, block.data, block.timestamps_ns)
            self.monitor.feed(names, block.data, block.timestamps_ns)
            self.rows_fed[0] += block.rows


def make_stand(tmp_path: Path, rate_hz: float = 400.0) -> Stand:
    emulator = Stm32Emulator(rate_hz=rate_hz, streaming=False)
    path = emulator.start()
    arduino = ArduinoEmulator()
    arduino_path = arduino.start()
    dev_cfg = Stm32DeviceConfig(
        name="stm32",
        driver="stm32",
        port=path,
        sample_rate_hz=rate_hz,
        block_duration_s=0.01,
        channels=[ChannelConfig(name=k) for k in FIRMWARE_KEYS],
    )
    device = Stm32Device(dev_cfg)
    device.start()
    emulator.start_stream()  # after the port is open (opening flushes input)
    cfg = rocket_control_config()
    backends = []
    for b in cfg.actuators:
        if isinstance(b, ArduinoMotorsConfig):
            b = b.model_copy(update={"port": arduino_path})
        backend = build_backend(b, {"stm32": device})
        backend.connect()
        backends.append(backend)
    audit = AuditLog(tmp_path / "audit.sqlite")
    specs = {s.name: s for b in backends for s in b.specs}
    commander = Commander(backends, Interlocks(cfg.interlocks, specs), audit)
    scenarios = load_scenarios([SCENARIOS], specs, FIRMWARE_KEYS, SCENARIO_WORDS)
    values = LatestValues()
    monitor = RedlineMonitor()
    runner = ScenarioRunner(
        commander,
        scenarios,
        firmware=device,
        values=values,
        monitor=monitor,
        audit=audit,
        safing_scenario=cfg.safing_scenario,
    )
    stand = Stand(emulator, arduino, device, values, monitor, audit, commander, runner)
    stand._feeder = threading.Thread(target=stand._feed, name="test-feeder", daemon=True)
    stand._feeder.start()
    return stand
