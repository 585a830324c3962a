"""STM32 sensor rows per second over a 230 400-baud link: text lines vs binary frames.

Two figures per framing:

- computed: 230 400 baud 8N1 carries 23 040 bytes/s (10 bits per byte); rows/s = 23 040 /
  bytes per row, for a row of the firmware's 22 keys (text: the mean length of the emulator's
  lines, values with 3 decimals as the firmware prints them; binary: a COBS frame of 22
  float32 with header, CRC and delimiter) and for a single-channel row;
- measured: the firmware emulator on a pty, its writes paced to 230 400 baud 8N1, streaming
  faster than the link can carry, read by the stm32 driver; rows received per second.

Also: the line speed a 10 kHz row rate would need, and the driver's decoding rate (CPU only).

Run: ``.venv/bin/python bench/stm32_framing.py [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Literal

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from _common import machine_line, update_docs

from rigwatch.config.base import ChannelConfig
from rigwatch.devices.emulators.stm32 import FIRMWARE_KEYS, Stm32Emulator
from rigwatch.devices.stm32.codec import LineAssembler, SensorLineParser
from rigwatch.devices.stm32.device import Stm32Device, Stm32DeviceConfig
from rigwatch.devices.stm32.framing import Frame, FrameDecoder, bytes_per_sample

BAUD = 230_400
BYTES_PER_S = BAUD / 10  # 8N1: start bit, 8 data bits, stop bit
KEYS = list(FIRMWARE_KEYS)


def text_bytes_per_row(keys: list[str], rows: int = 2000) -> float:
    emu = Stm32Emulator(rate_hz=1000, channels=keys, physics=False)
    return float(np.mean([len(emu.format_line(emu.sample(i), decimals=3)) for i in range(rows)]))


def measure(framing: Literal["text", "binary"], seconds: float) -> dict[str, float]:
    """Rows/s through the emulator paced at BAUD and the driver, after a 0.5 s warm-up."""
    emu = Stm32Emulator(
        rate_hz=20_000,
        channels=KEYS,
        framing=framing,
        baudrate=BAUD,
        streaming=False,
    )
    path = emu.start()
    dev = Stm32Device(
        Stm32DeviceConfig(
            name="bench",
            driver="stm32",
            port=path,
            framing=framing,
            channels=[ChannelConfig(name=k) for k in KEYS],
            block_duration_s=0.05,
        )
    )
    dev.start()
    emu.start_stream()
    try:
        warm_end = time.monotonic() + 0.5
        while time.monotonic() < warm_end:
            dev.read_block(0.1)
        bytes0, rows, t0 = dev.bytes_received, 0, time.monotonic()
        while (elapsed := time.monotonic() - t0) < seconds:
            block = dev.read_block(0.1)
            rows += 0 if block is None else block.rows
        elapsed = time.monotonic() - t0
        received = dev.bytes_received - bytes0
    finally:
        emu.stop_stream()
        dev.stop()
        emu.stop()
    errors = {k: v for k, v in dev.counters.snapshot().items()}
    return {
        "rows_per_s": rows / elapsed,
        "bytes_per_s": received / elapsed,
        "errors": float(sum(errors.values())),
    }


def decode_rate(framing: Literal["text", "binary"], rows: int) -> float:
    """Rows/s the driver's decoder handles (CPU only, no I/O)."""
    emu = Stm32Emulator(rate_hz=1000, channels=KEYS, framing=framing, physics=False)
    data = b"".join(emu.encode_row(emu.sample(i), decimals=3) for i in range(rows))
    t0 = time.perf_counter()
    if framing == "binary":
        import struct

        unpack = struct.Struct(f"<{len(KEYS)}f").unpack
        n = sum(1 for f in FrameDecoder().feed(data) if isinstance(f, Frame) and unpack(f.payload))
    else:
        parser = SensorLineParser(KEYS)
        lines, _ = LineAssembler().feed(data)
        n = sum(1 for line in lines if parser.parse(line).kind == "sensor")
    return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="2 s per framing instead of 6 s")
    args = ap.parse_args()
    seconds = 2.0 if args.quick else 6.0

    text_row = text_bytes_per_row(KEYS)
    text_one = text_bytes_per_row(["P1"])
    bin_row = bytes_per_sample(len(KEYS))
    bin_one = bytes_per_sample(1)
    fig: dict[str, float] = {
        "baud": BAUD,
        "channels": len(KEYS),
        "text_bytes_per_row": round(text_row, 1),
        "binary_bytes_per_row": bin_row,
        "text_rows_per_s_computed": round(BYTES_PER_S / text_row, 1),
        "binary_rows_per_s_computed": round(BYTES_PER_S / bin_row, 1),
        "text_rows_per_s_1ch_computed": round(BYTES_PER_S / text_one, 1),
        "binary_rows_per_s_1ch_computed": round(BYTES_PER_S / bin_one, 1),
        "baud_for_10khz_binary": bin_row * 10 * 10_000,
        "baud_for_10khz_text": round(text_row * 10 * 10_000),
    }
    text = measure("text", seconds)
    binary = measure("binary", seconds)
    fig["text_rows_per_s_measured"] = round(text["rows_per_s"], 1)
    fig["binary_rows_per_s_measured"] = round(binary["rows_per_s"], 1)
    fig["text_link_bytes_per_s_measured"] = round(text["bytes_per_s"])
    fig["binary_link_bytes_per_s_measured"] = round(binary["bytes_per_s"])
    fig["errors_counted"] = text["errors"] + binary["errors"]
    n = 5_000 if args.quick else 20_000
    fig["text_decode_rows_per_s"] = round(decode_rate("text", n))
    fig["binary_decode_rows_per_s"] = round(decode_rate("binary", n))
    ratio = fig["binary_rows_per_s_measured"] / max(fig["text_rows_per_s_measured"], 1e-9)

    head = (
        "| framing | bytes/row | rows/s computed | rows/s measured | link bytes/s measured "
        "| 1-channel rows/s computed | baud for 10 kHz | decoder rows/s (CPU) |"
    )
    lines = [head, "|" + "---|" * 8]
    for name, bpr in (("text", fig["text_bytes_per_row"]), ("binary", bin_row)):
        cells = [
            name,
            f"{bpr}",
            f"{fig[name + '_rows_per_s_computed']}",
            f"**{fig[name + '_rows_per_s_measured']}**",
            f"{fig[name + '_link_bytes_per_s_measured']}",
            f"{fig[name + '_rows_per_s_1ch_computed']}",
            f"{fig['baud_for_10khz_' + name]:,}",
            f"{fig[name + '_decode_rows_per_s']:,}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    table = "\n".join(lines)
    cmd = ".venv/bin/python bench/stm32_framing.py" + (" --quick" if args.quick else "")
    md = f"""## STM32 framing (`bench/stm32_framing.py`)

Command: `{cmd}`. Machine: {machine_line()}.

Sensor rows per second over the test stand's UART, 230 400 baud 8N1 = 23 040 bytes/s. A row
is the firmware's {len(KEYS)} keys (text: `KEY: VALUE | ...` with 3 decimals, as the board prints;
binary: COBS frame of {len(KEYS)} float32 + type, sequence, CRC-16 and delimiter,
`docs/firmware-protocol.md`). Measured: the firmware emulator on a pty with its writes paced
to 230 400 baud, streaming faster than the link carries, read by the `stm32` driver for
{seconds:g} s.

{table}

Binary framing carries {ratio:.1f}x the rows of text for the full row; errors counted:
{fig["errors_counted"]:g}.
Neither reaches 10 kHz at 230 400 baud: a full binary row at 10 kHz needs
{fig["baud_for_10khz_binary"] / 1e6:.2f} Mbaud (the STM32F767's USART goes far beyond that; the
ST-Link virtual COM port does not), or fewer channels per row; a single float32 channel reaches
{fig["binary_rows_per_s_1ch_computed"]:g} rows/s at 230 400 baud.
"""
    update_docs("stm32-framing", md)
    print(json.dumps(fig))


if __name__ == "__main__":
    main()
