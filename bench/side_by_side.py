"""django-blueque beside its peers, in one run on one private redis-server: ``make bench``.

The peers are the published Blueque 1.0.1, RQ 2.x, Celery 5.x (Redis broker), Huey 3.x
(``RedisHuey``) and Dramatiq 2.x (``RedisBroker``), each in its own virtualenv under
``bench/.venvs/`` (Blueque 1.0.1 in ``.venv-blueque101``), which the Makefile creates.
django-blueque runs from ``.venv``, its worker as ``manage.py blueque_worker`` of the project in
``bench/bench_project``. Every system runs the same task body
(``bench_project.taskbody.record``: one ``O_APPEND`` write of a label and ``time.time()`` to a
file, then an optional sleep), so timings cost no Redis round trip.

Each system's producer is a long-lived agent process (``bench/peers/agent.py``) under its own
interpreter; each worker is a real subprocess, stopped with SIGTERM (then SIGKILL after a
while) at the end of its scenario. Systems are interleaved round by round: round 1 runs every
scenario for every system, then round 2, and so on; the tables give the median of the rounds
and their min and max. What each scenario measures is in docs/performance.md.

    .venv/bin/python bench/side_by_side.py [--quick] [--rounds N] [--json PATH] [--no-docs]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"
VENVS = BENCH / ".venvs"
PYTHONS = {
    "django": REPO / ".venv" / "bin" / "python",
    "raw": REPO / ".venv" / "bin" / "python",
    "blueque101": REPO / ".venv-blueque101" / "bin" / "python",
    "rq": VENVS / "rq" / "bin" / "python",
    "celery": VENVS / "celery" / "bin" / "python",
    "huey": VENVS / "huey" / "bin" / "python",
    "dramatiq": VENVS / "dramatiq" / "bin" / "python",
}
TOOLS_PYTHON = VENVS / "tools" / "bin" / "python"
DOCS_PAGE = REPO / "docs" / "performance.md"
CHARTS = REPO / "docs" / "images" / "bench"
BEGIN, END = "<!-- bench: begin -->", "<!-- bench: end -->"
REFERENCE = "django-blueque"

#: Seconds a worker gets to run its first task (imports, connecting, Celery's mingle).
START_TIMEOUT = 60.0
#: Seconds a worker gets to exit after SIGTERM before it gets a second one (then 5 s before SIGKILL).
STOP_TIMEOUT = 4.0


class BenchError(Exception):
    """The benchmark could not go on; the message says why."""


_BEGUN = time.monotonic()


def log(message: str) -> None:
    print(f"[{time.monotonic() - _BEGUN:4.0f} s] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------
# Sizes.
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sizes:
    rounds: int
    #: Tasks enqueued one call each, and in one bulk call, per system and round.
    enqueue: int
    #: Pending tasks a 2-slot worker drains.
    drain: int
    #: Pickup samples per system and round (pooled over the rounds for median and p99).
    pickup: int
    #: Seconds of the quiet window of an idle worker.
    idle: float
    #: Tasks whose Redis cost is counted.
    cost: int
    #: Seconds the long task of the head-of-line scenario sleeps.
    long_task: float
    #: Short tasks enqueued at once just after the long one started.
    burst: int
    #: Pending tasks of the admin page's big queue.
    admin_big: int


QUICK = Sizes(
    rounds=2, enqueue=500, drain=100, pickup=10, idle=2.0, cost=50, long_task=3.0, burst=4, admin_big=1_000_000
)
FULL = Sizes(
    rounds=5, enqueue=2000, drain=1000, pickup=20, idle=15.0, cost=200, long_task=15.0, burst=6, admin_big=1_000_000
)


# --------------------------------------------------------------------------------------
# Systems and their workers.
# --------------------------------------------------------------------------------------


def django_worker(queue: str, slots: int, mode: str = "fork") -> list[str]:
    return [
        str(PYTHONS["django"]),
        str(BENCH / "manage.py"),
        "blueque_worker",
        queue,
        "--mode",
        mode,
        "--concurrency",
        str(slots),
        "-v",
        "0",
    ]


def rq_worker(kind: str = "rq.worker.Worker") -> list[str]:
    return [str(VENVS / "rq" / "bin" / "rq"), "worker", "--url", "{url}", "-w", kind, "--quiet", "bench"]


def celery_worker(slots: int, node: str) -> list[str]:
    return [
        str(VENVS / "celery" / "bin" / "celery"),
        "-A",
        "celery_app",
        "worker",
        "-P",
        "prefork",
        "-c",
        str(slots),
        "-Q",
        "bench",
        "-n",
        f"{node}@%h",
        "-l",
        "WARNING",
    ]


def huey_worker(slots: int) -> list[str]:
    return [str(VENVS / "huey" / "bin" / "huey_consumer"), "huey_app.huey", "-k", "thread", "-w", str(slots), "-q"]


def dramatiq_worker(threads: int) -> list[str]:
    return [str(VENVS / "dramatiq" / "bin" / "dramatiq"), "dramatiq_app", "-p", "1", "-t", str(threads), "-Q", "bench"]


def blueque101_worker(slots: int) -> list[str]:
    return [str(PYTHONS["blueque101"]), str(BENCH / "peers" / "blueque101_worker.py"), str(slots)]


@dataclass(frozen=True)
class System:
    """A system as a scenario runs it: its producer agent and its worker processes."""

    name: str
    agent: str
    #: The worker processes (argv each; ``{url}`` is replaced by Redis's URL) of a worker with 2 slots.
    workers: Callable[[], list[list[str]]]
    #: One node of one slot, for the head-of-line scenario (``node`` tells two apart).
    node: Callable[[str], list[str]] | None = None


MAIN_SYSTEMS = [
    System(REFERENCE, "django", lambda: [django_worker("bench", 2)], lambda _: django_worker("bench", 1)),
    System(
        f"{REFERENCE} prefork",
        "django",
        lambda: [django_worker("bench", 2, "prefork")],
        lambda _: django_worker("bench", 1, "prefork"),
    ),
    System("blueque 1.0.1", "blueque101", lambda: [blueque101_worker(2)], lambda _: blueque101_worker(1)),
    System("RQ", "rq", lambda: [rq_worker(), rq_worker()], lambda _: rq_worker()),
    System("Celery", "celery", lambda: [celery_worker(2, "w1")], lambda node: celery_worker(1, node)),
    System("Huey", "huey", lambda: [huey_worker(2)], lambda _: huey_worker(1)),
    System("Dramatiq", "dramatiq", lambda: [dramatiq_worker(2)], lambda _: dramatiq_worker(1)),
]

DRAIN_SYSTEMS = [
    System(f"{REFERENCE} fork, Django task", "django", lambda: [django_worker("bench", 2)]),
    System(f"{REFERENCE} prefork, Django task", "django", lambda: [django_worker("bench", 2, "prefork")]),
    System(f"{REFERENCE} fork, raw handler", "raw", lambda: [django_worker("raw", 2)]),
    System(f"{REFERENCE} prefork, raw handler", "raw", lambda: [django_worker("raw", 2, "prefork")]),
    System("blueque 1.0.1 (2 forking runners)", "blueque101", lambda: [blueque101_worker(2)]),
    System("RQ Worker x2 (fork per job)", "rq", lambda: [rq_worker(), rq_worker()]),
    System(
        "RQ SimpleWorker x2",
        "rq",
        lambda: [rq_worker("rq.worker.SimpleWorker"), rq_worker("rq.worker.SimpleWorker")],
    ),
    System("Celery prefork -c 2", "celery", lambda: [celery_worker(2, "w1")]),
    System("Huey 2 threads", "huey", lambda: [huey_worker(2)]),
    System("Dramatiq 1 process, 2 threads", "dramatiq", lambda: [dramatiq_worker(2)]),
]

ENQUEUE_REFERENCE = f"{REFERENCE} (Django task .enqueue())"
RAW_REFERENCE = f"{REFERENCE} (raw Queue.enqueue())"
ENQUEUE_SYSTEMS = [
    (ENQUEUE_REFERENCE, "django"),
    (RAW_REFERENCE, "raw"),
    ("blueque 1.0.1", "blueque101"),
    ("RQ", "rq"),
    ("Celery", "celery"),
    ("Huey", "huey"),
    ("Dramatiq", "dramatiq"),
]


# --------------------------------------------------------------------------------------
# Processes.
# --------------------------------------------------------------------------------------


class Env:
    """What every process of the run shares: Redis's URL, the folder of logs and task journals."""

    def __init__(self, url: str, directory: Path) -> None:
        self.url = url
        self.directory = directory
        self._count = 0

    def journal(self) -> Path:
        """A new, empty file for the tasks of one scenario to append to."""
        self._count += 1
        path = self.directory / f"journal-{self._count}.txt"
        path.touch()
        return path

    def environ(self, journal: Path | None = None) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            BENCH_REDIS_URL=self.url,
            BENCH_LOG=str(journal or self.directory / "journal-unused.txt"),
            BENCH_DATABASE=str(self.directory / "bench.sqlite3"),
            # BENCH_BLUEQUE_SOURCE: a folder holding another django_blueque to measure (a git export).
            PYTHONPATH=os.pathsep.join(
                [p for p in (os.environ.get("BENCH_BLUEQUE_SOURCE"), str(BENCH), str(BENCH / "peers")) if p]
            ),
            DJANGO_SETTINGS_MODULE="bench_project.settings",
            PYTHONUNBUFFERED="1",
        )
        return env


