"""The demo project's settings, every response under a strict Content-Security-Policy (``csp.py``)."""

from testproject.settings import *  # noqa: F403
from testproject.settings import MIDDLEWARE

MIDDLEWARE = ["tests.browser.csp.ContentSecurityPolicyMiddleware", *MIDDLEWARE]
