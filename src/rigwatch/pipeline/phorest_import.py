"""Convert today's ``Phorest_config.toml`` into a rigwatch pipeline config.

Today's sections and where they go (``SEED_SYSTEMS.md`` section 3):

=====================  ==================================================================
``[Data_Analysis]``    ``method``, ``number_of_subROIs`` -> the ``grating`` plugin of images
``[Paths]``            data/results folders, the ROI manifest, the share, an import folder
``[Services]``         ``enable_*`` -> camera, temperature, compressor, syncer on or off
``[Timing]``           ``collector_interval_seconds`` -> ``collector.interval_s``; the other
                       ``*_interval_seconds`` -> each stage's ``poll_s``
``[Retries]``          attempts and delay -> ``manifest.max_attempts``, ``backoff_base_s``
``[Buffer]``           ``image_buffer_size`` -> ``retention.max_count``
``[Communication]``    ``method`` ``CSV_PLOT`` / ``OPC_UA`` -> reporter handlers
``[Camera]``           ``camera_type`` (``dummy`` -> synthetic, ``file_importer`` -> folder,
                       anything else -> a USB camera), index, exposure, gain, brightness,
                       contrast, transform
``[Temperature]``      sensor ids -> DS18B20 sensors
``[Development]``      ``debug_mode`` -> a note (use ``--log-level debug``)
=====================  ==================================================================

Keys this converter does not know are not dropped silently: each is listed in the notes
returned with the result. Section names are matched case-insensitively, and keys by the words
they contain, since today's file has grown by hand on each rig.
"""

from __future__ import annotations

import logging
import math
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from rigwatch.errors import ConfigError
from rigwatch.pipeline.config import PipelineConfig

log = logging.getLogger(__name__)

TIMING_TO_STAGE = {
    "processor": ("processor", "poll_s"),
    "communicator": ("reporter", "poll_s"),
    "reporter": ("reporter", "poll_s"),
    "compressor": ("compressor", "poll_s"),
    "syncer": ("sync", "poll_s"),
    "sync": ("sync", "poll_s"),
}
TRANSFORMS = {
    "none": "none",
    "rotate_90": "rotate_90",
    "rotate90": "rotate_90",
    "rotate_180": "rotate_180",
    "rotate180": "rotate_180",
    "rotate_270": "rotate_270",
    "rotate270": "rotate_270",
    "flip_horizontal": "flip_h",
    "flip_h": "flip_h",
    "hflip": "flip_h",
    "flip_vertical": "flip_v",
    "flip_v": "flip_v",
    "vflip": "flip_v",
}
METHODS = {"max_intensity", "centre", "gaussian", "fano"}


