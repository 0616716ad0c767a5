"""Shipped firmware profiles: one TOML file per recorder model (data, not code)."""
