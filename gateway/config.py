"""The configuration: one TOML file plus its drop-ins, validated once at start.

``FILE`` and then every ``FILE.d/*.toml`` in name order are merged (tables
merged key by key, a later file wins) and validated as one config: the
package ships ``/etc/dockgate/dockgate.toml``, the admin's settings live in
``/etc/dockgate/dockgate.toml.d/`` where an upgrade never asks about them.
Unknown keys are rejected and every problem names its key and the file that
set it, so a typo in a precinct's config fails loudly at start instead of
quietly later. Secrets never live here: only paths to files holding them,
and loading the config never opens them (``dockgate status`` runs as a
member of the dockgate group, who may not look into ``credentials/``).

Why ~550 lines in one module: it is the whole schema of the file, one model
per table, read top to bottom as the documented config is, and the one way
it is read (drop-ins, paths, secrets' places); splitting the models would
split the cross-field checks from the keys they check.
"""

from __future__ import annotations

import grp
import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from gateway import DEFAULT_CONFIG as _DEFAULT_CONFIG
from gateway import drop_in_dir
from gateway.errors import ConfigError, describe_validation
from gateway.values import MAX_SIZE_BYTES, Age, Interval, Size, Timeout

_STATION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_TEMPLATE_FIELDS = {"officer", "serial", "station", "date", "year", "month", "day",
                    "stem", "ext", "sha256", "sha8", "unit"}


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


#: the station id the package ships: a station still using it is not configured yet (`dockgate run`
#: refuses to start, nothing is stamped under an id every new station would share)
PLACEHOLDER_STATION_IDS = frozenset({"station-01"})


class StationConfig(_Section):
    id: str = Field(description="Station id, unique in the district; used in MQTT topics and manifests")
    location: str = Field("", description="Where the station is; default capture place")
    agency: str = Field("", max_length=200, description="The agency it serves: a case file's Source-Organization")
    fonds: str = Field("", max_length=64, description="The agency's 全宗号 (fonds number) in case file catalogues")
    require_time_sync: bool = Field(
        True, description="Set recorder clocks, and correct capture times by the drift measured at docking, only "
                          "while the kernel says this station's clock is synchronised (NTP; gateway/timesync.py); "
                          "false: trust this clock as it is (a simulated station)")

    @field_validator("id")
    @classmethod
    def _id_ok(cls, v: str) -> str:
        if not _STATION_ID.match(v):
            raise ValueError("must be 1-64 of A-Z a-z 0-9 . _ - and start with a letter or digit")
        return v


class PathsConfig(_Section):
    state_dir: Path = Field(Path("/var/lib/dockgate"), description="Catalog database, lock and runtime status")
    staging: Path = Field(Path("/var/lib/dockgate/staging"),
                          description="Local staging for pulled clips (same disk as state_dir is fine)")


class DetectConfig(_Section):
    backend: Literal["sim", "udev"] = "udev"
    slots: int = Field(8, ge=1, le=64, description="Dock slots on this station")
    sim_dir: Path | None = Field(None, description="sim only: where `sim attach` records docked recorders")
    poll_interval_s: float = Field(0.25, gt=0, le=10)
    ports: dict[str, int] = Field(default_factory=dict,
                                  description="udev only: USB port path (e.g. 1-1.2) -> slot number")

    @model_validator(mode="after")
    def _sim_needs_dir(self) -> DetectConfig:
        if self.backend == "sim" and self.sim_dir is None:
            raise ValueError("detect.sim_dir is required when detect.backend = \"sim\"")
        bad = {p: n for p, n in self.ports.items() if not 1 <= n <= self.slots}
        if bad:
            raise ValueError(f"detect.ports: slots {sorted(bad.values())} outside 1..{self.slots}")
        if len(set(self.ports.values())) != len(self.ports):
            raise ValueError("detect.ports: two ports share a slot")
        return self


class RecordersConfig(_Section):
    admin_password_file: Path | None = Field(
        None, description="File holding the recorders' admin password (mode 0600)")
    profiles_dir: Path | None = Field(None, description="Extra firmware profiles beside the shipped ones")


