"""Acoustic camera: array geometry, focus grids, cross-spectral matrix, beamformers, listening
to a point."""
