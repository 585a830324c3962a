"""A manifest worker run as a child process by the pipeline manifest's tests.

Usage: ``pipeline_manifest_worker.py MODE TARGET [--schema S] [--name N] [--lease-s L]``

- ``drain``: print ``{"ready": true}``, wait for a line on stdin, then claim and complete
  ``process`` items in batches (each taking ``--work-s``) until none is left; print
  ``{"done": [...], "refused": [...]}``.
- ``hold``: claim one batch, print ``{"claimed": [...]}`` and wait on stdin forever (the test
  kills it).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from rigwatch.pipeline.manifest import Manifest, worker_id


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["drain", "hold"])
    parser.add_argument("target")
    parser.add_argument("--schema", default=None)
    parser.add_argument("--name", default="worker")
    parser.add_argument("--lease-s", type=float, default=30.0)
    parser.add_argument("--batch", type=int, default=10)
    parser.add_argument("--work-s", type=float, default=0.0, help="time one batch's work takes")
    args = parser.parse_args()
    manifest = Manifest.open(args.target, schema=args.schema, lease_s=args.lease_s)
    owner = worker_id(args.name)
    if args.mode == "hold":
        leases = manifest.claim("process", owner, limit=args.batch)
        print(json.dumps({"claimed": [x.artifact_id for x in leases], "owner": owner}))
        sys.stdout.flush()
        sys.stdin.readline()
        return
    print(json.dumps({"ready": True}))
    sys.stdout.flush()
    sys.stdin.readline()
    done: list[int] = []
    refused: list[int] = []
    while leases := manifest.claim("process", owner, limit=args.batch):
        if args.work_s:
            time.sleep(args.work_s)  # the work on the batch
        outcome = manifest.complete_many([(x, {"by": owner}) for x in leases])
        done += outcome.done
        refused += outcome.refused
    print(json.dumps({"done": done, "refused": refused, "owner": owner}))
    manifest.close()


if __name__ == "__main__":
    main()
