"""The worker tests' settings, with Redis found through the sentinels named in
``BLUEQUE_TEST_SENTINELS`` (``port,port,...`` on 127.0.0.1), for scenario 8."""

import os

from tests.workers.receivers.settings import *  # noqa: F403
from tests.workers.receivers.settings import BLUEQUE

BLUEQUE = {key: value for key, value in BLUEQUE.items() if key != "REDIS_URL"}
BLUEQUE["SENTINELS"] = [("127.0.0.1", int(port)) for port in os.environ["BLUEQUE_TEST_SENTINELS"].split(",")]
BLUEQUE["SENTINEL_SERVICE"] = "mymaster"
