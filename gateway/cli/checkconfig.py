"""`dockgate check-config`: everything `dockgate run` would load, loaded the
same way, so that "ok" means the service starts: the config, the firmware
profiles, every secret and key file (present, readable, not readable by
others), the archive's CA bundle and the MQTT TLS files; and, where the
service is installed, as the service will run: as its user, through the
credentials its unit gives it (``LoadCredential=``), into an archive folder
that user may write."""

from __future__ import annotations

import grp
import json
import os
import pwd
import re
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
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


# -- as the service will run ------------------------------------------------------------------------
UNIT = "dockgate.service"


@dataclass
class ServiceView:
    """What the unit gives the daemon: its user and groups, its credentials
    (id -> the file systemd loads it from), the config it runs and the paths
    its sandbox lets it write."""

    user: str = "dockgate"
    groups: list[str] = field(default_factory=list)
    credentials: dict[str, Path] = field(default_factory=dict)
    config: Path | None = None
    writable: list[Path] = field(default_factory=list)

    @classmethod
    def parse(cls, text: str) -> ServiceView:
        """The unit followed by its drop-ins (later lines win; an empty
        ``LoadCredential=`` or ``ReadWritePaths=`` clears what came before, as systemd does)."""
        view = cls()
        section = ""
        for raw in text.splitlines():
            line = raw.strip()
            if not line or line.startswith(("#", ";")):
                continue
            if line.startswith("["):
                section = line
                continue
            if section != "[Service]" or "=" not in line:
                continue
            key, value = (x.strip() for x in line.split("=", 1))
            if key == "User":
                view.user = value
            elif key == "SupplementaryGroups":
                view.groups = view.groups + value.split() if value else []
            elif key == "LoadCredential":
                if not value:
                    view.credentials = {}
                elif ":" in value:
                    cid, src = value.split(":", 1)
                    view.credentials.setdefault(cid, Path(src))  # systemd ignores a repeated id
            elif key == "ReadWritePaths":
                view.writable = view.writable + [Path(p.lstrip("-+")) for p in value.split()] if value else []
            elif key == "StateDirectory":
                view.writable += [Path("/var/lib") / p.split(":")[0] for p in value.split()]
            elif key == "ExecStart" and (m := re.search(r"\s(?:-c|--config)[ =](\S+)", value)):
                view.config = Path(m.group(1))
        return view


#: where systemd looks for units, most important first (Debian 12 ships units in /lib, 13 in /usr/lib)
UNIT_DIRS = ("etc/systemd/system", "run/systemd/system", "usr/local/lib/systemd/system", "usr/lib/systemd/system",
             "lib/systemd/system")


def installed_service(root: Path = Path("/")) -> ServiceView | None:
    """The unit and its drop-ins as systemd will load them at the next
    daemon-reload (read from disk, so a drop-in `setup-systemd` just wrote
    counts): None where no dockgate.service is installed."""
    fragment = next((root / d / UNIT for d in UNIT_DIRS if (root / d / UNIT).is_file()), None)
    if fragment is None:
        return None
    drop_ins: dict[str, Path] = {}
    for d in reversed(UNIT_DIRS):  # a drop-in of the same name in a more important folder wins
        folder = root / d / f"{UNIT}.d"
        if folder.is_dir():
            drop_ins.update({p.name: p for p in folder.glob("*.conf") if p.is_file()})
    texts = [fragment, *(drop_ins[n] for n in sorted(drop_ins))]
    try:
        return ServiceView.parse("\n".join(p.read_text(encoding="utf-8", errors="replace") for p in texts))
    except OSError:
        return None


def _access(items: list[tuple[str, str]]) -> dict[str, tuple[bool, bool]]:
    return {p: (os.path.isdir(p) if m == "dir" else os.path.exists(p),
                os.access(p, (os.W_OK | os.X_OK) if m == "dir" else os.R_OK)) for p, m in items}