class Agent:
    """A producer process of one system (``bench/peers/agent.py``), answering JSON requests."""

    def __init__(self, system: str, env: Env) -> None:
        self.system = system
        stderr = (env.directory / f"agent-{system}.log").open("ab")
        self._proc = subprocess.Popen(
            [str(PYTHONS[system]), str(BENCH / "peers" / "agent.py"), system],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            cwd=REPO,
            env=env.environ(),
            start_new_session=True,
        )
        stderr.close()
        self._read()

    def _read(self) -> dict[str, Any]:
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if not line:
            raise BenchError(f"the {self.system} agent exited (status {self._proc.wait()}); see its log")
        reply: dict[str, Any] = json.loads(line)
        if "error" in reply:
            raise BenchError(f"{self.system} agent: {reply['error']}")
        return reply

    def ask(self, **request: Any) -> dict[str, Any]:
        assert self._proc.stdin is not None
        self._proc.stdin.write(json.dumps(request) + "\n")
        self._proc.stdin.flush()
        return self._read()

    def enqueue(self, labels: Sequence[str], task: str = "noop", seconds: float = 0.0, bulk: bool = False) -> Any:
        return self.ask(op="enqueue", task=task, labels=list(labels), seconds=seconds, bulk=bulk)

    def close(self) -> None:
        if self._proc.poll() is None:
            try:
                self.ask(op="quit")
                self._proc.wait(timeout=10)
            except (BenchError, OSError, subprocess.TimeoutExpired):
                self._proc.kill()
                self._proc.wait()
        for stream in (self._proc.stdin, self._proc.stdout):
            if stream is not None:
                stream.close()


