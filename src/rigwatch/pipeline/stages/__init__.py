"""The pipeline's stages: collector, processor, reporter, compressor, syncer, retention.

Each runs as its own process (``rigwatch pipeline run STAGE --config FILE``, or all of them
under ``rigwatch pipeline up``); they meet only in the manifest. :mod:`.worker` holds the loop
they share (claim with a lease, heartbeat, record, release on SIGINT/SIGTERM).
"""