class IngestConfig(_Section):
    buffer_size: int = Field(1024 * 1024, ge=64 * 1024, le=64 * 1024 * 1024,
                             description="the largest copy buffer; each slot holds four in flight")
    memory_budget: int = Field(16 * 1024 * 1024, ge=1024 * 1024, le=MAX_SIZE_BYTES,
                               description="copy buffers of all slots together; a slot's buffers follow its "
                                           "measured rate within its share")
    reserve_bytes: Size = Field(1024**3, description="Free space staging always keeps")
    max_attempts: int = Field(3, ge=1, le=100, description="Read attempts per clip within one dock")


class DirectoryArchiveConfig(_Section):
    backend: Literal["directory"]
    path: Path = Field(description="Archive root, e.g. a NAS mount")
    verify: Literal["readback", "size"] = "readback"
    key_template: str = "{officer}/{date}/{serial}/{stem}_{sha8}{ext}"

    @field_validator("key_template")
    @classmethod
    def _template_ok(cls, v: str) -> str:
        return check_key_template(v)


class S3ArchiveConfig(_Section):
    backend: Literal["s3"]
    endpoint: str | None = Field(None, description="https://host:port of MinIO/Ceph RGW; none for AWS")
    region: str = "us-east-1"
    bucket: str = Field(min_length=3, max_length=63)
    prefix: str = Field("", description="prepended to every key, e.g. 'district-7/'")
    access_key_file: Path | None = None
    secret_key_file: Path | None = None
    ca_bundle: Path | None = Field(None, description="CA certificates for a private endpoint")
    addressing_style: Literal["path", "virtual", "auto"] = "path"
    verify: Literal["readback", "checksum"] = "readback"
    key_template: str = "{officer}/{date}/{serial}/{stem}_{sha8}{ext}"
    multipart_threshold: int = Field(16 * 1024**2, ge=5 * 1024**2, le=MAX_SIZE_BYTES)
    part_size: int = Field(16 * 1024**2, ge=5 * 1024**2, le=5 * 1024**3)
    retention_mode: Literal["COMPLIANCE", "GOVERNANCE", "none"] = "COMPLIANCE"
    retention_days: int = Field(3650, ge=1, le=36500)
    connect_timeout_s: Timeout = 10.0
    read_timeout_s: Timeout = 60.0
    broad_credentials_ok: bool = Field(
        False, description="true: the access key may do more than a station's policy (`dockgate archive-policy`), "
                           "e.g. a bucket of its own; check-config then notes it instead of failing")

    @field_validator("key_template")
    @classmethod
    def _template_ok(cls, v: str) -> str:
        return check_key_template(v)

    @property
    def path(self) -> Path:  # the config's "where": for messages and the staging check
        return Path(f"s3://{self.bucket}/{self.prefix}")


ArchiveConfig = Annotated[DirectoryArchiveConfig | S3ArchiveConfig, Field(discriminator="backend")]


class ForwardConfig(_Section):
    concurrency: int = Field(2, ge=1, le=64)
    retry_initial_s: Interval = 1.0
    retry_max_s: Interval = 300.0
    attempts_per_try: int = Field(3, ge=1, le=20, description="quick retries of a transient failure before "
                                                               "the clip goes back to the queue")
    bandwidth_bytes_per_s: Size = Field(0, description="0: unlimited")
    refused_retry_s: Interval = Field(60.0, description="while the archive refuses the station (credentials, "
                                                            "permissions): try one clip this often")
    while_pulling: int = Field(1, ge=0, le=64, description="uploads at once while any slot is pulling (the "
                                                           "officer's wait comes first); 0: none")
    pause_at_pulling: int = Field(0, ge=0, le=256, description="while this many slots or more are pulling, no "
                                                               "upload starts; 0: as many as the station's CPUs")
    catch_up_bytes: Size = Field(16 * 1024**3, description="queued bytes beyond which forwarding runs at "
                                                                 "full concurrency even while slots pull")
    catch_up_s: Age = Field(1800.0, description="age of the oldest queued clip beyond which forwarding "
                                                        "runs at full concurrency even while slots pull")


class ReleaseConfig(_Section):
    policy: Literal["never", "after-archive"] = "never"
    partial: bool = Field(False, description="also release clips archived as partial")


class PurgeConfig(_Section):
    after_s: Age = Field(7 * 86400, description="keep archived clips in staging this long")
    interval_s: Interval = 60.0


