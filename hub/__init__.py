"""Village Hub: the service that runs a village cultural house's smart-village equipment."""

__version__ = "0.1.0"
