"""The pipeline's configuration (TOML, validated by pydantic; unknown keys are errors).

Sections follow today's ``Phorest_config.toml`` (``Paths``, ``Services``, ``Timing``,
``Retries``, ``Buffer``, ``Communication``, ``Camera``, ``Temperature``, ``Data_Analysis``)
under rigwatch's names, one section per stage::

    [manifest]     where the manifest lives, leases, retries        (today: Retries)
    [paths]        data, results, reports and state folders           (Paths)
    [collector]    interval, free-space floor, camera, temperature, segments
                                                                      (Camera, Temperature)
    [processor]    analysis plugins per artifact kind                 (Data_Analysis)
    [reporter]     handlers: csv_plot, opcua, mqtt, fleet             (Communication)
    [compressor]   codec and which formats                            (Services.enable_*)
    [sync]         the share                                          (Paths, Services)
    [retention]    ring buffer by count and bytes                     (Buffer)
    [supervisor]   which stages run, how many workers, restart backoff

Relative paths are resolved against the folder of the TOML file. Example:
``configs/phorest.toml``; :mod:`rigwatch.pipeline.phorest_import` converts today's file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, PrivateAttr, field_validator, model_validator

from rigwatch.config.base import ResolvedPath, Strict

StageName = Literal["collector", "processor", "reporter", "compressor", "syncer", "retention"]
STAGE_NAMES: tuple[StageName, ...] = (
    "collector",
    "processor",
    "reporter",
    "compressor",
    "syncer",
    "retention",
)
"""The stage processes, in the order the supervisor starts them."""


class ManifestSection(Strict):
    """The durable manifest (see :mod:`rigwatch.pipeline.manifest`).

    Attributes:
        url: a SQLite file path (local disk only) or ``postgresql+psycopg://...``.
        lease_s: lease of a claimed item, seconds; a dead worker's items return after it.
        heartbeat_s: how often a worker renews its leases (default ``lease_s / 3``).
        batch: items claimed at once by a worker.
        max_attempts, backoff_base_s, backoff_max_s: retries with exponential backoff.
        synchronous: SQLite ``synchronous`` pragma (``NORMAL`` or ``FULL``).
    """

    url: str = "data/manifest.sqlite"
    lease_s: float = Field(default=60.0, gt=0)
    heartbeat_s: float | None = Field(default=None, gt=0)
    batch: int = Field(default=8, ge=1, le=1000)
    max_attempts: int = Field(default=5, ge=1)
    backoff_base_s: float = Field(default=2.0, ge=0)
    backoff_max_s: float = Field(default=600.0, ge=0)
    synchronous: Literal["NORMAL", "FULL"] = "NORMAL"

    @model_validator(mode="after")
    def _heartbeat_within_lease(self) -> ManifestSection:
        if self.heartbeat_s is not None and self.heartbeat_s >= self.lease_s:
            raise ValueError(
                f"heartbeat_s ({self.heartbeat_s}) must be shorter than lease_s ({self.lease_s})"
            )
        return self

    @property
    def heartbeat_interval_s(self) -> float:
        """The heartbeat interval actually used, seconds."""
        return self.heartbeat_s if self.heartbeat_s is not None else self.lease_s / 3.0

    def target(self, base_dir: Path | None) -> str:
        """The manifest's URL or SQLite path, a relative path resolved against ``base_dir``."""
        if "://" in self.url or base_dir is None or Path(self.url).is_absolute():
            return self.url
        return str((base_dir / self.url).resolve())


class PathsSection(Strict):
    """Local folders (all on local disk; the share is in ``[sync]``).

    Attributes:
        data_dir: collected files (images, temperature readings, linked segments).
        results_log: the JSONL results log (today's ``processing_results.jsonl``).
        results_log_max_bytes, results_log_backups: its rotation.
        reports_dir: the reporter's files (CSV, plot, delivery ledger).
        state_dir: pid, state and status files of the stages and the supervisor, logs.
    """

    data_dir: ResolvedPath = Path("data")
    results_log: ResolvedPath = Path("results/processing_results.jsonl")
    results_log_max_bytes: int = Field(default=64 * 2**20, gt=0)
    results_log_backups: int = Field(default=10, ge=0)
    reports_dir: ResolvedPath = Path("results")
    state_dir: ResolvedPath = Path("state")


