"""A private Redis Sentinel deployment for tests: one primary, one replica and
three sentinels on free loopback ports, in a temporary folder, started with
the ``redis-server`` binary (``--sentinel`` mode: Debian's ``redis-sentinel``
is the same program)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import redis

from tests.redis_server import RedisServer, free_port

SERVICE = "mymaster"


class SentinelCluster:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.primary = RedisServer(directory / "primary", persistent=True)
        self.replica = RedisServer(directory / "replica", persistent=True)
        self.sentinel_ports = [free_port() for _ in range(3)]
        self._sentinels: list[subprocess.Popen[bytes]] = []

    @property
    def sentinels(self) -> list[tuple[str, int]]:
        return [("127.0.0.1", port) for port in self.sentinel_ports]

    def start(self) -> None:
        for server in (self.primary, self.replica):
            server.directory.mkdir(parents=True)
            server.start()
        self._client(self.replica.port).replicaof("127.0.0.1", self.primary.port)
        self._wait(lambda: self._client(self.replica.port).info("replication")["master_link_status"] == "up", "sync")
        for index, port in enumerate(self.sentinel_ports):
            folder = self.directory / f"sentinel{index}"
            folder.mkdir()
            config = folder / "sentinel.conf"
            config.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {folder}\nlogfile {folder / 'sentinel.log'}\n"
                f"sentinel monitor {SERVICE} 127.0.0.1 {self.primary.port} 2\n"
                f"sentinel down-after-milliseconds {SERVICE} 1000\n"
                f"sentinel failover-timeout {SERVICE} 5000\n"
            )
            self._sentinels.append(
                subprocess.Popen(
                    [self.primary.binary, str(config), "--sentinel"],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        # Every sentinel knows the others and the replica: a failover can be asked of any.
        self._wait(lambda: all(self._knows_everyone(port) for port in self.sentinel_ports), "the sentinels to meet")

    def _knows_everyone(self, port: int) -> bool:
        try:
            master = self._client(port).sentinel_master(SERVICE)
        except redis.RedisError:
            return False
        assert isinstance(master, dict), master
        return int(master.get("num-other-sentinels", 0)) >= 2 and int(master.get("num-slaves", 0)) >= 1

    def primary_port(self) -> int:
        address = self._client(self.sentinel_ports[0]).sentinel_get_master_addr_by_name(SERVICE)
        assert isinstance(address, tuple | list), address
        return int(address[1])

    def failover(self, timeout: float = 30.0) -> float:
        """Have the sentinels promote the replica; return when the new primary takes writes."""
        before = self.primary_port()
        self._client(self.sentinel_ports[0]).execute_command("SENTINEL", "FAILOVER", SERVICE)  # type: ignore[no-untyped-call]
        self._wait(lambda: self.primary_port() != before, "the sentinels to name a new primary", timeout)
        after = self.primary_port()
        self._wait(lambda: self._client(after).info("replication")["role"] == "master", "the new primary", timeout)
        # The old primary follows the new one before the next failover can be asked.
        self._wait(
            lambda: self._client(before).info("replication").get("master_link_status") == "up",
            "the old primary to replicate the new one",
            timeout,
        )
        self._wait(lambda: all(self._knows_everyone(port) for port in self.sentinel_ports), "the sentinels", timeout)
        return time.time()

    def stop(self) -> None:
        for process in self._sentinels:
            process.terminate()
        for process in self._sentinels:
            process.wait(10)
        self.replica.stop()
        self.primary.stop()

    @staticmethod
    def _client(port: int) -> redis.Redis:
        return redis.Redis(port=port, decode_responses=True, socket_connect_timeout=0.5, socket_timeout=2)

    @staticmethod
    def _wait(condition: object, what: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if condition():  # type: ignore[operator]
                    return
            except redis.RedisError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out after {timeout}s waiting for {what}")
            time.sleep(0.1)
