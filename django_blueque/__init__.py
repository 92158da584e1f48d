"""django-blueque: the Blueque task queue for Django. Importing it opens no connection."""

__version__ = "0.1.0.dev0"