def _probe(view: ServiceView, items: list[tuple[str, str]]) -> dict[str, tuple[bool, bool]]:
    """path -> (exists, accessible) as the service's user with its groups
    (os.access: ACLs and read-only mounts count); needs root, or to be that
    user. A forked child takes the user's ids: nothing is executed."""
    pw = pwd.getpwnam(view.user)
    if os.geteuid() == pw.pw_uid:
        return _access(items)
    if os.geteuid() != 0:
        raise PermissionError(f"only root can take user {view.user!r}'s place")
    gids = sorted(set(os.getgrouplist(view.user, pw.pw_gid)) | {grp.getgrnam(g).gr_gid for g in view.groups})
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        code = 1
        try:
            os.close(r)
            os.setgroups(gids)
            os.setgid(pw.pw_gid)
            os.setuid(pw.pw_uid)
            with os.fdopen(w, "w") as out:
                json.dump(_access(items), out)
            code = 0
        finally:
            os._exit(code)
    os.close(w)
    with os.fdopen(r) as inp:
        data = inp.read()
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise OSError(f"the check as user {view.user!r} failed")
    return {p: (bool(e), bool(a)) for p, (e, a) in json.loads(data).items()}


def _within(path: Path, folders: list[Path]) -> bool:
    p = path.resolve()
    return any(p == f.resolve() or f.resolve() in p.parents for f in folders)


def check_as_service(cfg: Config, view: ServiceView) -> list[str]:
    """What the service, as its user and through the unit's credentials,
    would stop on or fail at: every secret named relatively must be one of
    the unit's credentials whose file is there, every other file must be
    readable by the user, and a directory archive must exist and be
    writable by it (and by the sandbox)."""
    from gateway.cli.install import CREDENTIALS_DROPIN, DROPIN
    from gateway.secrets import read_secret

    problems: list[str] = []
    for key, name in sorted(cfg.credentials.items()):
        if "/" in name:
            problems.append(f"{key}: {name!r}: a credential's name has no folder; put the file in "
                            f"{cfg.source.resolve().parent / 'credentials'}/ and name it by its file name")
        elif name not in view.credentials:
            problems.append(f"{key}: {name!r} is not among the unit's credentials (LoadCredential=), so the service "
                            f"cannot read it: run `dockgate setup-systemd` (it writes /{CREDENTIALS_DROPIN}), then "
                            f"systemctl daemon-reload")
        else:  # systemd reads it as root; a missing file fails the start with 243/CREDENTIALS
            _try(problems, key, lambda src=view.credentials[name]: read_secret(src))  # type: ignore[misc]
    readable = [(k, p) for k, p in (
        ("recorders.profiles_dir", cfg.recorders.profiles_dir), ("evidence.tsa_ca_file", cfg.evidence.tsa_ca_file),
        ("archive.ca_bundle", getattr(cfg.archive, "ca_bundle", None)),
        ("mqtt.ca_file", cfg.mqtt.ca_file if cfg.mqtt.enabled else None),
        ("mqtt.cert_file", cfg.mqtt.cert_file if cfg.mqtt.enabled else None),
        *[(k, getattr_path(cfg, k)) for k in _SECRET_KEYS if k not in cfg.credentials]) if p is not None]
    items = [(str(p), "file") for _, p in readable]
    archive = cfg.archive.path if cfg.archive.backend == "directory" else None
    if archive is not None:
        items.append((str(archive), "dir"))
    try:
        seen = _probe(view, items)
    except (KeyError, OSError, ValueError) as e:
        return [*problems, f"could not check as user {view.user!r} (run check-config as root): {e}"]
    for key, p in readable:
        exists, ok = seen[str(p)]
        if exists and not ok:
            problems.append(f"{key}: {p}: user {view.user!r} cannot read it (the service runs as {view.user!r})")
    if archive is not None:
        exists, ok = seen[str(archive)]
        if not exists:
            problems.append(f"archive.path: {archive}: no such folder; make it for the service: install -d -o "
                            f"{view.user} -g {view.user} -m 0750 {archive} (or mount the NAS there)")
        elif not ok:
            problems.append(f"archive.path: {archive}: user {view.user!r} cannot write it (chown {view.user}: "
                            f"{archive}, or the NAS export's owner)")
        elif not _within(archive, view.writable):
            problems.append(f"archive.path: {archive}: read-only in the service's sandbox: run `dockgate "
                            f"setup-systemd` (it writes /{DROPIN}), then systemctl daemon-reload")
    return problems


_SECRET_KEYS = ("recorders.admin_password_file", "evidence.signing_key_file", "evidence.sm2_key_file",
                "archive.access_key_file", "archive.secret_key_file", "mqtt.password_file", "mqtt.key_file")


def getattr_path(cfg: Config, key: str) -> Path | None:
    """The resolved path at dotted *key* (None: not set, or not in use)."""
    section, name = key.split(".")
    if section == "mqtt" and not cfg.mqtt.enabled:
        return None
    value = getattr(getattr(cfg, section), name, None)
    return value if isinstance(value, Path) else None
