"""ETRepo Portal: the front door of a shared research server."""

__version__ = "0.1.0"
