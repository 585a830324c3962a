"""A live client that stops reading never slows acquisition, the recorder or other clients."""

from __future__ import annotations

from pathlib import Path

import httpx
import msgpack
import numpy as np
from websockets.sync.client import connect

from rigwatch.config.station import StationConfig
from rigwatch.devices.mock import ListDevice, ramp_block
from rigwatch.devices.protocols import ChannelInfo
from rigwatch.station import Station
from support.server import serve

RATE_HZ = 1_000_000.0  # nominal: the backlog limit (0.2 s) is then 200 000 rows
BLOCK = 20_000
BLOCKS = 200  # 4 M rows x 2 channels: 32 MB, more than loopback socket buffers hold


def test_stalled_client_skips_while_acquisition_recorder_and_others_keep_everything(
    tmp_path: Path,
):
    cfg = StationConfig.from_dict(
        {
            "recorder": {"directory": str(tmp_path / "rec"), "segment_duration_s": 3600},
            "live": {"max_backlog_s": 0.2, "max_frame_bytes": 1 << 20},
            "devices": [
                {
                    "name": "dev",
                    "driver": "sim",
                    "sample_rate_hz": RATE_HZ,
                    "channels": [{"name": "a"}, {"name": "b"}],
                }
            ],
        }
    )
    dev = ListDevice("dev", [ChannelInfo("a"), ChannelInfo("b")], rate_hz=RATE_HZ)
    station = Station(cfg, devices=[dev])
    total = BLOCK * BLOCKS
    sub = msgpack.packb(
        {"type": "subscribe", "device": "dev", "display_rate_hz": RATE_HZ, "fps": 100}
    )
    with serve(station) as addr:
        # the stalled client buffers at most one message of its own, then TCP pushes back
        with (
            connect(f"ws://{addr}/ws", max_size=None, max_queue=1) as stalled,
            connect(f"ws://{addr}/ws", max_size=None) as fast,
        ):
            stalled.send(sub)
            fast.send(sub)
            assert msgpack.unpackb(fast.recv(timeout=10))["type"] == "subscribed"
            got = 0
            first_values: list[float] = []
            for i in range(BLOCKS):  # the fast client keeps pace with acquisition
                dev.blocks.put(ramp_block(i * BLOCK, BLOCK, 2))
                while got < (i + 1) * BLOCK:
                    m = msgpack.unpackb(fast.recv(timeout=30), raw=False)
                    if m["type"] != "data":
                        continue
                    assert m["missed"] == 0 and m["start_index"] == got
                    if not first_values:
                        first_values = np.frombuffer(m["data"], "<f4")[:4].tolist()
                    got = m["end_index"]
            dev.blocks.put(None)
            assert first_values == [0.0, 1.0, 10.0, 11.0]
            # acquisition finished although the stalled client has read nothing
            assert station.streams["dev"].wait_finished(60)
            assert station.streams["dev"].stats.rows == total
            # the recorder kept every row
            assert station.recorders["dev"].wait_finished(60)
            assert station.recorders["dev"].status()["rows_recorded"] == total
            # the stalled client now reads: it was skipped ahead, and told so
            missed = 0
            end = 0
            while end < total:
                m = msgpack.unpackb(stalled.recv(timeout=30), raw=False)
                if m["type"] == "data":
                    missed += m["missed"]
                    end = m["end_index"]
            assert missed > 0
        status = httpx.get(f"http://{addr}/api/status").json()
        assert status["errors"]["live.samples_skipped"] >= missed
        assert status["recorder"]["dev"]["missed_rows"] == 0
