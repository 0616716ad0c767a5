"""Telemetry beside the data path: MQTT, Prometheus, systemd notify."""
