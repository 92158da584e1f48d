"""RQ's task functions (workers import them by path: ``rq_app.noop``)."""

from bench_project.taskbody import record


def noop(label):
    record(label)


def sleep(label, seconds):
    record(label, seconds)
