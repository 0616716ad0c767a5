"""`dockgate check-config`: everything `dockgate run` would load, loaded the
same way, so that "ok" means the service starts: the config, the firmware
profiles, every secret and key file (present, readable, not readable by
others), the archive's CA bundle and the MQTT TLS files."""

from __future__ import annotations

import ssl
from collections.abc import Callable
from pathlib import Path

from gateway.config import Config
from gateway.errors import DockgateError


def _try(problems: list[str], what: str, fn: Callable[[], object]) -> None:
    try:
        fn()
    except DockgateError as e:
        problems.append(f"{what}: {e}")
    except (OSError, ssl.SSLError, ValueError) as e:
        problems.append(f"{what}: {e}")


def _exists(path: Path) -> None:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found")


def check_station(cfg: Config) -> list[str]:
    """Every problem `run` would stop on, one line each (empty: all good)."""
    from drivers.profiles import Registry
    from gateway.evidence.signing import load_signer
    from gateway.secrets import read_secret

    problems: list[str] = []
    _try(problems, "recorders.profiles_dir", lambda: Registry.load(cfg.recorders.profiles_dir))
    secrets = [("recorders.admin_password_file", cfg.recorders.admin_password_file)]
    _try(problems, "evidence.signing_key_file", lambda: load_signer(cfg.evidence.signing_key_file))
    a = cfg.archive
    if a.backend == "s3":
        secrets += [("archive.access_key_file", a.access_key_file), ("archive.secret_key_file", a.secret_key_file)]
        if (bundle := a.ca_bundle) is not None:
            _try(problems, "archive.ca_bundle", lambda: _exists(bundle))
    if (tsa_ca := cfg.evidence.tsa_ca_file) is not None:
        _try(problems, "evidence.tsa_ca_file", lambda: _exists(tsa_ca))
    m = cfg.mqtt
    if m.enabled:
        secrets += [("mqtt.password_file", m.password_file), ("mqtt.key_file", m.key_file)]
    for key, path in secrets:
        if path is not None:
            _try(problems, key, lambda path=path: read_secret(path))  # type: ignore[misc]
    if m.enabled and m.tls:
        def tls() -> None:
            ctx = ssl.create_default_context(cafile=str(m.ca_file) if m.ca_file else None)
            if m.cert_file:
                ctx.load_cert_chain(str(m.cert_file), str(m.key_file) if m.key_file else None)
        _try(problems, "mqtt TLS files", tls)
    return problems
