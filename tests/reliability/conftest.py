"""Fixtures of the reliability suite: those of the worker tests (real processes against a
private Redis, the journal of runs kept outside Redis), and the suite's size."""

from __future__ import annotations

from tests.workers.conftest import blueque, journal, persistent_redis, proxy, spawn, spawn_worker

__all__ = ["blueque", "journal", "persistent_redis", "proxy", "spawn", "spawn_worker"]
