"""Actuator specs from their configuration entries."""

from __future__ import annotations

from rigwatch.config.control import BinaryActuatorConfig, MotorConfig, S7PointConfig
from rigwatch.control.actuators import ActuatorSpec


def binary_spec(cfg: BinaryActuatorConfig) -> ActuatorSpec:
    """A valve or switch; its safe position defaults to the de-energised one."""
    safe = (cfg.safe or cfg.normally) if cfg.kind == "valve" else (cfg.safe or "off")
    return ActuatorSpec(cfg.name, cfg.kind, safe, normally=cfg.normally, hot=cfg.hot)


def motor_spec(cfg: MotorConfig) -> ActuatorSpec:
    """A step motor: a position in degrees within its limits."""
    return ActuatorSpec(
        cfg.name,
        "position",
        cfg.safe_deg,
        hot=cfg.hot,
        minimum=cfg.min_deg,
        maximum=cfg.max_deg,
        unit="deg",
    )


def s7_spec(cfg: S7PointConfig, lo: int, hi: int) -> ActuatorSpec:
    """A PLC bit (valve or switch) or word (an integer within ``[lo, hi]`` of its size,
    narrowed by the entry's ``min``/``max``)."""
    if cfg.kind == "word":
        minimum = lo if cfg.min is None else max(lo, cfg.min)
        maximum = hi if cfg.max is None else min(hi, cfg.max)
        safe = cfg.safe if isinstance(cfg.safe, int) else None
        return ActuatorSpec(cfg.name, "word", safe, hot=cfg.hot, minimum=minimum, maximum=maximum)
    if cfg.kind == "valve":
        safe_v = cfg.safe if isinstance(cfg.safe, str) else cfg.normally
    else:
        safe_v = cfg.safe if isinstance(cfg.safe, str) else "off"
    return ActuatorSpec(cfg.name, cfg.kind, safe_v, normally=cfg.normally, hot=cfg.hot)