class EvidenceConfig(_Section):
    signing_key_file: Path = Field(description="Station Ed25519 private key (PEM, mode 0600; dockgate keygen)")
    custody_rotate_entries: int = Field(1000, ge=1, description="Custody segment rotates after this many entries")
    custody_rotate_s: Interval = Field(300.0, description="... or after this many seconds while anything "
                                                              "happened; each seal is a signed checkpoint")
    custody_keep_days: int | None = Field(None, ge=1, le=3650, description="Remove custody segments and "
                                          "checkpoints from the station this many days after they are archived "
                                          "(with a TSA, also its token); unset: keep them all on the station")
    events_keep_days: int | None = Field(30, ge=1, le=3650, description="Forget an event from the catalog's "
                                         "outbox this many days after it was recorded, once the broker took it (with "
                                         "MQTT) and the archive holds its custody entry (the record); unset: keep all")
    tsa_url: str | None = Field(None, pattern=r"^https?://", description="RFC 3161 time-stamping authority: "
                                                                         "each checkpoint gets a token")
    tsa_ca_file: Path | None = Field(None, description="PEM certificates the TSA's tokens must chain to")
    tsa_timeout_s: Timeout = 30.0
    national_crypto: bool = Field(False, description="国密: manifests also carry an SM3 digest and an SM2 "
                                                     "signature (.manifest.json.sm2.sig)")
    sm2_key_file: Path | None = Field(None, description="SM2 private key (SEC1 PEM, mode 0600) for national_crypto")

    @model_validator(mode="after")
    def _tsa_needs_ca(self) -> EvidenceConfig:
        if self.tsa_url and self.tsa_ca_file is None:
            raise ValueError("evidence.tsa_ca_file: needed with evidence.tsa_url (the tokens are checked)")
        if self.national_crypto and self.sm2_key_file is None:
            raise ValueError("evidence.sm2_key_file: needed with evidence.national_crypto")
        return self


#: the rules' floor: footage is kept at least six months
MIN_RETENTION_DAYS = 183


def _default_classes() -> dict[str, int | Literal["permanent"]]:
    return {"standard": MIN_RETENTION_DAYS, "case": 10950, "permanent": "permanent"}


class RetentionConfig(_Section):
    """Retention by category (gateway/evidence/retention.py, docs/casefile.md): each archived object's
    S3 Object Lock retain-until follows its clip's class; an assignment only ever extends it."""

    enabled: bool = Field(False, description="Retain-until per object by class (S3 Object Lock); off: "
                                             "archive.retention_days for everything")
    classes: dict[str, int | Literal["permanent"]] = Field(
        default_factory=_default_classes,
        description="class name -> days kept after archiving, or \"permanent\"")
    categories: dict[str, str] = Field(default_factory=dict, description="category -> class")
    important: str | None = Field("permanent", description="class of clips marked important (at least)")
    case: str | None = Field("case", description="class of clips assigned to a case (at least): "
                                                 "as long as the case file")
    uncategorised: str | None = Field(None, description="class of clips without a category; default: "
                                                        "the longest class (never a short default that deletes)")
    permanent_days: int = Field(36500, ge=MIN_RETENTION_DAYS, le=36500,
                                description="what \"permanent\" means as an Object Lock date")

    @model_validator(mode="after")
    def _classes_known(self) -> RetentionConfig:
        if not self.classes:
            raise ValueError("retention.classes: give at least one class")
        for name, days in self.classes.items():
            if isinstance(days, int) and days < MIN_RETENTION_DAYS:
                raise ValueError(f"retention.classes.{name}: {days} days is below the {MIN_RETENTION_DAYS} "
                                 f"days (six months) footage must be kept")
        refs = {f"retention.categories.{c}": k for c, k in self.categories.items()}
        refs |= {f"retention.{k}": v for k, v in (("important", self.important), ("case", self.case),
                                                   ("uncategorised", self.uncategorised)) if v is not None}
        for key, cls in refs.items():
            if cls not in self.classes:
                raise ValueError(f"{key}: no class {cls!r} in retention.classes ({', '.join(self.classes)})")
        return self


class MqttConfig(_Section):
    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = Field(1883, ge=1, le=65535)
    prefix: str = Field("dockgate", pattern=r"^[A-Za-z0-9._/-]{1,64}$")
    client_id: str | None = None
    username: str | None = None
    password_file: Path | None = None
    tls: bool = False
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    keepalive: int = Field(30, ge=5, le=3600)
    discovery: bool = Field(False, description="Home Assistant MQTT discovery")
    discovery_prefix: str = "homeassistant"


