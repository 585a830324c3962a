"""The rocket-engine test stand's STM32 board: the line codec (pure) and the serial device."""

from rigwatch.devices.stm32.codec import (
    MAX_LINE_BYTES,
    LineAssembler,
    MalformedField,
    ParsedLine,
    Reply,
    SensorLineParser,
    parse_sensor_line,
)
from rigwatch.devices.stm32.device import (
    SimulatedStm32Device,
    Stm32Device,
    Stm32DeviceConfig,
)
from rigwatch.devices.stm32.link import CommandLink, reply_answers

__all__ = [
    "MAX_LINE_BYTES",
    "CommandLink",
    "LineAssembler",
    "MalformedField",
    "ParsedLine",
    "Reply",
    "SensorLineParser",
    "SimulatedStm32Device",
    "Stm32Device",
    "Stm32DeviceConfig",
    "parse_sensor_line",
    "reply_answers",
]
