"""Exception family of rigwatch.

Every part raises a subclass of :class:`RigwatchError`, so callers can catch the family of the
part they talk to (configuration, devices, recordings, recording) without catching bugs.
"""

from __future__ import annotations


class RigwatchError(Exception):
    """Base of every error rigwatch raises on purpose."""


class ConfigError(RigwatchError):
    """A configuration file is missing, unreadable or invalid.

    The message names the file, the key (dotted path) and the reason.
    """


class DeviceError(RigwatchError):
    """A device could not be opened, configured or read."""


class RecordingError(RigwatchError):
    """A recording file cannot be found, read, queried or exported."""


class FormatError(RecordingError):
    """A recording file is truncated, of an unknown layout or holds the wrong dtype."""


class RecorderError(RigwatchError):
    """A recording segment could not be written or recovered."""


class DiskFull(RecorderError):
    """The recordings' file system is full, or below the configured free-space floor."""


class ProtocolError(RigwatchError):
    """A frame or message on a wire (serial line, WebSocket) is malformed."""


class StationError(RigwatchError):
    """A station refused a request (a mode change it does not allow...)."""


class ModeRefused(StationError):
    """A mode change that is not allowed; the message says why and what is allowed."""
