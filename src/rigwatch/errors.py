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


class AcousticsError(RigwatchError):
    """The acoustic camera was given input it cannot process (geometry, grid, band, signal)."""


class GeometryError(AcousticsError):
    """A microphone geometry or focus grid is unreadable or inconsistent.

    Examples: a file without microphone positions, a geometry whose microphone count does not
    match the channel count of the data, grid points behind or on the array plane.
    """


class BandError(AcousticsError):
    """A frequency band cannot be evaluated: above Nyquist, narrower than one FFT bin, empty."""


class SignalError(AcousticsError):
    """Microphone data holds NaN/inf samples, clipped channels, or has the wrong shape."""


class DeadMicrophoneError(SignalError):
    """A microphone channel is dead (flat or far below the others); it names the channels."""

    def __init__(self, message: str, channels: tuple[int, ...]) -> None:
        super().__init__(message)
        self.channels = channels


class PipelineError(RigwatchError):
    """The pipeline could not do what was asked: its manifest, a stage, an analysis or a
    backup."""


class AnalysisError(PipelineError):
    """An analysis plugin was given input it cannot analyse; the message names what and why."""


class ImageError(AnalysisError):
    """An image is missing, corrupt, truncated, of an unsupported mode, or of the wrong size."""


class RoiManifestError(AnalysisError):
    """An ROI manifest is unreadable, malformed, or its ROIs do not fit the image."""


class CalibrationError(AnalysisError):
    """Gratings could not be located: bad feature locations, unknown chip type, bad chip map."""


class AgentError(RigwatchError):
    """The agent could not keep, read or send a message (its outbox, a sensor plugin, a
    transport)."""


class OutboxError(AgentError):
    """The agent's local outbox cannot be opened or written, or a message does not fit in it."""


class ManifestError(PipelineError):
    """The pipeline's manifest cannot be opened, migrated or queried, or a request to it is
    invalid (unknown stage, unknown artifact...). The message names the database and reason."""


class ManifestLocationError(ManifestError):
    """A SQLite manifest was asked for on a network file system (NFS, SMB/CIFS, SSHFS...):
    SQLite's WAL needs one host's shared memory and locks, so the manifest must be local."""


class DuplicateArtifact(ManifestError):
    """An artifact with the same path is already in the manifest."""


class LeaseLost(PipelineError):
    """A worker reported on an item whose lease it no longer holds (the lease expired and
    another worker claimed the item, or the item was released): the report is refused."""


class BackupError(PipelineError):
    """An online backup of the manifest could not be made or verified."""


class WireError(ProtocolError):
    """A wire message (a machine's status, a batch) failed validation.

    Attributes:
        problems: one ``{"field", "message", "type"}`` per bad field; ``field`` is a dotted
            path (``sensor_data.temperature``, ``messages[2].timestamp``).
    """

    def __init__(self, message: str, problems: list[dict[str, str]] | None = None) -> None:
        super().__init__(message)
        self.problems: list[dict[str, str]] = list(problems or [])


class FleetError(RigwatchError):
    """The fleet server refused a request or could not carry it out."""


class RulesError(FleetError):
    """A rule set is invalid (a threshold on the wrong side, a duplicate rule id)."""


class AlertError(FleetError):
    """An alert action that is not allowed (acknowledging a cleared alert, an unknown id)."""


class NotifyError(FleetError):
    """A notification (webhook, e-mail) could not be delivered."""


class FleetStoreError(FleetError):
    """The fleet's database refused or failed an operation (an unknown machine, a duplicate id,
    a failed migration); the message names the object and the reason."""


class FleetAuthError(FleetError):
    """A request's credentials were refused (unknown, revoked or wrong key; bad password or
    token)."""


class FleetForbidden(FleetAuthError):
    """Valid credentials that do not allow the action (a role too low, a machine's key used for
    another machine)."""


class ControlError(RigwatchError):
    """The control part (actuators, scenarios, runner, redlines, interlocks) failed or refused."""


class CommandRefused(ControlError):
    """A command was refused before anything moved (unknown actuator, value out of range,
    an interlock, no control authority); the message says which rule and why."""


class InvalidCommand(CommandRefused):
    """A command that cannot be carried out as given, whatever the stand's state: it names no
    actuator, an unknown one, or a value an actuator cannot take (the message says which it
    can). Raised before any interlock is looked at, so a caller tells a malformed command from
    one a rule refused (an interlock, the arming rule: a plain
    :class:`CommandRefused`)."""


class TransitionRefused(ControlError):
    """A scenario runner transition that its table does not allow; the message names the
    current state, the request and the transitions allowed from there."""


class ActuatorFault(ControlError):
    """An actuator did not acknowledge a command (``NACK``, no reply within the timeout after
    its retries, connection lost); the message names the device and the command."""


class StageError(PipelineError):
    """A pipeline stage cannot go on with an item or at all (its source, its destination)."""


class StageWaiting(StageError):
    """A stage must wait for something outside it (a share that is away, a full disk); the
    message says what. The stage gives its items back and retries later; nothing failed."""


class CameraError(StageError):
    """A camera could not be opened or did not deliver a frame; the message names it."""


class SensorError(StageError):
    """A sensor (a DS18B20 on the one-wire bus) could not be read: missing, bad CRC after its
    retries, or a reading out of range."""


class DeliveryError(StageError):
    """A reporter handler could not deliver a result (server away, refused write)."""


class BadItem(StageError):
    """An artifact no retry will fix (a corrupt image, a missing file, a checksum that does not
    match): its stage ends ``failed`` with this message at once."""


class AuthorityRefused(CommandRefused):
    """A command from a client that does not hold the station's control authority (nobody
    holds it, another client does, or the lease given expired); the message names the holder
    and how to request it.

    Attributes:
        holder: the client holding authority now ("" when nobody does).
    """

    def __init__(self, message: str, holder: str = "") -> None:
        super().__init__(message)
        self.holder = holder
