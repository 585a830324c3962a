"""Wire: versioned message schemas shared by the agent, the fleet and the reporters (planned).

Layer rule (docs/architecture.md): imports only ``config``, ``recordings`` and the value types.
"""
