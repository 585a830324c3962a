"""After a stage process died: its leases end at once (attempt kept), the results lines it
recorded but never appended are appended once; a reporter whose handler is unreachable waits
with the reason and reports everything once the handler is back."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from rigwatch.errors import DeliveryError
from rigwatch.pipeline.manifest import Manifest, NewArtifact, ResultsLog
from rigwatch.pipeline.recovery import catch_up_lines_of, expire_leases_of
from rigwatch.pipeline.stages.handlers.ledger import Ledger
from rigwatch.pipeline.stages.handlers.records import ReportRecord
from rigwatch.pipeline.stages.reporter import Reporter
from rigwatch.pipeline.stages.worker import WorkerSettings, wait_until


def _manifest(tmp: Path, results_log: ResultsLog | None, n: int = 0) -> Manifest:
    m = Manifest.open(tmp / "m.sqlite", results_log=results_log, lease_s=60.0)
    if n:
        m.add_many([NewArtifact("image", tmp / f"a{i}.png") for i in range(n)])
    return m


def test_dead_workers_leases_end_now_and_keep_their_attempt(tmp_path: Path) -> None:
    m = _manifest(tmp_path, None, 3)
    held = m.claim("process", "dead", 2)
    assert m.claim("process", "other", 3)[0].artifact_id == 3  # the dead one's are leased
    assert expire_leases_of(m, "dead") == 2
    assert expire_leases_of(m, "dead") == 0
    taken = m.claim("process", "other", 3)
    assert sorted(x.artifact_id for x in taken) == sorted(x.artifact_id for x in held)
    assert {x.attempt for x in taken} == {2}
    m.close()


def test_lines_a_dead_worker_did_not_append_are_caught_up_once(tmp_path: Path) -> None:
    log = ResultsLog(tmp_path / "r.jsonl")
    silent = _manifest(tmp_path, None, 4)  # records without appending: the died-before case
    logging = Manifest(silent.engine, results_log=log)
    for owner, manifest in (("live", logging), ("dead", silent), ("dead2", silent)):
        lease = manifest.claim("process", owner, 1)[0]
        manifest.complete(lease, {"owner": owner})
    assert [x["artifact_id"] for x in log.read()] == [1]
    assert catch_up_lines_of(logging, "dead") == 1
    assert catch_up_lines_of(logging, "dead") == 0
    assert catch_up_lines_of(logging, "live") == 0
    lines = list(log.read())
    assert [x["artifact_id"] for x in lines] == [1, 2]
    assert lines[1]["seq"] == logging.result(2, "process").seq  # type: ignore[union-attr]
    silent.close()


class _Flaky:
    """A handler that is unreachable until ``up`` is set."""

    name = "mqtt"

    def __init__(self) -> None:
        self.up = threading.Event()
        self.delivered: list[int] = []

    def deliver(self, record: ReportRecord) -> dict[str, Any]:
        if not self.up.is_set():
            raise DeliveryError("mqtt: broker 127.0.0.1:1 unreachable")
        self.delivered.append(record.artifact_id)
        return {"topic": "t"}

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


def test_reporter_waits_while_a_handler_is_unreachable(tmp_path: Path) -> None:
    m = _manifest(tmp_path, None, 3)
    for lease in m.claim("process", "p", 3):
        m.complete(lease, {"value": lease.artifact_id})
    handler = _Flaky()
    reporter = Reporter(
        m, [handler], Ledger(tmp_path / "ledger.sqlite"), WorkerSettings(2, 5.0, 1.0, 0.02)
    )
    stop = threading.Event()
    thread = threading.Thread(target=reporter.run, args=(stop,), daemon=True)
    thread.start()
    try:
        assert wait_until(lambda: reporter.status.state == "waiting", 10)
        assert "broker 127.0.0.1:1 unreachable" in (reporter.status.reason or "")
        # several rounds of waiting: no attempt is used up, nothing ends failed
        assert wait_until(lambda: reporter.status.data["released"] >= 6, 10)
        counts = m.counts()["report"]
        assert "failed" not in counts and counts.get("done", 0) == 0
        handler.up.set()
        assert wait_until(lambda: m.counts()["report"].get("done") == 3, 10)
    finally:
        stop.set()
        thread.join(10)
    assert sorted(handler.delivered) == [1, 2, 3]
    assert {m.result(i, "report").attempt for i in (1, 2, 3)} == {1}  # type: ignore[union-attr]
    m.close()
