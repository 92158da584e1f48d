"""A test app that records django_blueque's signals in Redis, for tests that run a monitor process."""
