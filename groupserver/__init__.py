"""groupserver: one WSGI site split across named daemon groups, each its own prefork pool."""

__version__ = "0.1.0"
