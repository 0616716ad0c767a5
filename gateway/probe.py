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
    return datetime(y, mo, d, h, mi, s, tzinfo=UTC).isoformat().replace("+00:00", "Z")


def probe(path: Path, original_name: str) -> ContainerFacts:
    suffix = Path(original_name).suffix.lower()
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
