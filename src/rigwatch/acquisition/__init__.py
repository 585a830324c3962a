"""Acquisition: ring buffer, engine, recorder, live hub and recording file formats."""
