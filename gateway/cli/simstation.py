"""`dockgate sim station WORKDIR`: a ready-to-run simulated station."""

from __future__ import annotations

import os
from pathlib import Path

from gateway.durable import write_atomic
from gateway.evidence.signing import keygen

FACTORY_PASSWORD = "000000"


def write_station(workdir: Path, *, station_id: str = "sim-station-01", slots: int = 8,
                  mqtt: str | None = None, reserve_bytes: int = 64 * 1024 * 1024,
                  custody_rotate_s: float = 60.0) -> Path:
    workdir = workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    secrets = workdir / "secrets"
    secrets.mkdir(mode=0o700, exist_ok=True)
    pw = secrets / "admin_password"
    if not pw.exists():
        write_atomic(pw, FACTORY_PASSWORD.encode() + b"\n", mode=0o600)
    os.chmod(pw, 0o600)
    (workdir / "archive").mkdir(exist_ok=True)
    key = secrets / "station.key"
    if not key.exists():
        keygen(key)
    mqtt_section = ""
    if mqtt:
        host, _, port = mqtt.rpartition(":")
        mqtt_section = f'\n[mqtt]\nenabled = true\nhost = "{host}"\nport = {int(port)}\n'
    text = f'''# dockgate configuration for a simulated docking station (written by `dockgate sim station`)
# Every key is documented in config/dockgate.example.toml.

[station]
id = "{station_id}"
location = "simulated precinct"
# simulated recorders drift from this machine's clock by definition: it is the
# truth here, synchronised or not (a real station keeps the default, true)
require_time_sync = false

[paths]
state_dir = "{workdir / 'state'}"
staging = "{workdir / 'staging'}"

[detect]
backend = "sim"
slots = {slots}
sim_dir = "{workdir / 'dock'}"

[recorders]
admin_password_file = "{pw}"

[ingest]
reserve_bytes = {reserve_bytes}

[evidence]
signing_key_file = "{key}"
custody_rotate_s = {custody_rotate_s}

[archive]
backend = "directory"
path = "{workdir / 'archive'}"
verify = "readback"
{mqtt_section}'''
    cfg = workdir / "dockgate.toml"
    write_atomic(cfg, text.encode())
    return cfg