def descendants(roots: Sequence[int]) -> list[int]:
    """``roots`` and every process below them, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found: list[int] = []
    todo = list(roots)
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def pss_bytes(pids: Sequence[int]) -> int:
    """The memory of these processes together: each one's proportional set size (PSS), so that
    pages a forked child shares with its parent count once, not once per process as RSS would."""
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            continue
    return total


class Workers:
    """Worker processes of one scenario, each in a process group of its own."""

    def __init__(self, argvs: Sequence[Sequence[str]], env: Env, journal: Path, name: str) -> None:
        self.name = name
        self.procs: list[subprocess.Popen[bytes]] = []
        for i, argv in enumerate(argvs):
            output = (env.directory / f"worker-{slug(name)}-{i}.log").open("ab")
            self.procs.append(
                subprocess.Popen(
                    [part.replace("{url}", env.url) for part in argv],
                    stdin=subprocess.DEVNULL,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    cwd=REPO,
                    env=env.environ(journal),
                    start_new_session=True,
                )
            )
            output.close()

    def rss(self) -> int:
        return pss_bytes(descendants([proc.pid for proc in self.procs]))

    def check_alive(self) -> None:
        for proc in self.procs:
            if proc.poll() is not None:
                raise BenchError(f"a worker of {self.name} exited (status {proc.returncode}); see its log")

    def _wait(self, timeout: float) -> bool:
        """Whether every worker exited within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        for proc in self.procs:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                return False
        return True

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                with_group(proc.pid, signal.SIGTERM)
        if not self._wait(timeout):
            # A second SIGTERM is a cold shutdown for RQ and Celery, "stop the tasks now" for ours.
            log(f"  {self.name}: a worker still runs {timeout:g} s after SIGTERM; sending another")
            for proc in self.procs:
                if proc.poll() is None:
                    with_group(proc.pid, signal.SIGTERM)
            if not self._wait(5.0):
                log(f"  {self.name}: killing what is left")
        for proc in self.procs:
            # Whatever is left of the group (a worker's children too), dead or alive.
            with_group(proc.pid, signal.SIGKILL)
            if proc.poll() is None:
                proc.wait()


def with_group(pid: int, sig: int) -> None:
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-")


def read_journal(path: Path) -> dict[str, float]:
    """Label -> the time its task started (the first run, should one run twice)."""
    started: dict[str, float] = {}
    for line in path.read_text().splitlines():
        label, _, stamp = line.partition(" ")
        if stamp:
            started.setdefault(label, float(stamp))
    return started


def wait_for(path: Path, labels: Sequence[str], timeout: float, workers: Workers | None = None) -> dict[str, float]:
    """The start times of ``labels`` once all have started; BenchError after ``timeout``."""
    deadline = time.monotonic() + timeout
    wanted = set(labels)
    while True:
        started = read_journal(path)
        if wanted <= started.keys():
            return started
        if time.monotonic() > deadline:
            missing = len(wanted - started.keys())
            raise BenchError(f"{missing} of {len(wanted)} task(s) did not start within {timeout:g} s")
        if workers is not None:
            workers.check_alive()
        time.sleep(0.002)


# --------------------------------------------------------------------------------------
# Redis.
# --------------------------------------------------------------------------------------


@dataclass
class Snapshot:
    calls: dict[str, int]
    reads: int
    connections: int
    memory: int
    at: float


def snapshot(conn: redis.Redis) -> Snapshot:
    """One ``INFO`` call: commands (incl. those Lua scripts run), read events, connections, memory."""
    info: dict[str, Any] = conn.info("all")
    calls = {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in info.items() if k.startswith("cmdstat_")}
    return Snapshot(
        calls,
        int(info["total_reads_processed"]),
        int(info["total_connections_received"]),
        int(info["used_memory"]),
        time.monotonic(),
    )


@dataclass
class Delta:
    commands: dict[str, int]
    reads: int
    connections: int
    seconds: float

    @property
    def total(self) -> int:
        return sum(self.commands.values())


