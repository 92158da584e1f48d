"""The slow tests (``pytest -m slow``, ``make slow``): long runs of real worker, scheduler and
``blueque_run`` processes, and the admin over a big queue. They share the suite's Redis (the
``redis_url`` fixture) and the worker tests' process fixtures, imported here so that pytest
finds them for this folder too."""

from tests.workers.conftest import blueque, spawn_scheduler, spawn_worker

__all__ = ["blueque", "spawn_scheduler", "spawn_worker"]
