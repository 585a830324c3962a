"""Agent: the store-and-forward reporter on each machine computer (planned).

Layer rule (docs/architecture.md): uses ``config``, ``recordings`` and ``wire``; never
``station``, ``web``, ``acquisition`` or ``devices``.
"""
