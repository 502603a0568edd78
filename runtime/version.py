"""The one place the runtime's version lives (read by hatch and by the services)."""

__version__ = "0.1.0"
