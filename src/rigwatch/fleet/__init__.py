"""Fleet: the central server of machines, rules, alerts, history and live updates (docs/fleet.md).

Layer rule (docs/architecture.md): uses ``config``, ``recordings`` and ``wire``; never
``station``, ``web``, ``acquisition`` or ``devices``; never ``agent`` or ``pipeline`` (they meet
the fleet only over the wire).
"""