def _sections(data: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name, value in data.items():
        if isinstance(value, dict):
            out[name.lower().replace(" ", "_")] = value
    return out


class _Converter:
    def __init__(self, data: Mapping[str, Any]) -> None:
        self.src = _sections(data)
        self.notes: list[str] = [
            f"top-level key {k!r} ignored" for k, v in data.items() if not isinstance(v, dict)
        ]
        self.out: dict[str, Any] = {}
        self.roi_manifest: str | None = None
        self.import_dir: str | None = None
        self.analysis: dict[str, Any] | None = None

    def put(self, dotted: str, value: Any) -> None:
        node = self.out
        *parents, last = dotted.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value

    def get(self, dotted: str) -> Any:
        node: Any = self.out
        for p in dotted.split("."):
            if not isinstance(node, dict) or p not in node:
                return None
            node = node[p]
        return node

    def unknown(self, section: str, key: str, value: Any) -> None:
        self.notes.append(f"[{section}] {key} = {value!r} has no rigwatch equivalent; ignored")

    # -- sections ------------------------------------------------------------------------------

    def paths(self, sec: dict[str, Any]) -> None:
        for key, value in sec.items():
            k = key.lower()
            if not isinstance(value, str):
                self.unknown("Paths", key, value)
            elif "roi" in k:
                self.roi_manifest = value
            elif any(w in k for w in ("sync", "remote", "network", "share", "nas")):
                self.put("sync.share", value)
            elif any(w in k for w in ("import", "source", "legacy")):
                self.import_dir = value
            elif "result" in k:
                self.put("paths.results_log", str(Path(value) / "processing_results.jsonl"))
                self.put("paths.reports_dir", value)
            elif "backup" in k:
                self.notes.append(
                    f"[Paths] {key}: backups are online manifest backups now "
                    "(rigwatch.pipeline.manifest.backup); ignored"
                )
            elif "data" in k or "image" in k:
                self.put("paths.data_dir", value)
            elif "log" in k:
                self.put("paths.state_dir", value)
            else:
                self.unknown("Paths", key, value)

    def services(self, sec: dict[str, Any]) -> None:
        for key, value in sec.items():
            k = key.lower()
            if not isinstance(value, bool):
                self.unknown("Services", key, value)
            elif "camera" in k:
                self.put("collector.camera.enabled", value)
            elif "temp" in k:
                self.put("collector.temperature.enabled", value)
            elif "compress" in k:
                self.put("compressor.enabled", value)
            elif "sync" in k:
                self.put("sync.enabled", value)
            elif "backup" in k:
                self.notes.append(f"[Services] {key}: file_backup is replaced; ignored")
            else:
                self.unknown("Services", key, value)

    def timing(self, sec: dict[str, Any]) -> None:
        for key, value in sec.items():
            k = key.lower()
            if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
                self.unknown("Timing", key, value)
                continue
            if k.startswith("collector"):
                self.put("collector.interval_s", float(value))
                continue
            for word, (section, field) in TIMING_TO_STAGE.items():
                if k.startswith(word):
                    self.put(f"{section}.{field}", float(value))
                    break
            else:
                self.unknown("Timing", key, value)

    def retries(self, sec: dict[str, Any]) -> None:
        for key, value in sec.items():
            k = key.lower()
            if not isinstance(value, int | float) or isinstance(value, bool):
                self.unknown("Retries", key, value)
            elif "delay" in k or "wait" in k or "backoff" in k:
                self.put("manifest.backoff_base_s", float(value))
            elif "max" in k or "retr" in k or "attempt" in k:
                self.put("manifest.max_attempts", max(1, int(value)))
            else:
                self.unknown("Retries", key, value)

    def buffer(self, sec: dict[str, Any]) -> None:
        for key, value in sec.items():
            if "size" in key.lower() and isinstance(value, int) and not isinstance(value, bool):
                self.put("retention.max_count", value)
            else:
                self.unknown("Buffer", key, value)

    def communication(self, sec: dict[str, Any]) -> None:
        handlers: list[dict[str, Any]] = []
        opc: dict[str, Any] = {}
        for key, value in sec.items():
            k = key.lower()
            if k == "method":
                methods = [value] if isinstance(value, str) else list(value)
                for m in methods:
                    m_norm = str(m).upper().replace("-", "_")
                    if m_norm == "CSV_PLOT":
                        handlers.append({"type": "csv_plot"})
                    elif m_norm == "OPC_UA":
                        opc["type"] = "opcua"
                    else:
                        self.unknown("Communication", key, m)
            elif "url" in k or "endpoint" in k or "server" in k:
                opc["endpoint"] = value
            elif "node" in k and isinstance(value, dict):
                opc["nodes"] = {str(a): str(b) for a, b in value.items()}
            else:
                self.unknown("Communication", key, value)
        if opc.get("type") == "opcua":
            if "endpoint" not in opc:
                opc["endpoint"] = "opc.tcp://127.0.0.1:4840"
                self.notes.append(
                    "[Communication] OPC_UA without a server address: set "
                    "reporter.handlers.endpoint (opc.tcp://127.0.0.1:4840 written)"
                )
            if "nodes" not in opc:
                opc["nodes"] = {"brightness": "ns=2;s=Phorest.Brightness"}
                self.notes.append(
                    "[Communication] OPC_UA without nodes: map result values to your nodes in "
                    "reporter.handlers.nodes (an example node written)"
                )
            handlers.append(opc)
        if handlers:
            self.put("reporter.handlers", handlers)

    def camera(self, sec: dict[str, Any]) -> None:
        usb: dict[str, Any] = {}
        for key, value in sec.items():
            k = key.lower()
            if k in ("camera_type", "type"):
                t = str(value).lower()
                if t in ("dummy", "synthetic", "fake"):
                    self.put("collector.camera.type", "synthetic")
                elif "import" in t or "file" in t:
                    self.put("collector.camera.type", "folder")
                else:
                    self.put("collector.camera.type", "usb")
                    self.notes.append(
                        f"[Camera] camera_type {value!r} is used as an OpenCV USB camera "
                        "(needs the rigwatch[camera] extra)"
                    )
            elif k in ("camera_index", "index", "device_index"):
                self.put("collector.camera.index", int(value))
                usb["device"] = int(value)
            elif k in ("exposure", "gain", "brightness", "contrast") or k.startswith(
                ("camera_exposure", "camera_gain", "camera_brightness", "camera_contrast")
            ):
                field = k.removeprefix("camera_")
                if isinstance(value, int | float) and not isinstance(value, bool):
                    usb[field] = float(value)
                else:
                    self.unknown("Camera", key, value)
            elif "transform" in k:
                transform = TRANSFORMS.get(str(value).lower())
                if transform is None:
                    self.unknown("Camera", key, value)
                else:
                    usb["transform"] = transform
            elif any(w in k for w in ("import", "source", "folder", "dir")):
                self.import_dir = str(value)
            else:
                self.unknown("Camera", key, value)
        if usb:
            self.put("collector.camera.usb", usb)

    def temperature(self, sec: dict[str, Any]) -> None:
        sensors: dict[str, str] = {}
        for key, value in sec.items():
            k = key.lower()
            if isinstance(value, list) and all(isinstance(v, str) for v in value):
                for i, dev in enumerate(value, 1):
                    sensors[f"sensor{i}"] = dev
            elif isinstance(value, dict):
                sensors.update({str(a): str(b) for a, b in value.items()})
            elif isinstance(value, str) and re.match(r"^[0-9a-f]{2}-[0-9a-f]{12}$", value):
                sensors[key] = value
            elif "retr" in k and isinstance(value, int):
                self.put("collector.temperature.retries", max(1, value))
            elif ("dir" in k or "path" in k) and isinstance(value, str):
                self.put("collector.temperature.devices_dir", value)
            elif "enable" in k and isinstance(value, bool):
                self.put("collector.temperature.enabled", value)
            else:
                self.unknown("Temperature", key, value)
        if sensors:
            self.put("collector.temperature.sensors", sensors)

    def data_analysis(self, sec: dict[str, Any]) -> None:
        options: dict[str, Any] = {}
        for key, value in sec.items():
            k = key.lower()
            if k == "method":
                if str(value) not in METHODS:
                    raise ConfigError(
                        f"[Data_Analysis] method {value!r} is not one of {sorted(METHODS)}"
                    )
                options["method"] = str(value)
            elif k.replace("_", "") == "numberofsubrois":
                if isinstance(value, int) and value > 0:
                    options["number_of_subROIs"] = value
                elif value not in (0, None, False):
                    self.unknown("Data_Analysis", key, value)
            else:
                self.unknown("Data_Analysis", key, value)
        self.analysis = options

    def convert(self) -> dict[str, Any]:
        handlers = {
            "paths": self.paths,
            "services": self.services,
            "timing": self.timing,
            "retries": self.retries,
            "buffer": self.buffer,
            "communication": self.communication,
            "camera": self.camera,
            "temperature": self.temperature,
            "temperature_sensors": self.temperature,
            "data_analysis": self.data_analysis,
        }
        for name, sec in self.src.items():
            if name == "development":
                if sec.get("debug_mode"):
                    self.notes.append("[Development] debug_mode: run stages with --log-level debug")
                continue
            fn = handlers.get(name)
            if fn is None:
                self.notes.append(f"section [{name}] has no rigwatch equivalent; ignored")
            else:
                fn(sec)
        if self.analysis is not None or self.roi_manifest is not None:
            options = dict(self.analysis or {})
            options["roi_manifest"] = self.roi_manifest or "ROI_manifest.json"
            if self.roi_manifest is None:
                self.notes.append("no ROI manifest path: ROI_manifest.json beside the config")
            self.put("processor.plugins", {"image": [{"name": "grating", "options": options}]})
        if self.get("collector.camera.type") == "folder":
            if self.import_dir is None:
                raise ConfigError("camera_type file_importer needs the folder to import from")
            self.put("collector.camera.folder", {"source_dir": self.import_dir})
        if self.get("sync.enabled") and self.get("sync.share") is None:
            raise ConfigError("the syncer is enabled but no share path is given in [Paths]")
        return self.out


def convert_phorest(data: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Today's config (decoded TOML) as a rigwatch pipeline config mapping, with notes on
    what was not carried over.

    Raises:
        ConfigError: a value that cannot be converted (unknown analysis method, a file
            importer without its folder, sync without a share) or a result that does not
            validate.
    """
    conv = _Converter(data)
    out = conv.convert()
    try:
        PipelineConfig.model_validate(out)
    except ValidationError as exc:
        raise ConfigError(f"converted config is invalid: {exc}") from exc
    return out, conv.notes


# -- writing TOML ---------------------------------------------------------------------------


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ConfigError(f"cannot write {value} in TOML")
        return repr(value)
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'"{escaped}"'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        inner = ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items())
        return "{ " + inner + " }" if inner else "{}"
    raise ConfigError(f"cannot write a {type(value).__name__} in TOML")


def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else _toml_value(key)


def _is_table_list(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


def dump_toml(data: Mapping[str, Any], prefix: str = "") -> str:
    """``data`` as TOML: scalars first, then tables and arrays of tables (``None`` values,
    which TOML cannot hold, are left out: the model's default applies)."""
    lines: list[str] = []
    data = {k: v for k, v in data.items() if v is not None}
    for key, value in data.items():
        if not isinstance(value, dict) and not _is_table_list(value):
            lines.append(f"{_toml_key(key)} = {_toml_value(value)}")
    for key, value in data.items():
        name = f"{prefix}.{_toml_key(key)}" if prefix else _toml_key(key)
        if isinstance(value, dict):
            scalars = any(not isinstance(v, dict) and not _is_table_list(v) for v in value.values())
            if scalars or not value:
                lines += ["", f"[{name}]"]
            body = dump_toml(value, name).strip("\n")
            if body:
                lines.append(body)
        elif _is_table_list(value):
            for item in value:
                lines += ["", f"[[{name}]]", dump_toml(item, name).strip("\n")]
    return "\n".join(lines) + "\n"


def convert_file(source: Path, output: Path) -> list[str]:
    """Convert ``source`` (today's ``Phorest_config.toml``) and write ``output``; returns the
    notes (also written as comments at the top of the file).

    Raises:
        ConfigError: unreadable source, invalid TOML, or a value that cannot be converted.
    """
    try:
        data = tomllib.loads(Path(source).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: invalid TOML: {exc}") from exc
    out, notes = convert_phorest(data)
    header = [f"# rigwatch pipeline config converted from {Path(source).name}"]
    header += [f"# note: {n}" for n in notes]
    Path(output).write_text("\n".join(header) + "\n\n" + dump_toml(out), encoding="utf-8")
    return notes
