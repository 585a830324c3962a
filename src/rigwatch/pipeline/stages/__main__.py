"""``python -m rigwatch.pipeline.stages STAGE CONFIG``: one stage process."""

from rigwatch.pipeline.stages.run import main

main()
