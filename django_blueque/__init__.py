"""django-blueque: the Blueque task queue for Django. Importing it opens no connection."""

from .exceptions import EnqueueError

__version__ = "0.1.0.dev0"
__all__ = ["EnqueueError", "__version__"]
