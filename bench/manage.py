#!/usr/bin/env python
"""``manage.py`` of the benchmark's Django project (run from the repository root or anywhere)."""

import os
import sys
from pathlib import Path

if __name__ == "__main__":
    here = Path(__file__).resolve().parent
    sys.path.insert(0, str(here))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench_project.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
