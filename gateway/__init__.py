"""dockgate: the edge gateway for body-worn recorder docking stations."""

__version__ = "0.1.0"
