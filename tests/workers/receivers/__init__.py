"""A test app that records django_blueque's signals in Redis, for tests that run a monitor process.

With ``BLUEQUE_TEST_SIGNAL_DELAY`` (seconds) in a process's environment, each
of its receivers takes that long first: a slow receiver.
"""
