"""A module outside every project package: importing it leaves a mark (the file named by
``BLUEQUE_TEST_SNEAKY_MARK``), so a test can tell that a task path read from Redis never imported it."""

import os
from pathlib import Path

Path(os.environ.get("BLUEQUE_TEST_SNEAKY_MARK", os.devnull)).write_text("imported")


def run() -> None:
    """Not a Django task: a plain function a hostile task path may name."""