class MetricsConfig(_Section):
    enabled: bool = False
    listen: str = Field("127.0.0.1:9808", pattern=r"^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]*):\d{1,5}$")


class WebConfig(_Section):
    """The station screen and supervisor review (gateway/web, docs/web.md)."""

    enabled: bool = Field(False, description="Serve the station screen and the supervisors' review")
    listen: str = Field("127.0.0.1:8088", pattern=r"^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]*):\d{1,5}$",
                        description="HOST:PORT; keep 127.0.0.1 unless TLS is on and the network is trusted")
    tls_cert_file: Path | None = Field(None, description="PEM certificate chain: serve HTTPS")
    tls_key_file: Path | None = Field(None, description="PEM private key of tls_cert_file")
    accounts_file: Path | None = Field(None, description="Supervisor accounts (dockgate web-user add); "
                                                         "default <state_dir>/web/accounts.json")
    officer_pins_file: Path | None = Field(None, description="Officers' PINs for marking on the screen "
                                                             "(dockgate web-pin set); default "
                                                             "<state_dir>/web/officer-pins.json")
    session_lifetime_s: float = Field(8 * 3600, gt=0, le=7 * 86400, description="A login lasts this long")
    login_attempts: int = Field(5, ge=1, le=100, description="Wrong passwords or PINs before a lock-out")
    lockout_s: float = Field(300.0, gt=0, le=86400, description="How long a lock-out lasts; each lock-out "
                                                                 "of the same key within a day doubles it")
    hostnames: list[str] = Field([], description="Names the pages answer to besides localhost, the listen "
                                                 "address and this machine's hostname (a request for any other "
                                                 "Host is refused: DNS rebinding)")
    max_streams: int = Field(64, ge=1, le=10_000, description="Open station-screen streams, all clients")
    max_streams_per_client: int = Field(4, ge=1, le=1000, description="Open station-screen streams per "
                                                                       "client address")
    heavy_timeout_s: float = Field(30.0, gt=0, le=600, description="A search, statistics view, CSV import or "
                                                                   "export that takes longer is cancelled")
    language: Literal["zh", "en"] = Field("zh", description="Default language of the pages")
    unassigned_after_h: float = Field(24.0, gt=0, description="Statistics: a clip without a case after this "
                                                              "many hours is counted")

    @field_validator("hostnames")
    @classmethod
    def _names(cls, v: list[str]) -> list[str]:
        for name in v:
            if not re.fullmatch(r"[A-Za-z0-9.-]{1,253}|\[[0-9a-fA-F:]+\]", name):
                raise ValueError(f"not a host name: {name!r}")
        return [n.lower() for n in v]

    @model_validator(mode="after")
    def _tls_pair(self) -> WebConfig:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("web.tls_cert_file and web.tls_key_file: give both or neither")
        return self


class Config(_Section):
    station: StationConfig
    paths: PathsConfig = PathsConfig()
    detect: DetectConfig = DetectConfig()
    recorders: RecordersConfig = RecordersConfig()
    ingest: IngestConfig = IngestConfig()
    archive: ArchiveConfig
    forward: ForwardConfig = ForwardConfig()
    release: ReleaseConfig = ReleaseConfig()
    purge: PurgeConfig = PurgeConfig()
    evidence: EvidenceConfig
    mqtt: MqttConfig = MqttConfig()
    metrics: MetricsConfig = MetricsConfig()
    web: WebConfig = WebConfig()
    retention: RetentionConfig = RetentionConfig()

    #: the file this was loaded from (not a TOML key)
    source: Path = Field(Path("<memory>"), exclude=True)
    #: its drop-ins merged over it, in order (not a TOML key)
    drop_ins: tuple[Path, ...] = Field((), exclude=True)
    #: config key -> the name a secret in use was given relatively: what the unit must load as a
    #: credential (LoadCredential=NAME:<config folder>/credentials/NAME) for the service to read it
    credentials: dict[str, str] = Field(default_factory=dict, exclude=True)

    @property
    def placeholder_id(self) -> bool:
        """True while station.id is still the shipped placeholder."""
        return self.station.id in PLACEHOLDER_STATION_IDS

    @property
    def catalog_path(self) -> Path:
        return self.paths.state_dir / "catalog.sqlite"

    @property
    def run_dir(self) -> Path:
        return self.paths.state_dir / "run"

    @property
    def custody_dir(self) -> Path:
        return self.paths.state_dir / "custody"

    @property
    def public_key_file(self) -> Path:
        return self.evidence.signing_key_file.with_suffix(".pub.pem")


