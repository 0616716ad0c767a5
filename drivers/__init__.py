"""Recorder access: the driver contract, detection backends, protocol families
and the simulator. Nothing in here knows about the catalog or the archive."""
