"""rigwatch: acquisition, recording, live streaming and control for instrumented machines."""

__version__ = "0.1.0"
