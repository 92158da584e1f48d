"""The demo project's settings plus one raw periodic task, for ``scheduler_failover.py``.

The schedulers it starts run with ``DJANGO_SETTINGS_MODULE=bench.failover_settings`` and
the repository root and ``testproject/`` on ``PYTHONPATH``.
"""

from testproject.settings import *  # noqa: F403

BLUEQUE = {
    **BLUEQUE,  # noqa: F405
    "SCHEDULE": {"every-second": {"QUEUE": "periodic", "PARAMETERS": "tick", "EVERY": 1}},
}