class SyntheticCameraConfig(Strict):
    """A camera that draws grating images with known resonances (no hardware).

    Attributes:
        shape: image ``(rows, cols)``; chip_rows, chip_cols: gratings drawn.
        half_size: ``(height, width)`` of each half grating, pixels; pitch: ``(dy, dx)``.
        line: ``gaussian`` or ``fano``; noise: counts; drift_px_per_image: how far the lines
            move from one image to the next (a slowly drifting resonance).
        roi_manifest: where to write the true ``ROI_manifest.json`` at start (``None``: not).
    """

    shape: tuple[int, int] = (256, 512)
    chip_rows: int = Field(default=4, ge=1)
    chip_cols: int = Field(default=2, ge=1)
    half_size: tuple[int, int] = (20, 100)
    pitch: tuple[int, int] = (44, 240)
    line: Literal["gaussian", "fano"] = "gaussian"
    noise: float = Field(default=150.0, ge=0)
    drift_px_per_image: float = 0.05
    roi_manifest: ResolvedPath | None = None


class UsbCameraConfig(Strict):
    """An OpenCV (V4L2) USB camera; needs the ``rigwatch[camera]`` extra (opencv).

    Attributes:
        device: V4L2 index (``/dev/video<N>``) or a device path.
        width, height: requested frame size (``None``: the camera's default).
        exposure, gain, brightness, contrast: OpenCV capture properties (``None``: unset).
        transform: rotation/mirroring applied after capture.
    """

    device: int | str = 0
    width: int | None = Field(default=None, gt=0)
    height: int | None = Field(default=None, gt=0)
    exposure: float | None = None
    gain: float | None = None
    brightness: float | None = None
    contrast: float | None = None
    transform: Literal["none", "rotate_90", "rotate_180", "rotate_270", "flip_h", "flip_v"] = "none"


class FolderImportConfig(Strict):
    """Import existing images named ``image_%Y%m%d_%H%M%S_%f_cam<idx>.png`` from a folder.

    Attributes:
        source_dir: the folder (not changed: files are copied into ``data_dir``).
        per_cycle: most files imported per collector cycle (oldest name first).
    """

    source_dir: ResolvedPath
    per_cycle: int = Field(default=500, ge=1)


class CameraSection(Strict):
    """Today's ``[Camera]``: which camera, and its settings.

    Attributes:
        enabled: take images.
        type: ``synthetic``, ``usb`` or ``folder`` (today's ``dummy``, USB cameras,
            ``file_importer``).
        index: the camera index written in file names (``_cam<idx>``).
    """

    enabled: bool = True
    type: Literal["synthetic", "usb", "folder"] = "synthetic"
    index: int = Field(default=0, ge=0)
    synthetic: SyntheticCameraConfig = SyntheticCameraConfig()
    usb: UsbCameraConfig = UsbCameraConfig()
    folder: FolderImportConfig | None = None

    @model_validator(mode="after")
    def _folder_given(self) -> CameraSection:
        if self.enabled and self.type == "folder" and self.folder is None:
            raise ValueError("camera type 'folder' needs a [collector.camera.folder] table")
        return self


class TemperatureSection(Strict):
    """DS18B20 one-wire sensors (today's temperature sensors).

    Attributes:
        enabled: read temperatures each cycle.
        devices_dir: the kernel's one-wire device folder.
        sensors: ``{name: device id}`` (``28-0316a2799cff``); empty: every ``28-*`` device,
            named by its id.
        retries: reads per sensor before it counts as failed (today: 5).
    """

    enabled: bool = False
    devices_dir: ResolvedPath = Path("/sys/bus/w1/devices")
    sensors: dict[str, str] = Field(default_factory=dict)
    retries: int = Field(default=5, ge=1)


class SegmentsSection(Strict):
    """The station's closed Parquet segments, taken over as artifacts.

    Attributes:
        enabled: watch ``folder``.
        folder: the station's recordings folder (only complete, visible ``*.parquet``
            segments are taken; work files and journals are not).
        kind: the artifact kind given to them (the processor's plugins are chosen by kind).
    """

    enabled: bool = False
    folder: ResolvedPath = Path("recordings")
    kind: str = Field(default="segment", min_length=1, max_length=32)


class CollectorSection(Strict):
    """Today's collector (``Timing.collector_interval_seconds``).

    Attributes:
        interval_s: time between two collection cycles.
        min_free_bytes: the collector pauses (and says why in its status) while the free space
            of ``data_dir`` is below this.
    """

    interval_s: float = Field(default=10.0, gt=0)
    min_free_bytes: int = Field(default=500 * 2**20, ge=0)
    camera: CameraSection = CameraSection()
    temperature: TemperatureSection = TemperatureSection()
    segments: SegmentsSection = SegmentsSection()


class PluginEntry(Strict):
    """One analysis plugin: its registered name and its own options (checked by the plugin)."""

    name: str
    options: dict[str, Any] = Field(default_factory=dict)


