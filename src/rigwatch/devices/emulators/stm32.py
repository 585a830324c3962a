"""Emulator of the test stand's STM32F767ZI firmware, on the master side of a pseudo-terminal.

It speaks the protocol the real board speaks (facts from the firmware the stand runs today):

- sensor lines ``P1: v | ... | P8: v | T1: v | ... | T6: v | Tbogaz1: v | THRUST: v | ISP: v |
  Tbogaz2: v | D1: v | D2: v | IMPULSE: v | VELOCITY: v`` terminated by ``\\n`` (or ``\\r\\n``);
- ``Valves:<9 bits>`` commands (the valve bank, outputs in the order of
  :data:`~rigwatch.devices.stm32.codec.VALVE_BITS`) answered ``ACK: Valves:<bits>``;
- scenario words (``o2cleaning`` ... ``emergency``) answered ``ACK: <word>``, after which the
  board runs the sequence behind the word (:data:`FIRMWARE_SEQUENCES`: the real firmware's
  sequences were never written down, these are the emulator's); a new word or valve command
  cancels a running sequence;
- any other command answered ``NACK: unknown command <cmd>``.

With ``physics=True`` (the default) the pressures ``P1`` (oxidiser line), ``P2`` (fuel line),
``P3``-``P5`` (chamber, three transducers) and ``THRUST`` follow the valves through a
first-order-lag model of the stand (:mod:`rigwatch.devices.emulators.stand_plant`), advanced by
``1 / rate_hz`` per streamed line;
the other keys carry synthetic signals. Setting :attr:`Stm32Emulator.silent` makes the board
stop answering (commands are logged, neither executed nor acknowledged), as a hung board does.

With ``framing="binary"`` the board sends its rows and replies as COBS frames with a CRC-16
(:mod:`rigwatch.devices.stm32.framing`, ``docs/firmware-protocol.md``): one float32 per key
of ``channels``, in that order, and one sequence number per frame; commands stay text lines.

The slave side (``start()`` returns its path, e.g. ``/dev/pts/7``) is opened by the driver
exactly like the board's ``/dev/ttyACM0``. The pty is in raw mode, so no byte is translated and
commands are not echoed. A pty does not throttle: bytes arrive as fast as written, unless
``baudrate`` is given, in which case every write is paced to that UART speed (8N1: 10 bits per
byte), as the board's UART would.

Tests use :meth:`Stm32Emulator.emit_lines` (exact values) and :meth:`Stm32Emulator.inject`
(arbitrary raw bytes: malformed or oversized lines, non-UTF-8 junk, a line split in two
writes). Run ``python -m rigwatch.devices.emulators.stm32 --rate 100`` to get a live board.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import os
import queue
import re
import select
import threading
import time
import tty
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Literal

from rigwatch.devices.emulators.stand_plant import StandPlant
from rigwatch.devices.stm32.codec import SCENARIO_WORDS, VALVE_BITS
from rigwatch.devices.stm32.framing import FRAME_REPLY, encode_frame, encode_sample

log = logging.getLogger(__name__)

FIRMWARE_KEYS: tuple[str, ...] = (
    *(f"P{i}" for i in range(1, 9)),
    *(f"T{i}" for i in range(1, 7)),
    "Tbogaz1",
    "THRUST",
    "ISP",
    "Tbogaz2",
    "D1",
    "D2",
    "IMPULSE",
    "VELOCITY",
)
"""The keys of a sensor line, in the order the firmware prints them."""

VALVE_COMMAND_RE = re.compile(r"Valves:[01]{9}")
"""A valid valve command: ``Valves:`` then one bit per valve (9 valves)."""

RowValues = Mapping[str, float | str] | Sequence[float | str]


def bits_of(*names: str) -> str:
    """The 9-bit valve word with the outputs ``names`` energised, the others off."""
    unknown = set(names) - set(VALVE_BITS)
    if unknown:
        raise ValueError(f"unknown outputs {sorted(unknown)}; outputs: {', '.join(VALVE_BITS)}")
    return "".join("1" if v in names else "0" for v in VALVE_BITS)


SAFE_BITS = bits_of("RELIEF1", "RELIEF2", "PURGE1", "PURGE2")
"""What the emulated board's ``emergency`` sequence ends in: propellants and ignition off,
vents and purges open."""

FIRMWARE_SEQUENCES: dict[str, tuple[tuple[float, str], ...]] = {
    "o2cleaning": (
        (0.0, bits_of("GOX1", "GOX2")),
        (2.0, bits_of()),
    ),
    "fuelcleaning": (
        (0.0, bits_of("FUEL1", "FUEL2")),
        (2.0, bits_of()),
    ),
    "preburning": (
        (0.0, bits_of("PURGE1", "PURGE2", "GOX2", "FUEL2")),
        (1.0, bits_of()),
    ),
    "burningstart": (
        (0.0, bits_of("GOX1", "GOX2")),
        (0.3, bits_of("GOX1", "GOX2", "IGNITION")),
        (0.2, bits_of("GOX1", "GOX2", "FUEL1", "FUEL2", "IGNITION")),
        (0.5, bits_of("GOX1", "GOX2", "FUEL1", "FUEL2")),
    ),
    "burning": ((0.0, bits_of("GOX1", "GOX2", "FUEL1", "FUEL2")),),
    "emergency": (
        (0.0, bits_of("RELIEF1", "RELIEF2")),
        (0.0, SAFE_BITS),
    ),
}
"""The emulated firmware's sequence for each scenario word: ``(delay before this step in
seconds, 9-bit valve word)``. Invented for the emulator (the board's were never written down);
rigwatch's own scenarios (``configs/scenarios``) do not rely on them."""


def _signal(key: str, k: int, t: float) -> float:
    """Plausible, deterministic value of ``key`` (the ``k``-th key) at ``t`` seconds."""
    w = 2.0 * math.pi
    if key.startswith("Tbogaz"):
        return 350.0 + 40.0 * math.sin(w * 0.05 * t + k)  # throat temperature, degC
    if re.fullmatch(r"P\d+", key):
        return 20.0 + 10.0 * math.sin(w * 0.2 * t + 0.6 * k)  # pressure, bar
    if re.fullmatch(r"T\d+", key):
        return 22.0 + 3.0 * k + 1.5 * math.sin(w * 0.03 * t + k)  # temperature, degC
    if re.fullmatch(r"D\d+", key):
        return 0.8 + 0.05 * math.sin(w * 0.3 * t + k)
    if key == "THRUST":
        return 1500.0 + 120.0 * math.sin(w * 0.5 * t)  # N
    if key == "ISP":
        return 190.0 + 6.0 * math.sin(w * 0.1 * t)  # s
    if key == "IMPULSE":
        return 1500.0 * t  # N s, accumulates
    if key == "VELOCITY":
        return 2.5 * math.sin(w * 0.25 * t)
    return math.sin(w * 0.5 * t + k)


class Stm32Emulator:
    """A fake STM32 test-stand board behind a pseudo-terminal.

    Args:
        rate_hz: sensor lines per second written by the streaming thread; 0 writes none (only
            what :meth:`emit_lines` and :meth:`inject` write).
        channels: keys of each sensor line, in order (default: the firmware's
            :data:`FIRMWARE_KEYS`).
        line_ending: ``"\\n"`` or ``"\\r\\n"``.
        decimals: decimals of streamed values (``%.3f`` like the firmware's ``printf``).
        streaming: start streaming in :meth:`start`; when False, call :meth:`start_stream`.
        on_command: called (from the emulator's reader thread) with each command received.
        physics: ``P1``-``P5`` and ``THRUST`` follow the valves (see the module docstring).
        framing: ``"text"`` (lines) or ``"binary"`` (COBS frames with CRC-16).
        baudrate: pace writes to this UART speed (8N1); None writes as fast as the pty takes.

    Attributes:
        commands: every command line received (without ``\\n``), in order.
        valves: the valve bits applied now (``"000000000"`` at power-up).
        valve_log: every valve word applied, in order (commands and sequence steps).
        silent: when True the board stops answering (a hung board).
        refusing: when set, valve commands are answered ``NACK: <refusing>`` and not applied
            (a board refusing, e.g. in its own safe mode).
        plant: the physical model behind ``P1``-``P5`` and ``THRUST``.
        lines_sent: sensor lines written so far (streamed and emitted).
    """

    def __init__(
        self,
        rate_hz: float = 100.0,
        channels: Sequence[str] = FIRMWARE_KEYS,
        *,
        line_ending: str = "\n",
        decimals: int = 3,
        streaming: bool = True,
        on_command: Callable[[str], None] | None = None,
        physics: bool = True,
        framing: Literal["text", "binary"] = "text",
        baudrate: int | None = None,
    ) -> None:
        if rate_hz < 0 or not math.isfinite(rate_hz):
            raise ValueError(f"rate_hz must be >= 0, got {rate_hz}")
        if not channels:
            raise ValueError("at least one channel key is needed")
        if framing not in ("text", "binary"):
            raise ValueError(f"framing must be 'text' or 'binary', got {framing!r}")
        if baudrate is not None and baudrate <= 0:
            raise ValueError(f"baudrate must be > 0, got {baudrate}")
        if line_ending not in ("\n", "\r\n"):
            raise ValueError(f"line_ending must be '\\n' or '\\r\\n', got {line_ending!r}")
        self.rate_hz = float(rate_hz)
        self.channels: tuple[str, ...] = tuple(channels)
        self.line_ending = line_ending
        self.decimals = decimals
        self.streaming = streaming
        self.on_command = on_command
        self.commands: queue.Queue[str] = queue.Queue()
        self.valves = "0" * len(VALVE_BITS)
        self.valve_log: list[str] = []
        self.silent = False
        self.refusing: str | None = None
        self.physics = physics
        self.framing = framing
        self.baudrate = baudrate
        self.bytes_sent = 0
        self._seq = 0
        self._wire_free_at = 0.0
        self.plant = StandPlant()
        self._plant_lock = threading.Lock()
        self._sequence_cancel = threading.Event()
        self._sequence_thread: threading.Thread | None = None
        self.lines_sent = 0
        self.path: str | None = None
        self._master: int | None = None
        self._slave: int | None = None
        self._write_lock = threading.RLock()  # held while a frame takes its sequence number
        self._closing = threading.Event()
        self._stream_stop = threading.Event()
        self._stream_thread: threading.Thread | None = None
        self._reader_thread: threading.Thread | None = None
        self._stream_index = 0

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> str:
        """Create the pty, start answering commands (and streaming if enabled).

        Returns:
            The path of the slave tty to open as the serial port (``os.ttyname``).
        """
        if self._master is not None:
            assert self.path is not None
            return self.path
        master, slave = os.openpty()
        tty.setraw(slave)  # no newline translation, no echo of commands
        os.set_blocking(master, False)
        self._master, self._slave = master, slave
        self.path = os.ttyname(slave)
        self._closing.clear()
        self._reader_thread = threading.Thread(
            target=self._read_commands, name="stm32-emulator-commands", daemon=True
        )
        self._reader_thread.start()
        if self.streaming and self.rate_hz > 0:
            self.start_stream()
        log.info("STM32 emulator on %s (%.1f lines/s)", self.path, self.rate_hz)
        return self.path

    def start_stream(self) -> None:
        """Start writing ``rate_hz`` sensor lines per second (values of :meth:`sample`)."""
        if self._master is None:
            raise RuntimeError("emulator is not started")
        if self.rate_hz <= 0 or (self._stream_thread and self._stream_thread.is_alive()):
            return
        self._stream_stop.clear()
        self._stream_thread = threading.Thread(
            target=self._stream, name="stm32-emulator-stream", daemon=True
        )
        self._stream_thread.start()

    def stop_stream(self) -> None:
        """Stop the periodic sensor lines (the emulator keeps answering commands)."""
        self._stream_stop.set()
        if self._stream_thread is not None:
            self._stream_thread.join(2.0)
            self._stream_thread = None

    def stop(self) -> None:
        """Stop the threads and close the pty; a program holding the slave then sees the port
        vanish (read errors). Safe to call twice."""
        self._closing.set()
        self._sequence_cancel.set()
        self.stop_stream()
        if self._reader_thread is not None:
            self._reader_thread.join(2.0)
            self._reader_thread = None
        with self._write_lock:
            for fd in (self._master, self._slave):
                if fd is not None:
                    with contextlib.suppress(OSError):
                        os.close(fd)
            self._master = self._slave = None

    def __enter__(self) -> Stm32Emulator:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what the board writes -------------------------------------------------------------------

    def sample(self, n: int) -> dict[str, float]:
        """Values of the ``n``-th streamed line, as the driver will parse them (rounded to
        ``decimals``): ``{key: value}`` in line order."""
        t = n / (self.rate_hz if self.rate_hz > 0 else 100.0)
        physical: dict[str, float] = {}
        if self.physics:
            with self._plant_lock:
                physical = self.plant.outputs()
        out = {}
        for k, key in enumerate(self.channels):
            if key in physical:  # the plant's value with a 0.5 % ripple (flow noise)
                x = physical[key]
                value = x * (1.0 + 0.005 * math.sin(2.0 * math.pi * 7.3 * t + k))
            else:
                value = _signal(key, k, t)
            out[key] = float(f"{value:.{self.decimals}f}")
        return out

    def advance_plant(self, dt_s: float) -> dict[str, float]:
        """Move the physical model ``dt_s`` seconds forward (the stream does it per line);
        returns the plant's outputs (``P1``-``P5``, ``THRUST``)."""
        with self._plant_lock:
            self.plant.advance(dt_s)
            return self.plant.outputs()

    def format_line(self, values: RowValues, decimals: int | None = None) -> bytes:
        """One sensor line ``KEY: VALUE | ...`` plus the line ending, as bytes.

        Args:
            values: ``{key: value}`` (keys in the order given, any subset or extra keys), or
                one value per key of ``channels``. A ``str`` value is written verbatim (to craft
                malformed fields); a number is written with ``repr`` (exact round trip) or with
                ``decimals`` decimals.
        """
        if isinstance(values, Mapping):
            items = list(values.items())
        else:
            if len(values) != len(self.channels):
                raise ValueError(f"{len(values)} values for {len(self.channels)} channels")
            items = list(zip(self.channels, values, strict=True))
        fields = []
        for key, v in items:
            if isinstance(v, str):
                text = v
            elif decimals is None:
                text = repr(float(v))
            else:
                text = f"{float(v):.{decimals}f}"
            fields.append(f"{key}: {text}")
        return (" | ".join(fields) + self.line_ending).encode("utf-8")

    def encode_row(self, values: RowValues, decimals: int | None = None) -> bytes:
        """One sensor row as the board sends it: a line (:meth:`format_line`) or, with binary
        framing, a sample frame (float32 per key of ``channels``, NaN for keys ``values``
        lacks; extra keys ignored), which takes the next sequence number.

        Raises:
            ValueError: binary framing and a ``str`` value (text cannot be framed as float32).
        """
        if self.framing == "text":
            return self.format_line(values, decimals)
        if isinstance(values, Mapping):
            row = [values.get(k, math.nan) for k in self.channels]
        else:
            if len(values) != len(self.channels):
                raise ValueError(f"{len(values)} values for {len(self.channels)} channels")
            row = list(values)
        if any(isinstance(v, str) for v in row):
            raise ValueError("binary frames carry numbers only; use inject() for junk")
        with self._write_lock:
            seq = self.take_seq()
            return encode_sample(seq, [float(v) for v in row])

    def take_seq(self) -> int:
        """The next frame sequence number (0..65535), consumed."""
        with self._write_lock:
            seq = self._seq
            self._seq = (seq + 1) & 0xFFFF
            return seq

    def emit_lines(self, rows: Iterable[RowValues]) -> None:
        """Write one sensor line (or sample frame) per row, with exactly these values (see
        :meth:`encode_row`), in a single write. Returns once the bytes are in the pty."""
        rows = list(rows)
        with self._write_lock:
            data = b"".join(self.encode_row(r) for r in rows)
            self._write_all(data)
        self.lines_sent += len(rows)

    def inject(self, data: bytes) -> None:
        """Write raw bytes as they are (partial lines, junk, oversized lines...)."""
        self._write_all(bytes(data))

    # -- internals -------------------------------------------------------------------------------

    def _write_all(self, data: bytes) -> None:
        view = memoryview(data)
        with self._write_lock:
            if self.baudrate is not None:  # the UART is busy for 10 bits per byte (8N1)
                now = time.monotonic()
                self._wire_free_at = max(now, self._wire_free_at) + len(data) * 10 / self.baudrate
            self.bytes_sent += len(data)
            while view:
                fd = self._master
                if fd is None or self._closing.is_set():
                    raise RuntimeError("emulator is stopped")
                try:
                    n = os.write(fd, view)
                except BlockingIOError:  # pty buffer full: wait for the reader to drain it
                    select.select([], [fd], [], 0.1)
                    continue
                view = view[n:]
            if self.baudrate is not None:
                pause = self._wire_free_at - time.monotonic()
                if pause > 0:
                    time.sleep(pause)  # the UART's pace, not a synchronisation

    def _stream(self) -> None:
        period = 1.0 / self.rate_hz
        next_t = time.monotonic()
        while not self._stream_stop.is_set():
            delay = next_t - time.monotonic()
            if delay > 0 and self._stream_stop.wait(delay):
                return
            if self.physics:
                self.advance_plant(period)
            try:
                with self._write_lock:
                    self._write_all(
                        self.encode_row(self.sample(self._stream_index), decimals=self.decimals)
                    )
            except (RuntimeError, OSError):
                return
            self._stream_index += 1
            self.lines_sent += 1
            next_t += period
            if time.monotonic() - next_t > 1.0:  # fell far behind (suspended?): resync
                next_t = time.monotonic()

    def _read_commands(self) -> None:
        buf = bytearray()
        while not self._closing.is_set():
            fd = self._master
            if fd is None:
                return
            try:
                ready, _, _ = select.select([fd], [], [], 0.1)
                if not ready:
                    continue
                chunk = os.read(fd, 4096)
            except BlockingIOError:
                continue
            except OSError:
                return
            if not chunk:
                return
            buf += chunk
            *lines, rest = bytes(buf).split(b"\n")
            buf = bytearray(rest)
            for line in lines:
                cmd = line.rstrip(b"\r").decode("utf-8", errors="backslashreplace").strip()
                if cmd:
                    self._answer(cmd)

    def _apply_valves(self, bits: str) -> None:
        with self._plant_lock:
            self.valves = bits
            self.valve_log.append(bits)
            self.plant.set_valves(
                {name: b == "1" for name, b in zip(VALVE_BITS, bits, strict=True)}
            )

    def _run_sequence(self, word: str, cancel: threading.Event) -> None:
        for delay_s, bits in FIRMWARE_SEQUENCES[word]:
            if delay_s > 0 and cancel.wait(delay_s):
                return
            if cancel.is_set():
                return
            self._apply_valves(bits)
        log.info("emulated firmware finished %s", word)

    def _start_sequence(self, word: str) -> None:
        self._sequence_cancel.set()  # a new word cancels the running sequence
        if (
            self._sequence_thread is not None
            and self._sequence_thread is not threading.current_thread()
        ):
            self._sequence_thread.join(2.0)
        cancel = threading.Event()
        self._sequence_cancel = cancel
        self._sequence_thread = threading.Thread(
            target=self._run_sequence,
            args=(word, cancel),
            name=f"stm32-emulator-{word}",
            daemon=True,
        )
        self._sequence_thread.start()

    def _answer(self, cmd: str) -> None:
        self.commands.put(cmd)
        if self.on_command is not None:
            self.on_command(cmd)
        if self.silent:
            log.debug("emulator is silent: %r neither executed nor answered", cmd)
            return
        start_word = None
        if VALVE_COMMAND_RE.fullmatch(cmd) and self.refusing is not None:
            reply = f"NACK: {self.refusing}"
        elif VALVE_COMMAND_RE.fullmatch(cmd):
            self._sequence_cancel.set()  # a direct command overrides a running sequence
            self._apply_valves(cmd.split(":", 1)[1])
            reply = f"ACK: {cmd}"
        elif cmd in SCENARIO_WORDS:
            reply = f"ACK: {cmd}"
            start_word = cmd
        else:
            reply = f"NACK: unknown command {cmd}"
        try:
            with self._write_lock:
                if self.framing == "binary":
                    data = encode_frame(FRAME_REPLY, self.take_seq(), reply.encode("utf-8"))
                else:
                    data = (reply + self.line_ending).encode("utf-8")
                self._write_all(data)
        except (RuntimeError, OSError):
            log.debug("emulator stopped before answering %r", cmd)
            return
        if start_word is not None:  # acknowledged first, then run, as the firmware does
            self._start_sequence(start_word)


def main(argv: Sequence[str] | None = None) -> int:
    """Run an emulated board until Ctrl-C; prints the tty path to put in the station config."""
    parser = argparse.ArgumentParser(
        prog="python -m rigwatch.devices.emulators.stm32",
        description="Emulate the test stand's STM32 board on a pseudo-terminal.",
    )
    parser.add_argument("--rate", type=float, default=100.0, help="sensor lines per second")
    parser.add_argument(
        "--channels",
        default=",".join(FIRMWARE_KEYS),
        help="comma-separated keys of a sensor line (default: the firmware's 24 keys)",
    )
    parser.add_argument("--crlf", action="store_true", help="end lines with \\r\\n")
    parser.add_argument("--decimals", type=int, default=3, help="decimals of values")
    parser.add_argument(
        "--binary", action="store_true", help="send COBS/CRC-16 binary frames instead of lines"
    )
    parser.add_argument(
        "--baud", type=int, default=None, help="pace the output to this UART speed (8N1)"
    )
    args = parser.parse_args(argv)
    channels = [c.strip() for c in args.channels.split(",") if c.strip()]
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    emulator = Stm32Emulator(
        rate_hz=args.rate,
        channels=channels,
        line_ending="\r\n" if args.crlf else "\n",
        decimals=args.decimals,
        on_command=lambda cmd: print(f"command: {cmd}", flush=True),
        framing="binary" if args.binary else "text",
        baudrate=args.baud,
    )
    path = emulator.start()
    print(path, flush=True)
    print(f"emulating the STM32 board at {args.rate:g} lines/s; Ctrl-C to stop", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        emulator.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
