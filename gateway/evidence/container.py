"""Container facts from the clip's own headers (pymediainfo, which bundles
libmediainfo): format, duration, creation time, codecs, and whether the file
is truncated (a recorder unplugged or out of power while recording)."""

from __future__ import annotations

import logging
import re
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

# formats where a missing index (moov) or duration means the recording was cut
_INDEXED = {"MPEG-4", "QuickTime", "Matroska", "WebM", "AVI"}
_MEDIA_SUFFIXES = {".mp4", ".mov", ".m4v", ".3gp", ".avi", ".mkv", ".webm", ".ts", ".wav", ".mp3",
                   ".aac", ".m4a", ".amr", ".jpg", ".jpeg", ".png"}


@dataclass(frozen=True)
class ContainerFacts:
    format: str | None = None
    duration_s: float | None = None
    created: str | None = None          # as the container says (recorder clock)
    video_codec: str | None = None
    audio_codec: str | None = None
    width: int | None = None
    height: int | None = None
    truncated: bool = False
    reason: str | None = None           # why truncated, or why facts are missing

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


def _parse_time(value: str | None) -> str | None:
    """mediainfo writes 'UTC 2024-03-01 08:30:15' or '2024-03-01 08:30:15 UTC'."""
    if not value:
        return None
    m = re.search(r"(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})", value)
    if not m:
        return None
    y, mo, d, h, mi, s = (int(x) for x in m.groups())
    if y < 1990:  # 1904/1970 epochs: the recorder never set it
        return None
    try:
        return datetime(y, mo, d, h, mi, s, tzinfo=UTC).isoformat().replace("+00:00", "Z")
    except ValueError:  # month 13, second 61: a container's own word, no time at all
        return None


# container signatures (offset, magic): anything else is not worth a full scan
_MAGIC = ((4, b"ftyp"), (4, b"moov"), (4, b"mdat"), (4, b"free"), (4, b"wide"), (4, b"skip"), (0, b"RIFF"),
          (0, b"\x1a\x45\xdf\xa3"), (0, b"\xff\xd8\xff"), (0, b"\x89PNG"), (0, b"ID3"), (0, b"\x00\x00\x01\xba"),
          (0, b"#!AMR"), (0, b"OggS"), (0, b"fLaC"), (0, b"\x47"), (0, b"\xff\xf1"), (0, b"\xff\xf9"),
          (0, b"\xff\xfb"), (0, b"\xff\xf3"))


def sniff(path: Path) -> bool:
    """Does the file start like a container mediainfo can index? libmediainfo
    scans a file it cannot place from end to end (0.6 s for 20 MB here), which
    would make stamping the bottleneck for no information."""
    try:
        with open(path, "rb") as f:
            head = f.read(12)
    except OSError:
        return False
    return any(head[off:off + len(magic)] == magic for off, magic in _MAGIC)


def probe(path: Path, original_name: str) -> ContainerFacts:
    suffix = Path(original_name).suffix.lower()
    if not sniff(path):
        reason = f"a {suffix} file whose container is not recognised" if suffix in _MEDIA_SUFFIXES else None
        return ContainerFacts(reason=reason)
    try:
        from pymediainfo import MediaInfo

        info = MediaInfo.parse(str(path))
    except Exception as e:  # the library missing or failing is no reason to lose a clip
        log.warning("cannot probe %s: %s", original_name, e)
        return ContainerFacts(reason=f"probe failed: {e}")
    general = next((t for t in info.tracks if t.track_type == "General"), None)
    video = next((t for t in info.tracks if t.track_type == "Video"), None)
    audio = next((t for t in info.tracks if t.track_type == "Audio"), None)
    if general is None:
        return ContainerFacts(reason="no container information")
    fmt = general.format
    duration = general.duration
    duration_s = round(float(duration) / 1000, 3) if duration not in (None, "") else None
    created = _parse_time(general.encoded_date or general.tagged_date or general.recorded_date)
    truncated, reason = False, None
    if str(general.istruncated or "").lower() == "yes":
        truncated, reason = True, "container says the file is truncated"
    elif fmt in _INDEXED and video is None and audio is None:
        truncated, reason = True, f"{fmt} without any playable track (index missing)"
    elif fmt in _INDEXED and duration_s is None:
        truncated, reason = True, f"{fmt} without a duration (index missing)"
    elif fmt is None and suffix in _MEDIA_SUFFIXES:
        reason = f"a {suffix} file whose container is not recognised"
    return ContainerFacts(format=fmt, duration_s=duration_s, created=created,
                          video_codec=video.format if video else None,
                          audio_codec=audio.format if audio else None,
                          width=int(video.width) if video and video.width else None,
                          height=int(video.height) if video and video.height else None,
                          truncated=truncated, reason=reason)