def delta(before: Snapshot, after: Snapshot) -> Delta:
    """What clients other than the snapshots did between two snapshots.

    The INFO that took ``before`` is counted in ``after``'s calls; each INFO's own read counts
    in its own snapshot, so ``after``'s read is one too many.
    """
    commands = {k: n - before.calls.get(k, 0) for k, n in after.calls.items()}
    commands["info"] = commands.get("info", 0) - 1
    return Delta(
        {k: n for k, n in sorted(commands.items()) if n},
        after.reads - before.reads - 1,
        after.connections - before.connections,
        after.at - before.at,
    )


@contextmanager
def private_redis(directory: Path) -> Iterator[str]:
    sys.path.insert(0, str(REPO))
    from tests.redis_server import RedisServer

    try:
        server = RedisServer(directory)
        server.start()
    except (FileNotFoundError, RuntimeError) as exc:
        raise BenchError(f"{exc}; install redis-server") from None
    try:
        yield server.url
    finally:
        server.stop()


def calibrate(conn: redis.Redis) -> dict[str, int]:
    """Read events Redis counts for 100 PINGs one by one, and for one pipeline of 100 PINGs."""
    before = snapshot(conn)
    for _ in range(100):
        conn.ping()
    one_by_one = delta(before, snapshot(conn)).reads
    before = snapshot(conn)
    with conn.pipeline(transaction=False) as pipe:
        for _ in range(100):
            pipe.ping()
        pipe.execute()
    pipelined = delta(before, snapshot(conn)).reads
    return {"100 PINGs": one_by_one, "1 pipeline of 100 PINGs": pipelined}


# --------------------------------------------------------------------------------------
# Figures.
# --------------------------------------------------------------------------------------


@dataclass
class Measure:
    """One figure of one scenario, per system, one value per round."""

    scenario: str
    key: str
    title: str
    unit: str
    lower_is_better: bool
    reference: str
    digits: int = 2
    values: dict[str, list[float]] = field(default_factory=dict)
    #: Per system, a note shown instead of figures (n/a and why).
    notes: dict[str, str] = field(default_factory=dict)

    def add(self, system: str, value: float) -> None:
        self.values.setdefault(system, []).append(value)

    def median(self, system: str) -> float:
        values = self.values.get(system)
        return statistics.median(values) if values else math.nan

    def as_json(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "key": self.key,
            "title": self.title,
            "unit": self.unit,
            "lower_is_better": self.lower_is_better,
            "reference": self.reference,
            "values": self.values,
            "notes": self.notes,
            "medians": {name: self.median(name) for name in self.values},
        }


def nearest_rank(values: Sequence[float], fraction: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def fmt(value: float, digits: int) -> str:
    if math.isnan(value):
        return "-"
    if abs(value) >= 10_000:
        return f"{value:,.0f}"
    return f"{value:,.{digits}f}"


def table_rows(measure: Measure) -> list[list[str]]:
    ref = measure.median(measure.reference)
    rows = []
    for name in [*measure.values, *(n for n in measure.notes if n not in measure.values)]:
        if name in measure.notes and name not in measure.values:
            rows.append([name, measure.notes[name], "", "", ""])
            continue
        values = measure.values[name]
        med = measure.median(name)
        ratio = med / ref if ref and not math.isnan(ref) and not math.isnan(med) else math.nan
        rows.append(
            [
                name,
                fmt(med, measure.digits),
                fmt(min(values), measure.digits),
                fmt(max(values), measure.digits),
                "-" if math.isnan(ratio) else f"{ratio:.2f}x",
            ]
        )
    return rows


def header(measure: Measure) -> list[str]:
    better = "lower is better" if measure.lower_is_better else "higher is better"
    return [f"{measure.title} ({measure.unit}; {better})", "median", "min", "max", f"/ {measure.reference}"]


def text_table(measure: Measure) -> str:
    head = header(measure)
    rows = table_rows(measure)
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(head, widths, strict=True)))]
    lines.append("-" * len(lines[0]))
    for row in rows:
        if row[2] == "" and row[1] and not row[1][0].isdigit() and row[1] != "-":
            lines.append(f"{row[0].ljust(widths[0])}  {row[1]}")
        else:
            cells = zip(row, widths, strict=True)
            lines.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(cells)))
    return "\n".join(lines)


def markdown_table(measure: Measure) -> str:
    head = header(measure)
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    for row in table_rows(measure):
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------
# The run.
# --------------------------------------------------------------------------------------