class ProcessorSection(Strict):
    """Which analyses run per artifact kind (today's ``[Data_Analysis]``).

    Attributes:
        plugins: ``{kind: [plugins]}``; a kind without plugins is processed with an empty
            result (its collector metadata, temperature readings for instance, is the result).
        poll_s: wait between two empty claims.
        workers: processor processes the supervisor starts.
    """

    plugins: dict[str, list[PluginEntry]] = Field(default_factory=dict)
    poll_s: float = Field(default=1.0, gt=0)
    workers: int = Field(default=1, ge=1, le=32)


class CsvPlotHandler(Strict):
    """Today's ``CSV_PLOT``: ``communicating_results.csv`` appended row by row and
    ``processed_data_plot.png`` redrawn at most every ``plot_interval_s``.

    Attributes:
        csv: the CSV file (relative: inside ``reports_dir``).
        plot: the plot (``""`` or ``None``: no plot).
        statistic: the statistic of each output written in the CSV (today: Median).
        plot_interval_s: shortest time between two redraws.
        plot_points: most points per ROI kept in the plot.
    """

    type: Literal["csv_plot"] = "csv_plot"
    csv: Path = Path("communicating_results.csv")
    plot: Path | None = Path("processed_data_plot.png")
    statistic: Literal["Mean", "STD", "LQ", "Median", "UQ", "Max", "Min", "Smoothness"] = "Median"
    plot_interval_s: float = Field(default=60.0, gt=0)
    plot_points: int = Field(default=2000, ge=10)

    @field_validator("plot", mode="before")
    @classmethod
    def _empty_is_none(cls, v: object) -> object:
        return None if v == "" else v


class OpcUaHandler(Strict):
    """An OPC-UA client writing the latest results to nodes of a server.

    Attributes:
        endpoint: ``opc.tcp://host:4840/...``.
        nodes: ``{value key: node id}``; keys name flattened result values (``brightness``,
            ``ROI_R00C00_1.mu.Median``, ``temperature.sensor1``, ``rms``); node ids in OPC-UA
            text form (``ns=2;s=Rig.Resonance``).
        timeout_s: connection and request timeout.
        username, password_env: optional user; the password is read from this environment
            variable (never written in the config).
    """

    type: Literal["opcua"] = "opcua"
    endpoint: str = Field(pattern=r"^opc\.tcp://")
    nodes: dict[str, str] = Field(min_length=1)
    timeout_s: float = Field(default=5.0, gt=0)
    username: str | None = None
    password_env: str | None = None


class MqttHandler(Strict):
    """Results published as JSON, one message per artifact (QoS 1: at least once; each
    message carries ``artifact_id`` so subscribers can drop a repeat).

    Attributes:
        host, port: the broker.
        topic: topic prefix; messages go to ``<topic>/<kind>``.
        qos: 0, 1 or 2; retain: keep the latest message per topic on the broker.
        username, password_env: optional credentials (password from the environment).
        timeout_s: connect and publish timeout.
    """

    type: Literal["mqtt"] = "mqtt"
    host: str = "127.0.0.1"
    port: int = Field(default=1883, gt=0, lt=65536)
    topic: str = Field(default="rigwatch/pipeline", min_length=1)
    qos: Literal[0, 1, 2] = 1
    retain: bool = False
    username: str | None = None
    password_env: str | None = None
    timeout_s: float = Field(default=10.0, gt=0)

    @field_validator("topic")
    @classmethod
    def _no_wildcards(cls, v: str) -> str:
        if "#" in v or "+" in v:
            raise ValueError("a publish topic cannot hold the wildcards # or +")
        return v.rstrip("/")


class FleetHandler(Strict):
    """Results handed to the agent's outbox, sent to the fleet server by the agent.

    Attributes:
        outbox: the agent's outbox file (its ``[outbox]`` path).
        outbox_max_bytes: the outbox's bound (as in the agent's config).
        machine_id: this machine's id at the fleet server.
        metrics: ``{metric name: value key}`` (keys as for OPC-UA nodes).
    """

    type: Literal["fleet"] = "fleet"
    outbox: ResolvedPath
    outbox_max_bytes: int = Field(default=64 * 2**20, gt=0)
    machine_id: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_\-]*$", max_length=64)
    metrics: dict[str, str] = Field(min_length=1)


Handler = Annotated[
    CsvPlotHandler | OpcUaHandler | MqttHandler | FleetHandler, Field(discriminator="type")
]


