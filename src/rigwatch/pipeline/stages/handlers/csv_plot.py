"""Today's ``CSV_PLOT`` report, appended instead of regenerated.

``communicating_results.csv`` gets the rows of each reported image as it is reported: one row
per ROI with today's columns ``timestamp, ROI-label, Analysis-method``, one column per output
of the method (its ``statistic``, today the Median) and ``temperature_<sensor>``, plus
``artifact_id`` and ``image_filename``. Other kinds go to ``communicating_results_<kind>.csv``,
one row per artifact with its result's numbers. When a record brings a column the file's
header lacks (a new sensor), the file is renamed to ``<name>-<UTC stamp>.csv`` and a new one
started.

Appends are exactly-once per artifact: under a lock file, the part of the file beyond the
ledger's committed size (an append whose process died before recording it) is cut off, the
rows are appended and flushed, and the delivery and the new size are recorded in one
transaction.

The handler reads a file's header and committed size once (its first delivery to that file
after a start) and keeps them with the file's identity, size and modification time as it left
them after its last recorded append. A later delivery opens the file for appending without
creating it and compares: the same file, untouched since, is appended to at once; a file
removed, replaced (rotated), or changed by another reporter process (an append of theirs, a
cut tail) is read and reconciled with the ledger again as at the first delivery.

``processed_data_plot.png`` (matplotlib, Agg) shows the resonance position (the method's
position output, ``statistic``) of up to :data:`MAX_LINES` ROIs over time, kept in memory
(seeded from the CSV's tail at start) and redrawn at most every ``plot_interval_s``.
matplotlib is imported at the first drawing, so a reporter without a plot never loads it.
"""

from __future__ import annotations

import csv
import fcntl
import gc
import io
import logging
import math
import os
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from rigwatch.errors import DeliveryError
from rigwatch.pipeline.config import CsvPlotHandler
from rigwatch.pipeline.stages.handlers.ledger import Ledger
from rigwatch.pipeline.stages.handlers.records import ReportRecord
from rigwatch.recordings.files import tmp_path
from rigwatch.timefmt import file_stamp, iso_utc

log = logging.getLogger(__name__)

MAX_LINES = 12
"""ROIs drawn in the plot (the first ones reported)."""
SEED_BYTES = 4 * 2**20
"""Tail of the CSV read at start to seed the plot."""
POSITION_OUTPUT = {
    "max_intensity": "max_intensity",
    "centre": "centre",
    "gaussian": "mu",
    "fano": "resonance",
}
"""The resonance position's output per method (as
:data:`rigwatch.pipeline.analysis.grating.POSITION_OUTPUT`)."""

Row = dict[str, Any]


def _cell(value: Any) -> Any:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    return value


def image_rows(record: ReportRecord, statistic: str) -> list[Row]:
    """The CSV rows of an image record (one per ROI; one without ROI columns when the image
    has no ROI results)."""
    base: Row = {
        "timestamp": record.timestamp_iso,
        "artifact_id": record.artifact_id,
        "image_filename": record.filename,
    }
    temps = {f"temperature_{k}": _cell(v) for k, v in record.temperatures().items()}
    rows: list[Row] = []
    for item in record.result.get("image_analysis") or []:
        if not isinstance(item, dict) or "ROI-label" not in item:
            continue
        row: Row = {
            **base,
            "ROI-label": item["ROI-label"],
            "Analysis-method": item.get("Analysis-method", ""),
        }
        for name, stats in item.items():
            if isinstance(stats, dict):
                row[name] = _cell(stats.get(statistic))
        row.update(temps)
        rows.append(row)
    return rows or [{**base, **temps}]


def other_rows(record: ReportRecord) -> list[Row]:
    """The CSV row of a record of another kind: its numeric values, flattened."""
    row: Row = {
        "timestamp": record.timestamp_iso,
        "artifact_id": record.artifact_id,
        "filename": record.filename,
    }
    for key, value in record.values().items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            row[key] = value
        elif value is None and key.startswith("temperature."):
            row[key] = ""
    return [row]