def check_key_template(v: str) -> str:
    names = set(re.findall(r"{(\w+)[^}]*}", v))
    unknown = names - _TEMPLATE_FIELDS
    if unknown:
        raise ValueError(f"unknown field(s) {sorted(unknown)}; allowed: {sorted(_TEMPLATE_FIELDS)}")
    if "sha256" not in names and "sha8" not in names:
        raise ValueError("must contain {sha256} or {sha8} so that distinct clips never share a key")
    if v.startswith("/") or ".." in v.split("/"):
        raise ValueError("must be a relative path without '..'")
    return v


#: where every command looks when not given -c (the Debian package's conffile)
DEFAULT_CONFIG = Path(_DEFAULT_CONFIG)


def _resolve(base: Path, p: Path | None) -> Path | None:
    if p is None:
        return None
    p = p.expanduser()
    return p if p.is_absolute() else (base / p)


def _secret(base: Path, p: Path | None) -> Path | None:
    """A secret's file. A relative name is looked up among systemd's
    credentials first (``LoadCredential=`` puts them in
    ``$CREDENTIALS_DIRECTORY``: the service), then in ``credentials/`` beside
    the config (where the unit loads them from: an admin's `check-config`),
    then beside the config itself; a file found nowhere is named where it
    belongs (``credentials/``, if there is one). Nothing is opened: a folder this user may
    not look into (``credentials/`` is root's; a group member runs `status`)
    is where the file is taken to be, and only a command that reads the
    secret finds out it cannot."""
    if p is None:
        return None
    p = p.expanduser()
    if p.is_absolute():
        return p
    creds = os.environ.get("CREDENTIALS_DIRECTORY")
    for folder in ([Path(creds)] if creds else []) + [base / "credentials"]:
        try:
            os.stat(folder / p)
        except PermissionError:
            return folder / p
        except OSError:
            continue
        return folder / p
    # found nowhere: name the place it belongs (where the unit loads credentials from), if there is one
    return base / "credentials" / p if os.path.lexists(base / "credentials") else base / p


def _merge(into: dict[str, Any], new: dict[str, Any], file: Path, origin: dict[str, Path],
           prefix: str = "") -> None:
    """Deep-merge *new* into *into* (tables key by key; anything else is
    replaced whole), recording in *origin* which file set each key."""
    for key, value in new.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value, file, origin, dotted + ".")
        else:
            into[key] = value
            for old in [k for k in origin if k.startswith(dotted + ".")]:
                del origin[old]
        origin[dotted] = file


def in_dockgate_group() -> bool:
    """Is this process in the dockgate group (the operators')?"""
    try:
        return grp.getgrnam("dockgate").gr_gid in {os.getegid(), *os.getgroups()}
    except KeyError:
        return False


def _denied(path: Path) -> str:
    """What to do about a config file or folder this user may not read."""
    if in_dockgate_group():  # joining it would not help: the file is not the group's
        return (f"permission denied: the dockgate group may read the config and its drop-ins; make this one "
                f"theirs: chgrp dockgate {path} && chmod g+r{'x' if path.is_dir() else ''} {path}")
    return ("permission denied: members of the dockgate group may read the config, status and events (sudo "
            "adduser $USER dockgate, then log in again)")


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(path, ["file not found"]) from None
    except PermissionError:
        raise ConfigError(path, [_denied(path)]) from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(path, [f"cannot read: {e}"]) from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(path, [f"not valid TOML: {e}"]) from None


def _credential_names(cfg: Config) -> dict[str, str]:
    """The secrets *cfg* (not yet resolved) names relatively and `run` reads."""
    named: list[tuple[str, Path | None]] = [("recorders.admin_password_file", cfg.recorders.admin_password_file),
                                            ("evidence.signing_key_file", cfg.evidence.signing_key_file),
                                            ("evidence.sm2_key_file", cfg.evidence.sm2_key_file)]
    if isinstance(cfg.archive, S3ArchiveConfig):
        named += [("archive.access_key_file", cfg.archive.access_key_file),
                  ("archive.secret_key_file", cfg.archive.secret_key_file)]
    if cfg.mqtt.enabled:
        named += [("mqtt.password_file", cfg.mqtt.password_file), ("mqtt.key_file", cfg.mqtt.key_file)]
    return {key: str(p) for key, p in named if p is not None and not p.expanduser().is_absolute()}