class ReporterSection(Strict):
    """Today's ``[Communication]``: the handlers every processed artifact is reported to."""

    handlers: list[Handler] = Field(default_factory=lambda: list[Handler]([CsvPlotHandler()]))
    poll_s: float = Field(default=1.0, gt=0)

    @model_validator(mode="after")
    def _unique_types(self) -> ReporterSection:
        types = [h.type for h in self.handlers]
        dup = sorted({t for t in types if types.count(t) > 1})
        if dup:
            raise ValueError(f"one handler per type; repeated: {', '.join(dup)}")
        return self


DEFAULT_SKIP = (".png", ".jpg", ".jpeg", ".webp", ".gz", ".zst", ".xz", ".bz2", ".zip")


class CompressorSection(Strict):
    """Compression of processed files where it pays.

    Attributes:
        enabled: run the stage (else the flow has no compress stage).
        codec: ``zstd`` or ``gzip``; level: codec level (``None``: the codec's default).
        skip_suffixes: file suffixes already compressed (PNG, JPEG...): left as they are.
            Parquet files are skipped when their pages are already compressed.
    """

    enabled: bool = True
    codec: Literal["zstd", "gzip"] = "zstd"
    level: int | None = Field(default=None, ge=1, le=22)
    skip_suffixes: tuple[str, ...] = DEFAULT_SKIP
    poll_s: float = Field(default=2.0, gt=0)


class SyncSection(Strict):
    """Copying to a share (local first: everything else goes on while it is away).

    Attributes:
        enabled: run the stage (else the flow has no sync stage).
        share: the share's folder.
        require_mount: the share must be a mount point (an unmounted share leaves an empty
            local folder behind, which must not be mistaken for it).
        poll_s: wait between two checks of a missing share or two empty claims.
    """

    enabled: bool = False
    share: ResolvedPath = Path("/mnt/share")
    require_mount: bool = False
    poll_s: float = Field(default=5.0, gt=0)


class RetentionSection(Strict):
    """Today's ring buffer (``Buffer.image_buffer_size``), by count and by bytes, counting
    compressed files; never deletes an artifact not yet processed, reported and (with sync
    on) synced.

    Attributes:
        max_count: most artifacts kept on local disk (``None``: no bound).
        max_bytes: most bytes kept (``None``: no bound).
    """

    max_count: int | None = Field(default=None, ge=0)
    max_bytes: int | None = Field(default=None, ge=0)
    poll_s: float = Field(default=5.0, gt=0)


class SupervisorSection(Strict):
    """The supervisor (``rigwatch pipeline up``).

    Attributes:
        stages: stages started (default: every stage that is enabled).
        restart_min_s, restart_max_s: backoff before restarting a crashed stage, doubling
            from min to max; reset after a stage ran ``stable_s`` without crashing.
        stop_timeout_s: time a stage has to finish its item after SIGTERM before SIGKILL.
    """

    stages: list[StageName] | None = None
    restart_min_s: float = Field(default=0.5, gt=0)
    restart_max_s: float = Field(default=60.0, gt=0)
    stable_s: float = Field(default=30.0, gt=0)
    stop_timeout_s: float = Field(default=20.0, gt=0)


class PipelineConfig(Strict):
    """The whole pipeline config."""

    manifest: ManifestSection = ManifestSection()
    paths: PathsSection = PathsSection()
    collector: CollectorSection = CollectorSection()
    processor: ProcessorSection = ProcessorSection()
    reporter: ReporterSection = ReporterSection()
    compressor: CompressorSection = CompressorSection()
    sync: SyncSection = SyncSection()
    retention: RetentionSection = RetentionSection()
    supervisor: SupervisorSection = SupervisorSection()
    _base_dir: Path | None = PrivateAttr(default=None)

    def enabled_stages(self) -> list[StageName]:
        """The stages the supervisor starts."""
        if self.supervisor.stages is not None:
            return list(self.supervisor.stages)
        out: list[StageName] = []
        for name in STAGE_NAMES:
            if name == "compressor" and not self.compressor.enabled:
                continue
            if name == "syncer" and not self.sync.enabled:
                continue
            out.append(name)
        return out

    @property
    def base_dir(self) -> Path | None:
        """The folder of the config file (``None`` for a config not read from a file)."""
        return self._base_dir

    def manifest_target(self) -> str:
        """The manifest's URL or SQLite path (relative paths against the config's folder)."""
        return self.manifest.target(self._base_dir)


def load_pipeline_config(path: str | Path) -> PipelineConfig:
    """Read and validate a pipeline config file.

    Raises:
        ConfigError: missing, unreadable, invalid TOML or invalid content; the message names
            the file, the key and the reason.
    """
    from rigwatch.config.loader import load_config

    p = Path(path)
    cfg = load_config(p, PipelineConfig)
    cfg._base_dir = p.resolve().parent
    return cfg
