"""Archive keys: officer first, safe on every filesystem and S3, never too long."""

from __future__ import annotations

from gateway.archive.layout import clip_key, safe_part

T = "{officer}/{date}/{serial}/{stem}_{sha8}{ext}"


def test_key_layout_and_hostile_parts() -> None:
    key = clip_key(T, sha256="ab" * 32, officer="012345", serial="SN/../x", station="s", unit=None,
                   original_name="DCIM/../../etc/passwd", captured=1709281815)
    assert key == "012345/2024-03-01/SN_.._x/passwd_abababab"
    assert ".." not in key.split("/")
    assert safe_part("..", "x") == "x" and safe_part("", "fallback") == "fallback"
    assert safe_part("a\x00b\nc", "x") == "a_b_c"


def test_long_cjk_names_fit_a_file_name() -> None:
    name = "很长的文件名" * 40 + ".MP4"
    key = clip_key(T, sha256="cd" * 32, officer="012345", serial="S", station="s", unit=None,
                   original_name=name, captured=0)
    last = key.rsplit("/", 1)[1]
    assert len((last + ".manifest.json.sig").encode()) < 200
    assert last.endswith("_cdcdcdcd.MP4") and last.startswith("很长的文件名")
