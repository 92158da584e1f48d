"""The demo project's settings plus one raw periodic task, for ``test_scheduler_processes.py``.

Its schedulers run with ``DJANGO_SETTINGS_MODULE=tests.workers.periodic_settings`` and the
repository root and ``testproject/`` on ``PYTHONPATH``.
"""

from testproject.settings import *  # noqa: F403

BLUEQUE = {
    **BLUEQUE,  # noqa: F405
    "SCHEDULE": {"every-second": {"QUEUE": "periodic", "PARAMETERS": "tick", "EVERY": 1}},
}