@dataclass(frozen=True)
class KnownFile:
    """A CSV file as the handler left it after its last recorded append.

    Attributes:
        header: the file's columns.
        device, inode: the file's identity (``st_dev``, ``st_ino``).
        size: its size in bytes, the ledger's committed size.
        mtime_ns: its modification time, ns since the epoch.
    """

    header: tuple[str, ...]
    device: int
    inode: int
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, header: list[str], st: os.stat_result) -> KnownFile:
        """The state of a file with ``header`` and status ``st``."""
        return cls(tuple(header), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)

    def unchanged(self, st: os.stat_result) -> bool:
        """True when ``st`` is this file's status, untouched since."""
        return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns) == (
            self.device,
            self.inode,
            self.size,
            self.mtime_ns,
        )


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """An exclusive ``fcntl`` lock on ``path`` (created when missing)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


class CsvPlot:
    """The ``csv_plot`` handler.

    Args:
        config: the handler's config; reports_dir: where relative paths point; ledger: the
            reporter's delivery ledger.
    """

    name = "csv_plot"

    def __init__(self, config: CsvPlotHandler, reports_dir: Path, ledger: Ledger) -> None:
        self.config = config
        self.reports_dir = Path(reports_dir)
        self.reports_dir.mkdir(parents=True, exist_ok=True)
        self.ledger = ledger
        self.csv_path = self._resolve(config.csv)
        self.plot_path = None if config.plot is None else self._resolve(config.plot)
        self.series: dict[str, deque[tuple[float, float]]] = {}
        self.known: dict[Path, KnownFile] = {}
        """The files appended to since the start (see the module docstring)."""
        self._dirty = False
        self._drawn = 0.0
        if self.plot_path is not None:
            self._seed()

    def _resolve(self, p: Path) -> Path:
        return p if p.is_absolute() else self.reports_dir / p

    def csv_for(self, kind: str) -> Path:
        """The CSV file of an artifact kind."""
        if kind == "image":
            return self.csv_path
        return self.csv_path.with_name(f"{self.csv_path.stem}_{kind}{self.csv_path.suffix}")

    # -- delivering ---------------------------------------------------------------------------

    def deliver(self, record: ReportRecord) -> dict[str, Any]:
        kind = record.artifact.kind
        rows = image_rows(record, self.config.statistic) if kind == "image" else other_rows(record)
        path = self.csv_for(kind)
        try:
            with locked(path.with_name(path.name + ".lock")):
                done = self.ledger.delivered(self.name, record.artifact_id)
                if done is not None:
                    return done
                fh, header, st = self._open_for_append(path, rows)
                with fh:
                    buf = io.StringIO()
                    writer = csv.DictWriter(buf, fieldnames=header, extrasaction="ignore")
                    if st.st_size == 0:
                        writer.writeheader()
                    writer.writerows(rows)
                    fh.write(buf.getvalue().encode())
                    fh.flush()
                    os.fsync(fh.fileno())
                    size = fh.tell()
                    after = os.fstat(fh.fileno())
                detail = {"file": path.name, "rows": len(rows)}
                self.ledger.record(self.name, record.artifact_id, detail, (path, size))
                self.known[path] = KnownFile.of(header, after)
        except OSError as exc:
            raise DeliveryError(f"csv {path}: {exc}") from exc
        if kind == "image":
            self._remember(record)
        return detail

    def _open_for_append(
        self, path: Path, rows: list[Row]
    ) -> tuple[IO[bytes], list[str], os.stat_result]:
        """``path`` open for appending ``rows``, the header to write them with and the file's
        status before the append; the known state when the file is untouched since the last
        recorded append, else the file read and reconciled (:meth:`_prepare`)."""
        known = self.known.pop(path, None)  # forgotten until this append is recorded
        if known is not None:
            try:
                fd = os.open(path, os.O_WRONLY | os.O_APPEND)
            except FileNotFoundError:
                pass  # removed since: started again below
            else:
                try:
                    st = os.fstat(fd)
                    if known.unchanged(st) and {k for r in rows for k in r} <= set(known.header):
                        return os.fdopen(fd, "ab"), list(known.header), st
                except BaseException:
                    os.close(fd)
                    raise
                os.close(fd)
        header = self._prepare(path, rows)
        fh = open(path, "ab")  # noqa: SIM115  (closed by the caller)
        try:
            return fh, header, os.fstat(fh.fileno())
        except BaseException:
            fh.close()
            raise

    def _prepare(self, path: Path, rows: list[Row]) -> list[str]:
        """Cut off an unrecorded tail, rotate on a new column; returns the header to use."""
        committed = self.ledger.committed_size(path)
        size = path.stat().st_size if path.exists() else 0
        if committed is None or size < committed:
            if committed is not None:
                log.warning("%s is shorter than recorded: taking it as it is", path)
            self.ledger.set_committed_size(path, size)
        elif size > committed:
            log.warning("%s: cutting %d bytes of an unrecorded append", path, size - committed)
            with open(path, "r+b") as fh:
                fh.truncate(committed)
                fh.flush()
                os.fsync(fh.fileno())
        wanted = list(dict.fromkeys(k for r in rows for k in r))
        header = self._header(path)
        if header is not None and not set(wanted) <= set(header):
            self._rotate(path)
            header = None
        if header is None:
            path.touch()
            self.ledger.set_committed_size(path, 0)
            return wanted
        return header

    def _header(self, path: Path) -> list[str] | None:
        if not path.exists() or path.stat().st_size == 0:
            return None
        with open(path, newline="") as fh:
            first = fh.readline()
        return next(csv.reader([first]))

    def _rotate(self, path: Path) -> None:
        target = path.with_name(f"{path.stem}-{file_stamp(time.time_ns())}{path.suffix}")
        os.replace(path, target)
        log.info("started a new %s (the previous one is %s)", path.name, target.name)

    # -- the plot -------------------------------------------------------------------------------

    def _add_point(self, label: str, t: float, value: float) -> None:
        series = self.series.get(label)
        if series is None:
            if len(self.series) >= MAX_LINES:
                return
            series = self.series[label] = deque(maxlen=self.config.plot_points)
        series.append((t, value))
        self._dirty = True

    def _remember(self, record: ReportRecord) -> None:
        if self.plot_path is None:
            return
        t = record.timestamp_ns / 1e9
        stat = self.config.statistic
        for item in record.result.get("image_analysis") or []:
            if not isinstance(item, dict) or "ROI-label" not in item:
                continue
            out = POSITION_OUTPUT.get(str(item.get("Analysis-method")))
            stats = item.get(out) if out else None
            value = stats.get(stat) if isinstance(stats, dict) else None
            if isinstance(value, int | float) and math.isfinite(value):
                self._add_point(str(item["ROI-label"]), t, float(value))

    def _seed(self) -> None:
        path = self.csv_path
        header = self._header(path)
        if header is None:
            return
        from datetime import datetime

        with open(path, "rb") as fh:
            fh.seek(max(0, path.stat().st_size - SEED_BYTES))
            tail = fh.read().decode(errors="replace").splitlines()[1:]
        for row in csv.DictReader(tail, fieldnames=header):
            out = POSITION_OUTPUT.get(row.get("Analysis-method") or "")
            try:
                t = datetime.fromisoformat(str(row["timestamp"]).replace("Z", "+00:00"))
                value = float(row[out]) if out else math.nan
            except (KeyError, TypeError, ValueError):
                continue
            if math.isfinite(value):
                self._add_point(str(row.get("ROI-label")), t.timestamp(), value)

    def flush(self) -> None:
        """Redraw the plot when new points came and ``plot_interval_s`` passed."""
        if self.plot_path is None or not self._dirty:
            return
        if time.monotonic() - self._drawn < self.config.plot_interval_s and self._drawn > 0:
            return
        self.draw()

    def draw(self) -> None:
        """Redraw the plot now (written under a temporary name and renamed)."""
        if self.plot_path is None:
            return
        from datetime import UTC, datetime

        # the figure API (no pyplot: no global figure registry to forget a figure in)
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        fig = Figure(figsize=(10, 5), dpi=100)
        FigureCanvasAgg(fig)
        ax = fig.subplots()
        try:
            for label, series in self.series.items():
                ts: Any = [datetime.fromtimestamp(t, tz=UTC) for t, _ in series]
                ax.plot(ts, [v for _, v in series], ".-", ms=2, lw=0.8, label=label)
            ax.set_xlabel("time (UTC)")
            ax.set_ylabel(f"resonance position, {self.config.statistic} (px)")
            ax.set_title(f"Resonance positions, updated {iso_utc(time.time_ns())[:19]}Z")
            if self.series:
                ax.legend(fontsize=7, ncol=2, loc="best")
            fig.autofmt_xdate()
            tmp = tmp_path(self.plot_path)
            fig.savefig(tmp, format="png")
            os.replace(tmp, self.plot_path)
        except OSError as exc:
            log.warning("cannot write plot %s: %s", self.plot_path, exc)
        finally:
            # a figure is a web of reference cycles (several MB with its rendered canvas):
            # freed now rather than when the collector's oldest generation next runs
            fig.clear()
            del fig, ax
            gc.collect()
        self._dirty = False
        self._drawn = time.monotonic()

    def close(self) -> None:
        if self._dirty:
            self.draw()
