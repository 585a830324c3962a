"""The CSV/plot handler keeps what it knows of its CSV files between deliveries: the header and
committed size are read once, and the file is read and reconciled again when it was removed,
rotated or changed by someone else since the handler's last recorded append, and after a
restart."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rigwatch.pipeline.config import CsvPlotHandler
from rigwatch.pipeline.manifest import ArtifactRecord
from rigwatch.pipeline.stages.handlers.csv_plot import CsvPlot
from rigwatch.pipeline.stages.handlers.ledger import Ledger
from rigwatch.pipeline.stages.handlers.records import ReportRecord

T0_NS = 1_700_000_000_000_000_000


def record(artifact_id: int, temperatures: dict[str, float] | None = None) -> ReportRecord:
    """An image record with one ROI result (and the given temperature readings)."""
    artifact = ArtifactRecord(
        id=artifact_id,
        kind="image",
        path=f"/data/image_{artifact_id}.png",
        checksum=None,
        size_bytes=None,
        captured_ns=T0_NS + artifact_id,
        created_ns=T0_NS + artifact_id,
        updated_ns=T0_NS + artifact_id,
        meta={"temperature_readings": temperatures or {}},
    )
    result = {
        "image_analysis": [
            {
                "ROI-label": "A1",
                "Analysis-method": "max_intensity",
                "max_intensity": {"Median": 10.0 + artifact_id},
            }
        ]
    }
    return ReportRecord(artifact, result, T0_NS + artifact_id)


class Counting(CsvPlot):
    """The handler, counting how often it reads and reconciles a file from scratch."""

    prepared = 0

    def _prepare(self, path: Path, rows: list[dict[str, Any]]) -> list[str]:
        self.prepared += 1
        return super()._prepare(path, rows)


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    led = Ledger(tmp_path / "deliveries.sqlite")
    yield led
    led.close()


def handler(tmp_path: Path, ledger: Ledger) -> Counting:
    return Counting(CsvPlotHandler(plot=None), tmp_path, ledger)


def rows_of(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_header_and_size_are_read_once_then_kept(tmp_path: Path, ledger: Ledger) -> None:
    h = handler(tmp_path, ledger)
    for i in range(1, 6):
        assert h.deliver(record(i)) == {"file": "communicating_results.csv", "rows": 1}
    assert h.prepared == 1
    path = tmp_path / "communicating_results.csv"
    assert [r["artifact_id"] for r in rows_of(path)] == ["1", "2", "3", "4", "5"]
    assert path.read_text().count("timestamp") == 1  # one header
    assert ledger.committed_size(path) == path.stat().st_size


def test_a_removed_file_is_started_again_with_its_header(tmp_path: Path, ledger: Ledger) -> None:
    h = handler(tmp_path, ledger)
    h.deliver(record(1))
    path = tmp_path / "communicating_results.csv"
    path.unlink()
    h.deliver(record(2))
    h.deliver(record(3))
    assert h.prepared == 2
    assert [r["artifact_id"] for r in rows_of(path)] == ["2", "3"]
    assert ledger.committed_size(path) == path.stat().st_size


def test_a_file_changed_by_another_writer_is_reconciled(tmp_path: Path, ledger: Ledger) -> None:
    h = handler(tmp_path, ledger)
    h.deliver(record(1))
    path = tmp_path / "communicating_results.csv"
    with open(path, "ab") as fh:  # an append nobody recorded (its writer died)
        fh.write(b"2023-11-14T22:13:20Z,torn")
    h.deliver(record(2))
    assert h.prepared == 2
    assert b"torn" not in path.read_bytes()
    assert [r["artifact_id"] for r in rows_of(path)] == ["1", "2"]


def test_a_file_replaced_by_a_rotation_elsewhere_is_read_again(
    tmp_path: Path, ledger: Ledger
) -> None:
    h = handler(tmp_path, ledger)
    h.deliver(record(1))
    path = tmp_path / "communicating_results.csv"
    # another reporter process rotated it and began a new file with another header
    path.rename(tmp_path / "communicating_results-old.csv")
    header = "other,timestamp,artifact_id,image_filename,ROI-label,Analysis-method,max_intensity"
    path.write_text(header + "\n")
    ledger.set_committed_size(path, path.stat().st_size)
    h.deliver(record(2))
    assert h.prepared == 2
    rows = rows_of(path)  # written in the new file's column order, under its one header
    assert ",".join(rows[0]) == header and path.read_text().count("timestamp") == 1
    assert [(r["artifact_id"], r["other"], r["max_intensity"]) for r in rows] == [("2", "", "12.0")]


def test_a_new_column_still_rotates_the_file(tmp_path: Path, ledger: Ledger) -> None:
    h = handler(tmp_path, ledger)
    h.deliver(record(1))
    h.deliver(record(2, {"s1": 21.5}))
    rotated = [p for p in tmp_path.glob("communicating_results-*.csv")]
    assert len(rotated) == 1 and [r["artifact_id"] for r in rows_of(rotated[0])] == ["1"]
    current = rows_of(tmp_path / "communicating_results.csv")
    assert [(r["artifact_id"], r["temperature_s1"]) for r in current] == [("2", "21.5")]


def test_after_a_restart_the_unrecorded_tail_is_cut(tmp_path: Path, ledger: Ledger) -> None:
    first = handler(tmp_path, ledger)
    first.deliver(record(1))
    path = tmp_path / "communicating_results.csv"
    with open(path, "ab") as fh:  # the process died after appending, before recording
        fh.write(b"2023-11-14T22:13:20Z,2,image_2.png,A1,max_intensity,12.0\n")
    second = handler(tmp_path, ledger)  # the restarted reporter
    second.deliver(record(2))
    second.deliver(record(3))
    assert second.prepared == 1
    assert [r["artifact_id"] for r in rows_of(path)] == ["1", "2", "3"]
    assert ledger.committed_size(path) == path.stat().st_size