class Run:
    def __init__(self, env: Env, conn: redis.Redis, sizes: Sizes) -> None:
        self.env = env
        self.conn = conn
        self.sizes = sizes
        self.agents: dict[str, Agent] = {}
        self.measures: dict[str, Measure] = {}
        self.pickup_samples: dict[str, list[float]] = {}
        self.hol_waits: dict[str, dict[str, list[float]]] = {}
        self.idle_commands: dict[str, dict[str, int]] = {}
        self.cost_commands: dict[str, dict[str, float]] = {}
        self.extra: dict[str, Any] = {}
        self._labels = 0

    def agent(self, system: str) -> Agent:
        if system not in self.agents:
            self.agents[system] = Agent(system, self.env)
        return self.agents[system]

    def close(self) -> None:
        for agent in self.agents.values():
            agent.close()

    def labels(self, count: int, prefix: str = "t") -> list[str]:
        start = self._labels
        self._labels += count
        return [f"{prefix}{i}" for i in range(start, start + count)]

    def measure(
        self,
        scenario: str,
        key: str,
        title: str,
        unit: str,
        lower_is_better: bool = True,
        reference: str = REFERENCE,
        digits: int = 2,
    ) -> Measure:
        full = f"{scenario}.{key}"
        if full not in self.measures:
            self.measures[full] = Measure(scenario, key, title, unit, lower_is_better, reference, digits)
        return self.measures[full]

    def flush(self) -> None:
        self.conn.flushdb()

    def start(self, system: System | None, argvs: Sequence[Sequence[str]], journal: Path) -> Workers:
        return Workers(argvs, self.env, journal, system.name if system else "worker")

    # -- enqueue and memory ------------------------------------------------------------

    def enqueue(self, name: str, agent_name: str) -> None:
        size = self.sizes.enqueue
        agent = self.agent(agent_name)
        self.flush()
        before = snapshot(self.conn)
        single = agent.enqueue(self.labels(size))
        after = snapshot(self.conn)
        self.measure("enqueue", "single", "Enqueue, one call per task", "tasks/s", False, ENQUEUE_REFERENCE, 0).add(
            name, size / float(single["elapsed"])
        )
        self.measure("memory", "pending", "Redis memory per pending task", "bytes", True, ENQUEUE_REFERENCE, 0).add(
            name, (after.memory - before.memory) / size
        )
        self.flush()
        bulk = self.measure("enqueue", "bulk", "Enqueue, the bulk API", "tasks/s", False, RAW_REFERENCE, 0)
        api = agent.ask(op="bulk_api")["api"]
        if api is None:
            bulk.notes[name] = "n/a: no bulk enqueue API"
        else:
            done = agent.enqueue(self.labels(size), bulk=True)
            bulk.add(name, size / float(done["elapsed"]))
            self.extra.setdefault("bulk_api", {})[name] = api
        self.flush()

    # -- pickup, idle cost, cost per task --------------------------------------------------

    def session(self, system: System) -> None:
        """One idle 2-slot worker: pickup samples, a quiet window, then tasks whose cost is counted."""
        sizes = self.sizes
        agent = self.agent(system.agent)
        self.flush()
        journal = self.env.journal()
        workers = self.start(system, system.workers(), journal)
        try:
            warm = self.labels(2, "w")
            agent.enqueue(warm)
            wait_for(journal, warm, START_TIMEOUT, workers)
            time.sleep(0.3)
            samples = []
            for label in self.labels(sizes.pickup, "p"):
                time.sleep(random.uniform(0.05, 0.6))
                stamp = float(agent.enqueue([label])["stamps"][0])
                samples.append((wait_for(journal, [label], 30.0, workers)[label] - stamp) * 1000)
            self.pickup_samples.setdefault(system.name, []).extend(samples)
            self.measure("pickup", "median", "Pickup, enqueue to task start, median", "ms").add(
                system.name, statistics.median(samples)
            )
            self.measure("pickup", "p99", "Pickup, enqueue to task start, p99 (nearest rank)", "ms").add(
                system.name, nearest_rank(samples, 0.99)
            )

            time.sleep(0.5)  # let the last task finish and the worker settle back to waiting
            before = snapshot(self.conn)
            time.sleep(sizes.idle)
            idle = delta(before, snapshot(self.conn))
            rss = workers.rss()
            self.idle_commands[system.name] = idle.commands
            self.measure("idle", "commands", "Redis commands per second, idle worker", "commands/s").add(
                system.name, idle.total / idle.seconds
            )
            self.measure("idle", "round_trips", "Client requests per second, idle worker", "requests/s").add(
                system.name, idle.reads / idle.seconds
            )
            self.measure("rss", "tree", "Idle worker tree memory, PSS (worker and its children)", "MiB", digits=1).add(
                system.name, rss / 2**20
            )

            labels = self.labels(sizes.cost, "c")
            before = snapshot(self.conn)
            agent.enqueue(labels)
            wait_for(journal, labels, 120.0, workers)
            time.sleep(0.5)  # the bookkeeping after the last task's body
            busy = delta(before, snapshot(self.conn))
            n = sizes.cost

            def per_task(total: float, idle_total: float) -> float:
                return (total - idle_total / idle.seconds * busy.seconds) / n

            self.cost_commands[system.name] = {k: round(v / n, 2) for k, v in busy.commands.items()}
            self.measure("cost", "commands", "Redis commands per task (incl. inside Lua scripts)", "commands").add(
                system.name, per_task(busy.total, idle.total)
            )
            self.measure("cost", "round_trips", "Round trips per task (client requests)", "requests").add(
                system.name, per_task(busy.reads, idle.reads)
            )
            self.measure("cost", "connections", "New connections per task", "connections", digits=3).add(
                system.name, per_task(busy.connections, idle.connections)
            )
        finally:
            workers.stop()

    # -- drain ---------------------------------------------------------------------------

    def drain(self, system: System) -> None:
        size = self.sizes.drain
        agent = self.agent(system.agent)
        self.flush()
        labels = self.labels(size, "d")
        bulk = agent.ask(op="bulk_api")["api"] is not None
        for start in range(0, size, 1000):
            agent.enqueue(labels[start : start + 1000], bulk=bulk)
        journal = self.env.journal()
        workers = self.start(system, system.workers(), journal)
        try:
            started = wait_for(journal, labels, START_TIMEOUT + size * 0.2, workers)
        finally:
            workers.stop()
        times = sorted(started[label] for label in labels)
        self.measure(
            "drain", "rate", "Drain, 2 slots, no-op tasks", "tasks/s", False, f"{REFERENCE} fork, Django task", 0
        ).add(system.name, (size - 1) / (times[-1] - times[0]))

    # -- head of line ----------------------------------------------------------------------

    def head_of_line(self, system: System) -> None:
        """Two nodes of one slot; a long task, then short ones in a burst and one every 200 ms."""
        assert system.node is not None
        sizes = self.sizes
        agent = self.agent(system.agent)
        self.flush()
        journal = self.env.journal()
        workers = self.start(system, [system.node("w1"), system.node("w2")], journal)
        try:
            warm = self.labels(2, "w")
            agent.enqueue(warm)
            wait_for(journal, warm, START_TIMEOUT, workers)
            time.sleep(0.5)
            long_label = self.labels(1, "long")
            agent.enqueue(long_label, task="sleep", seconds=sizes.long_task)
            long_start = wait_for(journal, long_label, 30.0, workers)[long_label[0]]
            stamps: dict[str, float] = {}
            burst = self.labels(sizes.burst, "b")
            for label, stamp in zip(burst, agent.enqueue(burst)["stamps"], strict=True):
                stamps[label] = float(stamp)
            trickle: list[str] = []
            while time.time() < long_start + sizes.long_task - 1.0:
                time.sleep(0.2)
                label = self.labels(1, "s")[0]
                stamps[label] = float(agent.enqueue([label])["stamps"][0])
                trickle.append(label)
            started = wait_for(journal, [*burst, *trickle], sizes.long_task + 60.0, workers)
            # Stop once the long task is over: a worker's graceful stop waits for its tasks.
            time.sleep(max(0.0, long_start + sizes.long_task + 0.5 - time.time()))
        finally:
            workers.stop()
        burst_waits = [started[label] - stamps[label] for label in burst]
        trickle_waits = [started[label] - stamps[label] for label in trickle]
        waits = self.hol_waits.setdefault(system.name, {"burst": [], "trickle": []})
        waits["burst"] += burst_waits
        waits["trickle"] += trickle_waits
        self.measure("head_of_line", "burst_max", "Head of line: longest wait of a burst's short task", "s").add(
            system.name, max(burst_waits)
        )
        self.measure(
            "head_of_line", "trickle_max", "Head of line: longest wait of a short task sent every 200 ms", "s"
        ).add(system.name, max(trickle_waits))
        self.measure(
            "head_of_line", "stuck", "Head of line: short tasks that waited over 1 s", "% of short tasks", digits=0
        ).add(system.name, 100 * sum(w > 1.0 for w in [*burst_waits, *trickle_waits]) / len(stamps))

    # -- the admin page --------------------------------------------------------------------

    def admin(self) -> None:
        done = subprocess.run(
            [str(PYTHONS["django"]), str(BENCH / "admin_page.py"), "--big", str(self.sizes.admin_big)],
            cwd=REPO,
            env=self.env.environ(),
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode:
            raise BenchError(f"the admin page's measure failed:\n{done.stderr[-3000:]}")
        figures: dict[str, Any] = json.loads(done.stdout)
        self.extra["admin"] = figures
        self.flush()


def run(sizes: Sizes, args: argparse.Namespace) -> dict[str, Any]:
    begun = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-side-by-side-") as tmp, private_redis(Path(tmp)) as url:
        directory = Path(tmp)
        env = Env(url, directory)
        conn = redis.Redis.from_url(url)
        bench = Run(env, conn, sizes)
        try:
            version = str(conn.info("server")["redis_version"])
            bench.extra["calibration"] = calibrate(conn)
            for _, agent in ENQUEUE_SYSTEMS:
                bench.agent(agent)
            # The agents alone, no worker: what Redis sees from them (nothing, normally).
            before = snapshot(conn)
            time.sleep(1.0)
            bench.extra["baseline_commands_per_second"] = delta(before, snapshot(conn)).total
            only = set(args.only or [])
            main_systems = [s for s in MAIN_SYSTEMS if not only or s.agent in only]
            drain_systems = [s for s in DRAIN_SYSTEMS if not only or s.agent in only]
            enqueue_systems = [(n, a) for n, a in ENQUEUE_SYSTEMS if not only or a in only]
            scenarios = set(args.scenarios or ["enqueue", "session", "drain", "head_of_line", "admin"])
            for round_number in range(1, sizes.rounds + 1):
                log(f"round {round_number} of {sizes.rounds}")
                if "enqueue" in scenarios:
                    for name, agent_name in enqueue_systems:
                        log(f"  enqueue: {name}")
                        bench.enqueue(name, agent_name)
                if "session" in scenarios:
                    for system in main_systems:
                        log(f"  pickup, idle, cost: {system.name}")
                        bench.session(system)
                if "drain" in scenarios:
                    for system in drain_systems:
                        log(f"  drain: {system.name}")
                        bench.drain(system)
                if "head_of_line" in scenarios:
                    for system in main_systems:
                        log(f"  head of line: {system.name}")
                        bench.head_of_line(system)
            if "admin" in scenarios and (not only or "django" in only):
                log("admin page (django-blueque)")
                bench.admin()
        except BenchError:
            kept = BENCH / "results" / "last-failure"
            shutil.rmtree(kept, ignore_errors=True)
            shutil.copytree(directory, kept, ignore=shutil.ignore_patterns("*.sqlite3", "*.rdb"))
            log(f"the processes' logs are in {kept.relative_to(REPO)}")
            raise
        finally:
            bench.close()
            conn.close()
    elapsed = time.monotonic() - begun
    return {
        "mode": "quick" if args.quick else "full",
        "rounds": sizes.rounds,
        "sizes": sizes.__dict__,
        "elapsed_seconds": elapsed,
        "machine": machine(version),
        "measured": measured_source(),
        "date": time.strftime("%Y-%m-%d"),
        "measures": [m.as_json() for m in bench.measures.values()],
        "pickup_samples_ms": bench.pickup_samples,
        "pickup_pooled": {
            name: {"samples": len(s), "median_ms": statistics.median(s), "p99_ms": nearest_rank(s, 0.99)}
            for name, s in bench.pickup_samples.items()
        },
        "head_of_line_waits_s": bench.hol_waits,
        "idle_commands": bench.idle_commands,
        "cost_commands_per_task": bench.cost_commands,
        **bench.extra,
    }


def measured_source() -> str:
    """Which django_blueque the run measured: the checkout's commit (``+ changes`` if its tree differs)."""
    source = os.environ.get("BENCH_BLUEQUE_SOURCE")
    if source:
        return f"django_blueque from {source}"
    done = subprocess.run(
        ["git", "-C", str(REPO), "describe", "--always", "--dirty=+changes", "--exclude", "*"],
        capture_output=True,
        text=True,
        check=False,
    )
    return f"django-blueque at {done.stdout.strip() or 'an unknown commit'}"


def machine(redis_version: str) -> str:
    cpus = os.cpu_count() or 0
    system = f"{platform.system()} {platform.machine()}"
    return f"Redis {redis_version}, Python {platform.python_version()}, {cpus} CPU(s), {system}"


def measures_of(figures: dict[str, Any]) -> list[Measure]:
    found = []
    for m in figures["measures"]:
        measure = Measure(m["scenario"], m["key"], m["title"], m["unit"], m["lower_is_better"], m["reference"])
        measure.values = m["values"]
        measure.notes = m["notes"]
        measure.digits = 0 if m["unit"] in ("tasks/s", "bytes", "% of short tasks") else 2
        if m["unit"] == "connections":
            measure.digits = 3
        if m["unit"] == "MiB":
            measure.digits = 1
        found.append(measure)
    return found


SCENARIOS = {
    "enqueue": "Enqueue rate, one producer",
    "drain": "Drain rate, 2 slots",
    "pickup": "Pickup latency of an idle worker",
    "head_of_line": "Head of line: short tasks beside a long one",
    "idle": "What an idle worker costs Redis",
    "cost": "What one task costs Redis",
    "memory": "Redis memory per pending task",
    "rss": "Idle worker memory",
}


def report(figures: dict[str, Any]) -> str:
    """The tables, as printed."""
    out = [
        f"{figures['machine']}; {figures.get('measured', '')}; {figures['mode']} run, {figures['rounds']} round(s), "
        f"{figures['elapsed_seconds']:.0f} s; tables give the median of the rounds, their min and max"
    ]
    measures = measures_of(figures)
    for scenario, title in SCENARIOS.items():
        group = [m for m in measures if m.scenario == scenario]
        if not group:
            continue
        out.append(f"\n== {title}")
        for m in group:
            out.append(text_table(m))
        if scenario == "pickup":
            out.append("pooled over the rounds: " + "; ".join(pooled(figures)))
    if "admin" in figures:
        out.append("\n== django-blueque admin queue page (Django test client)")
        out.append(admin_text(figures["admin"]))
    if "calibration" in figures:
        cal = figures["calibration"]
        out.append("\nround trips are Redis's read events: " + ", ".join(f"{k}: {v}" for k, v in cal.items()))
    return "\n".join(out)


def pooled(figures: dict[str, Any]) -> list[str]:
    return [
        f"{name} {p['median_ms']:.1f} / {p['p99_ms']:.1f} ms ({p['samples']})"
        for name, p in figures.get("pickup_pooled", {}).items()
    ]


def admin_rows(admin: dict[str, Any]) -> list[list[str]]:
    rows = []
    for size, page in admin["pages"].items():
        rows.append(
            [
                f"{int(size):,}",
                f"{page['median_ms']:.1f}",
                f"{page['min_ms']:.1f}",
                f"{page['max_ms']:.1f}",
                str(page["commands"]),
                str(page["round_trips"]),
            ]
        )
    return rows


ADMIN_HEAD = ["pending tasks", "median ms", "min ms", "max ms", "Redis commands", "round trips"]


def admin_text(admin: dict[str, Any]) -> str:
    rows = admin_rows(admin)
    widths = [max(len(r[i]) for r in [ADMIN_HEAD, *rows]) for i in range(len(ADMIN_HEAD))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(ADMIN_HEAD, widths, strict=True))]
    lines += ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    lines.append(f"{admin['renders']} renders each; peers: n/a (their dashboards are separate apps)")
    return "\n".join(lines)


