"""Sphinx configuration of django-blueque's manual (``make docs``).

The pages are Markdown, read by MyST; the API reference of the protocol core
comes from its docstrings (``api.md``). ``make docs`` builds with warnings as
errors, and ``make test`` runs it, so a broken reference fails the build.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "testproject"))
# autodoc imports django_blueque.protocol only (no Django needed), but a page may
# document the Django glue too: settings for that import.
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "testproject.settings")

import django_blueque  # noqa: E402

project = "django-blueque"
author = "the django-blueque authors"
copyright = "django-blueque authors"
release = django_blueque.__version__
version = release

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.viewcode",
]
source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "images/bench/*.json"]

myst_enable_extensions = ["colon_fence", "deflist"]
# Headings become link targets (page.md#some-heading), as on GitHub.
myst_heading_anchors = 3

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "undoc-members": False, "show-inheritance": False}

nitpicky = False

html_theme = "furo"
html_title = f"django-blueque {release}"
html_static_path: list[str] = []
html_show_sourcelink = False
