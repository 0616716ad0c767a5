"""The simulated docking station: recorders as folders, served through the
real code paths (the folder's storage/ is the mounted volume)."""
