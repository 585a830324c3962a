"""Crash test of the outbox: a process that writes messages is killed without warning; every
message it had reported as stored is in the outbox when it is opened again."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from rigwatch.agent.outbox import Outbox

WRITER = textwrap.dedent(
    """
    import sys
    from rigwatch.agent.outbox import Outbox

    box = Outbox(sys.argv[1], 10_000_000)
    i = 0
    while True:
        box.put(f"m{i}", ('{"seq":%d}' % i).encode(), created_ns=i)
        print(i, flush=True)  # only after put() returned: the message is committed
        i += 1
    """
)


def test_agent_outbox_keeps_everything_after_a_kill(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    reported = -1
    try:
        for line in proc.stdout:
            reported = int(line)
            if reported >= 200:
                break
    finally:
        proc.kill()  # SIGKILL on POSIX, TerminateProcess on Windows: no clean-up runs
        proc.wait(30)
    assert reported >= 200, "the writer did not get going"
    with Outbox(path, 10_000_000) as box:
        ids = [i.message_id for i in box.peek(100_000)]
    assert len(ids) >= reported + 1
    assert ids[: reported + 1] == [f"m{i}" for i in range(reported + 1)]
    assert ids == [f"m{i}" for i in range(len(ids))]  # in order, no hole