def markdown(figures: dict[str, Any], charts: dict[str, str]) -> str:
    out = [
        f"Run of {figures['date']}: {figures['machine']}; {figures.get('measured', '')}; "
        f"`{figures['mode']}` run, {figures['rounds']} rounds, "
        f"{figures['elapsed_seconds'] / 60:.0f} min. Median of the rounds, their min and max, and the ratio of "
        "the median to django-blueque's.",
    ]
    measures = measures_of(figures)
    for scenario, title in SCENARIOS.items():
        group = [m for m in measures if m.scenario == scenario]
        if not group:
            continue
        out.append(f"\n### {title}\n")
        for m in group:
            out.append(markdown_table(m) + "\n")
        if scenario == "pickup":
            out.append("Pooled over the rounds (median / p99, samples): " + "; ".join(pooled(figures)) + ".\n")
        if scenario in charts:
            out.append(f"![{title}]({charts[scenario]})\n")
    if "admin" in figures:
        out.append("\n### django-blueque's admin queue page\n")
        out.append("| " + " | ".join(ADMIN_HEAD) + " |")
        out.append("|" + "---:|" * len(ADMIN_HEAD))
        out += ["| " + " | ".join(r) + " |" for r in admin_rows(figures["admin"])]
        out.append(
            f"\n{figures['admin']['renders']} renders each, Django's test client, a superuser logged in. "
            "The peers: n/a (their dashboards are separate applications)."
        )
    return "\n".join(out)


