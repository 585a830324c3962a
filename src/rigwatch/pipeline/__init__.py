"""Pipeline: durable, local-first processing of artifacts (planned).

Layer rule (docs/architecture.md): uses ``config``, ``recordings`` and ``wire``; never
``station``, ``web``, ``acquisition`` or ``devices``.
"""