def _format_errors(errors: list[Any]) -> list[str]:
    # discriminated unions put the tag in the location; drop it for people
    return [re.sub(r"^archive\.(directory|s3)(?=[.:])", "archive", p) for p in describe_validation(errors)]


def load_config(path: Path | str) -> Config:
    """Read *path* and its drop-ins (``PATH.d/*.toml``, name order), merge
    and validate them as one; raise ConfigError naming file and keys."""
    path = Path(path)
    raw = _read_toml(path)
    origin: dict[str, Path] = {}
    _merge({}, raw, path, origin)
    folder = drop_in_dir(path)
    try:
        drop_ins = sorted(p for p in folder.iterdir() if p.suffix == ".toml" and not p.name.startswith("."))
    except (FileNotFoundError, NotADirectoryError):
        drop_ins = []
    except PermissionError:
        raise ConfigError(folder, [_denied(folder)]) from None
    for p in drop_ins:
        extra = _read_toml(p)
        for internal in ("source", "drop_ins", "credentials"):
            if internal in extra:
                raise ConfigError(p, [f"{internal}: unknown key"])
        _merge(raw, extra, p, origin)
    return config_from_dict(raw, path, tuple(drop_ins), origin)


def _where(problem: str, main: Path, origin: dict[str, Path]) -> str:
    """*problem* ('dotted.key: what') with the drop-in that set the key."""
    key = problem.split(":", 1)[0]
    while key:
        if key in origin:
            return problem if origin[key] == main else f"{problem} (set in {origin[key]})"
        key = key.rpartition(".")[0]
    return problem


def config_from_dict(raw: dict[str, object], path: Path, drop_ins: tuple[Path, ...] = (),
                     origin: dict[str, Path] | None = None) -> Config:
    for internal in ("source", "drop_ins", "credentials"):
        if internal in raw:
            raise ConfigError(path, [f"{internal}: unknown key"])
    try:
        cfg = Config.model_validate({**raw, "source": path, "drop_ins": drop_ins})
    except ValidationError as e:
        raise ConfigError(path, [_where(p, path, origin or {}) for p in _format_errors(e.errors())]) from None
    base = path.resolve().parent
    credentials = _credential_names(cfg)
    # relative paths are relative to the config file (its drop-ins' too), never to the cwd
    paths = cfg.paths.model_copy(update={
        "state_dir": _resolve(base, cfg.paths.state_dir),
        "staging": _resolve(base, cfg.paths.staging),
    })
    detect = cfg.detect.model_copy(update={"sim_dir": _resolve(base, cfg.detect.sim_dir)})
    recorders = cfg.recorders.model_copy(update={
        "admin_password_file": _secret(base, cfg.recorders.admin_password_file),
        "profiles_dir": _resolve(base, cfg.recorders.profiles_dir),
    })
    archive = cfg.archive
    if isinstance(archive, DirectoryArchiveConfig):
        archive = archive.model_copy(update={"path": _resolve(base, archive.path)})
    else:
        archive = archive.model_copy(update={
            "access_key_file": _secret(base, archive.access_key_file),
            "secret_key_file": _secret(base, archive.secret_key_file),
            "ca_bundle": _resolve(base, archive.ca_bundle)})
    evidence = cfg.evidence.model_copy(update={
        "signing_key_file": _secret(base, cfg.evidence.signing_key_file),
        "sm2_key_file": _secret(base, cfg.evidence.sm2_key_file),
        "tsa_ca_file": _resolve(base, cfg.evidence.tsa_ca_file)})
    mqtt = cfg.mqtt.model_copy(update={
        "password_file": _secret(base, cfg.mqtt.password_file), "key_file": _secret(base, cfg.mqtt.key_file),
        "ca_file": _resolve(base, cfg.mqtt.ca_file), "cert_file": _resolve(base, cfg.mqtt.cert_file)})
    cfg = cfg.model_copy(update={"paths": paths, "detect": detect, "recorders": recorders,
                                 "archive": archive, "evidence": evidence, "mqtt": mqtt, "credentials": credentials})
    problems = []
    if archive.path.resolve() == paths.staging.resolve():
        problems.append("archive.path: must not be the staging directory")
    if problems:
        raise ConfigError(path, problems)
    return cfg
