"""docs/protocol.md against the code: every key the protocol writes, and every task hash field its scripts set.

The page is written so that a client could be built from it in another
language; a key or field added without its line there fails here.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from django_blueque.protocol import STATUSES, keys

ROOT = Path(__file__).resolve().parents[2]
PAGE = (ROOT / "docs" / "protocol.md").read_text()
KEY_FUNCTIONS = [
    function
    for name, function in inspect.getmembers(keys, inspect.isfunction)
    if function.__module__ == keys.__name__
    and not name.startswith(("_", "validate_", "parse_"))
    and not name.endswith(("_id", "_member", "_entry"))
]


def documented_keys() -> set[str]:
    table = PAGE[PAGE.index("| Key | Type | Holds |") :].split("\n\n", 1)[0]
    return {key for row in table.splitlines()[2:] for key in re.findall(r"`(blueque_[^`]+)`", row.split(" | ")[0])}


def test_every_key_is_in_the_keys_table() -> None:
    assert len(KEY_FUNCTIONS) >= 15
    placeholders = {"queue": "<queue>", "listener_id": "<listener>", "task_id": "<id>", "monitor_id": "<monitor>"}
    written = set()
    for function in KEY_FUNCTIONS:
        parameters = list(inspect.signature(function).parameters)
        if "status" in parameters:
            for status in ("complete", "failed"):
                args = [status if name == "status" else placeholders[name] for name in parameters]
                written.add(function(*args))
        else:
            written.add(function(*(placeholders[name] for name in parameters)))
    assert written <= documented_keys(), written - documented_keys()


def test_every_field_the_scripts_set_is_in_the_field_list() -> None:
    fields_paragraph = PAGE[PAGE.index("Task hash fields:") :].split("\n\n", 1)[0]
    documented = set(re.findall(r"`([a-z_]+)`", fields_paragraph))
    set_by_scripts = set()
    for script in (ROOT / "django_blueque" / "protocol" / "lua").glob("*.lua"):
        for call in re.findall(r"'(?:HSET|HSETNX|HDEL)',\s*[^,]+,(.*)", script.read_text()):
            set_by_scripts.update(re.findall(r"'([a-z_]+)'", call))
    set_by_scripts -= set(STATUSES)  # values of `status`, not fields
    assert {"status", "attempt", "process_token"} <= set_by_scripts
    assert set_by_scripts <= documented, set_by_scripts - documented
