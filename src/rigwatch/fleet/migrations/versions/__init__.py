"""Revisions of the fleet's schema, oldest first."""