def write_docs(figures: dict[str, Any], charts: dict[str, str]) -> None:
    text = DOCS_PAGE.read_text()
    if BEGIN not in text or END not in text:
        raise BenchError(f"{DOCS_PAGE} has no {BEGIN} ... {END} block")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    DOCS_PAGE.write_text(f"{head}{BEGIN}\n{markdown(figures, charts)}\n{END}{tail}")


def draw_charts(json_path: Path) -> dict[str, str]:
    """One PNG per scenario into docs/images/bench/, drawn by bench/peers/charts.py under the tools venv."""
    if not TOOLS_PYTHON.exists():
        log(f"no charts: {TOOLS_PYTHON} is missing (make bench creates it)")
        return {}
    done = subprocess.run(
        [str(TOOLS_PYTHON), str(BENCH / "peers" / "charts.py"), str(json_path), str(CHARTS)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode:
        log(f"no charts: {done.stderr[-2000:]}")
        return {}
    written: dict[str, str] = json.loads(done.stdout)
    return {scenario: os.path.relpath(path, DOCS_PAGE.parent) for scenario, path in written.items()}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 rounds, smaller sizes (under 5 minutes)")
    parser.add_argument("--rounds", type=int, help="rounds (default: 2 quick, 5 full)")
    parser.add_argument("--json", type=Path, default=BENCH / "results" / "latest.json", help="raw figures")
    parser.add_argument("--no-docs", action="store_true", help="leave docs/performance.md and its charts alone")
    parser.add_argument("--only", nargs="*", choices=sorted(PYTHONS), help="these producers' systems only")
    parser.add_argument(
        "--scenarios",
        nargs="*",
        choices=["enqueue", "session", "drain", "head_of_line", "admin"],
        help=argparse.SUPPRESS,
    )
    parser.add_argument("--report", type=Path, help="print the tables of a JSON file of figures, and stop")
    args = parser.parse_args(argv)
    if args.report:
        print(report(json.loads(args.report.read_text())))
        return 0
    sizes = QUICK if args.quick else FULL
    if args.rounds:
        sizes = Sizes(**{**sizes.__dict__, "rounds": args.rounds})
    missing = [str(p) for p in PYTHONS.values() if not p.exists()]
    if missing:
        log("missing interpreters (make bench creates them): " + ", ".join(sorted(set(missing))))
        return 1

    def on_sigterm(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)  # so that every finally runs

    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        figures = run(sizes, args)
    except BenchError as exc:
        log(f"error: {exc}")
        return 1
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(figures, indent=1))
    print(report(figures))
    print(f"\nraw figures: {args.json}")
    if not args.no_docs:
        charts = draw_charts(args.json)
        write_docs(figures, charts)
        print(f"tables and charts: {DOCS_PAGE.relative_to(REPO)}, {CHARTS.relative_to(REPO)}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
