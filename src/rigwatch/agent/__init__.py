"""Agent: the store-and-forward reporter on each machine computer (Windows 10 or Linux).

It samples sensor plug-ins (:mod:`~rigwatch.agent.sensors`) and the computer's system info
(:mod:`~rigwatch.agent.system_info`) every ``interval_s``, commits each status message (wire
schema v1) to a local SQLite outbox (:mod:`~rigwatch.agent.outbox`) and delivers the outbox to
the fleet server over HTTP or MQTT (:mod:`~rigwatch.agent.sender`), in order and at least once.
:mod:`~rigwatch.agent.run` is the main loop, :mod:`~rigwatch.agent.cli` the ``rigwatch agent``
commands. ``docs/agent.md`` covers installation as a Windows service or a systemd unit.

Layer rule (docs/architecture.md): uses ``config``, ``recordings`` and ``wire``; never
``station``, ``web``, ``acquisition``, ``devices`` or ``fleet``.
"""
