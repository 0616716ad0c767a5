"""The archivist's case file: one case over clips of two officers from two
recorders (one clip joining the case by a later amendment, one clip of the
same officer not in it), exported from the archive as a BagIt bag, checked
by bagit.py and `dockgate verify --bag`, and its chain-of-custody report."""

from __future__ import annotations

import json
import re
import shutil
import stat
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.cli.simstation import write_station
from gateway.config import load_config
from tests.helpers import DaemonProc, attach, dockgate, sha256_file

pytestmark = pytest.mark.e2e
CASE = "A-2024-015"
OFFICERS = ("0123456", "0654321")


def ffmpeg_clip(path: Path, created: str, seconds: int = 2) -> None:
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc=duration={seconds}:size=160x120:rate=10",
                    "-f", "lavfi", "-i", f"sine=duration={seconds}", "-c:v", "mpeg4", "-c:a", "aac", "-shortest",
                    "-metadata", f"creation_time={created}", str(path)], check=True)


def recorder(root: Path, serial: str, officer: str, name: str, clips: dict[str, str]) -> Path:
    day = root / "storage" / "DCIM" / "20240301"
    day.mkdir(parents=True)
    (root / "device.toml").write_text(f'serial = "{serial}"\nofficer = "{officer}"\nofficer_name = "{name}"\n'
                                      f'unit = "城关派出所"\nprotocol = "bc-text"\n')
    for n, (stamp, created) in enumerate(clips.items(), start=1):
        ffmpeg_clip(day / f"{officer}_{stamp}_{n:04d}.MP4", created)
    return root


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    tmp = tmp_path_factory.mktemp("casefile")
    rec1 = recorder(tmp / "rec1", "ZF00042", OFFICERS[0], "张伟", {
        "20240301083015": "2024-03-01T08:30:15Z",    # in the case from the start
        "20240301100000": "2024-03-01T10:00:00Z"})   # never in the case
    rec2 = recorder(tmp / "rec2", "ZF00077", OFFICERS[1], "李娜", {
        "20240301084000": "2024-03-01T08:40:00Z",    # in the case from the start
        "20240301110000": "2024-03-01T11:00:00Z"})   # joins the case by amendment
    station = write_station(tmp / "station", slots=2, reserve_bytes=0, custody_rotate_s=1.0)
    cfg = load_config(station)
    for officer in OFFICERS:
        dockgate("assign", "-c", str(station), "--officer", officer, "--from", "2024-03-01T08:00:00+00:00",
                 "--to", "2024-03-01T09:00:00+00:00", "--case", CASE, "--proof", "妨害公务", "--category", "obstruction")
    d = DaemonProc(station, tmp / "daemon.log").start()
    try:
        attach(station, rec1, 1)
        attach(station, rec2, 2)
        d.wait_for(lambda s: s["clips"]["archived"] == 4 and s["queue"]["clips"] == 0, timeout=90,
                   what="4 clips archived")
        dockgate("assign", "-c", str(station), "--officer", OFFICERS[1], "--from", "2024-03-01T10:30:00+00:00",
                 "--to", "2024-03-01T11:30:00+00:00", "--case", CASE, "--proof", "妨害公务")
        d.wait_for(lambda s: any(cfg.archive.path.rglob("*.amendment-*.json.sig")), timeout=30,
                   what="amendment archived")
    finally:
        assert d.stop() == 0  # a clean stop seals the custody log and archives it with a checkpoint
    bag = tmp / "bag"
    started = time.monotonic()
    out = dockgate("case", "export", CASE, "-c", str(station), "--out", str(bag))
    took = time.monotonic() - started
    size = sum(p.stat().st_size for p in bag.rglob("*") if p.is_file())
    print(f"\nexport: {took:.2f} s, bag {size} bytes\n{out.stdout}")
    yield {"station": station, "archive": cfg.archive.path, "pub": cfg.public_key_file, "bag": bag, "tmp": tmp}


def media_in(bag: Path) -> dict[str, Path]:
    """Clips in the bag by file name."""
    return {p.name: p for p in (bag / "data" / "archive").rglob("*.MP4")}


def clip_named(bag: Path, stamp: str) -> Path:
    (p,) = [p for name, p in media_in(bag).items() if f"_{stamp}_" in name]
    return p


def flip(path: Path) -> None:
    path.chmod(path.stat().st_mode | stat.S_IWUSR)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 1
    path.write_bytes(bytes(data))


def bagit_validate(bag: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(Path(sys.executable).parent / "bagit.py"), "--validate", str(bag)],
                          capture_output=True, text=True, check=False)


def test_the_bag_holds_the_case_clips_of_both_officers_and_no_other(case: dict[str, Path]) -> None:
    names = media_in(case["bag"])
    assert len(names) == 3
    assert {n.split("_")[0] for n in names} == set(OFFICERS)
    assert not any("_20240301100000_" in n for n in names)  # same officer, not in the case


def test_a_clip_that_joined_the_case_by_amendment_comes_with_its_amendment(case: dict[str, Path]) -> None:
    joined = clip_named(case["bag"], "20240301110000")
    (amend,) = joined.parent.glob(joined.name + ".amendment-*.json")
    assert json.loads(amend.read_bytes())["case_number"] == CASE
    assert Path(str(amend) + ".sig").exists()


def test_each_clip_comes_with_its_signed_manifest_byte_for_byte(case: dict[str, Path]) -> None:
    root = case["bag"] / "data" / "archive"
    for p in media_in(case["bag"]).values():
        key = p.relative_to(root)
        for suffix in (".manifest.json", ".manifest.json.sig"):
            assert (root / f"{key}{suffix}").read_bytes() == (case["archive"] / f"{key}{suffix}").read_bytes()
        assert sha256_file(p) == sha256_file(case["archive"] / key)


def test_the_custody_excerpt_comes_with_the_checkpoints_covering_it(case: dict[str, Path]) -> None:
    custody = case["bag"] / "data" / "archive" / "custody"
    segments = list(custody.rglob("custody-*.jsonl"))
    checkpoints = list(custody.rglob("checkpoint-*.json"))
    assert segments and checkpoints
    shas = {sha256_file(p) for p in media_in(case["bag"]).values()}
    stamped = {json.loads(line)["data"]["sha256"] for seg in segments for line in seg.read_bytes().splitlines()
               if json.loads(line).get("event") == "stamped"}  # other entries: redacted
    assert shas <= stamped
    covered = {json.loads(cp.read_bytes())["seq"] for cp in checkpoints}
    last = {max(json.loads(line)["seq"] for line in seg.read_bytes().splitlines()) for seg in segments}
    assert covered & last  # a checkpoint names the last entry of an included segment


def test_bagit_validates_the_export(case: dict[str, Path]) -> None:
    r = bagit_validate(case["bag"])
    assert r.returncode == 0, r.stderr
    assert (case["bag"] / "manifest-sha256.txt").exists()


def test_dockgate_verify_bag_passes_offline(case: dict[str, Path]) -> None:
    r = dockgate("verify", "--bag", str(case["bag"]), "--pubkey", str(case["pub"]))
    assert r.stdout.startswith("OK: 3 clips"), r.stdout


@pytest.fixture
def tampered(case: dict[str, Path], tmp_path: Path) -> tuple[Path, str]:
    copy = tmp_path / "bag"
    shutil.copytree(case["bag"], copy)
    clip = clip_named(copy, "20240301084000")
    flip(clip)
    return copy, clip.name


def test_a_flipped_bit_in_a_clip_fails_bagit_naming_the_file(tampered: tuple[Path, str]) -> None:
    r = bagit_validate(tampered[0])
    assert r.returncode != 0
    assert tampered[1] in r.stderr + r.stdout


def test_a_flipped_bit_in_a_clip_fails_verify_bag_naming_the_file(tampered: tuple[Path, str], case: dict[str, Path]
                                                                 ) -> None:
    r = dockgate("verify", "--bag", str(tampered[0]), "--pubkey", str(case["pub"]), check=False)
    assert r.returncode == 1
    first = r.stderr.splitlines()[0]
    assert first.startswith("FAILED: bag-fixity: ") and tampered[1] in first, r.stderr
    assert "media-hash" in r.stderr


def test_something_unexpected_in_the_bag_fails_the_security_check(case: dict[str, Path], tmp_path: Path) -> None:
    copy = tmp_path / "bag"
    shutil.copytree(case["bag"], copy)
    (copy / "run-me.sh").write_text("#!/bin/sh\n")
    r = dockgate("verify", "--bag", str(copy), "--json", check=False)
    assert r.returncode == 1
    failures = json.loads(r.stdout)["failures"]
    assert [f["check"] for f in failures] == ["security-unexpected"] and failures[0]["object"] == "run-me.sh"


def test_the_catalogue_lists_each_clip_in_dat63_elements(case: dict[str, Path]) -> None:
    root = ET.fromstring((case["bag"] / "文件目录.XML").read_bytes())
    assert root.get("案件编号") == CASE
    files = root.findall("文件")
    assert [f.findtext("顺序号") for f in files] == ["1", "2", "3"]
    for f in files:
        assert f.findtext("档号", "").startswith(CASE)
        assert f.findtext("责任者") and f.findtext("题名") and f.findtext("日期")
        assert float(f.findtext("时间长度", "0")) > 1
        path = case["bag"] / f.findtext("计算机文件名", "")
        assert f.find("数字摘要").get("算法") == "SHA-256"  # type: ignore[union-attr]
        assert f.findtext("数字摘要") == sha256_file(path)


def test_the_four_properties_report_says_each_holds(case: dict[str, Path]) -> None:
    report = json.loads((case["bag"] / "四性检测报告.json").read_bytes())
    assert report["ok"] is True
    props = report["properties"]
    assert all(props[p]["ok"] for p in ("authenticity", "integrity", "usability", "security"))
    assert len(props["containers"]) == 3 and all(c["duration_s"] > 1.5 for c in props["containers"])


def test_a_container_cut_short_is_not_usable(case: dict[str, Path], tmp_path: Path) -> None:
    from gateway.casefile.checks import usability

    src = clip_named(case["bag"], "20240301083015")
    cut = tmp_path / "clip.MP4"
    data = src.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    doc = {"clip": {"partial": False, "container": {"duration_s": 2.0}}}
    (u,) = usability(tmp_path, {"clip.MP4": doc})
    assert not u.ok


def test_footage_not_under_a_case_exports_by_officer_and_time(case: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "officer-bag"
    dockgate("case", "export", "--officer", OFFICERS[0], "--from", "2024-03-01T09:30:00+00:00",
             "--to", "2024-03-01T10:30:00+00:00", "--archive", str(case["archive"]), "--pubkey", str(case["pub"]),
             "--out", str(out))
    assert list(media_in(out)) == [n for n in media_in(out) if "_20240301100000_" in n] and len(media_in(out)) == 1
    assert bagit_validate(out).returncode == 0


def test_an_export_never_writes_into_a_folder_that_holds_something(case: dict[str, Path], tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    r = dockgate("case", "export", CASE, "--archive", str(case["archive"]), "--pubkey", str(case["pub"]),
                 "--out", str(tmp_path), check=False)
    assert r.returncode != 0 and "not empty" in r.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


# -- the chain-of-custody report ------------------------------------------------------------------
@pytest.fixture(scope="module")
def report_pdf(case: dict[str, Path]) -> Path:
    out = case["tmp"] / "report.pdf"
    dockgate("case", "report", CASE, "-c", str(case["station"]), "--out", str(out))
    return out


def pdftotext(pdf: Path) -> str:
    return subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True).stdout


def test_the_pdf_report_names_the_case_and_each_clips_sha256(case: dict[str, Path], report_pdf: Path) -> None:
    text = pdftotext(report_pdf)
    assert CASE in text
    for clip in media_in(case["bag"]).values():
        assert sha256_file(clip) in text


def test_the_pdf_report_lists_the_custody_events_with_time_and_actor(report_pdf: Path) -> None:
    text = pdftotext(report_pdf)
    for event in ("stamped", "forwarded", "verified", "clip_archived", "amended"):
        assert f"({event})" in text
    assert "采集站 sim-station-01" in text  # the actor
    assert re.search(r"2\d{3}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", text)  # each event's time


def test_the_pdf_report_holds_the_five_items_in_chinese(report_pdf: Path) -> None:
    text = pdftotext(report_pdf)
    for label in ("案件编号", "采集时间", "采集地点", "采集人", "证明对象", "时钟偏差", "如何手工核验"):
        assert label in text
    assert "妨害公务" in text and "张伟" in text and "李娜" in text


def test_the_pdf_embeds_a_cjk_font(report_pdf: Path) -> None:
    fonts = subprocess.run(["pdffonts", str(report_pdf)], capture_output=True, text=True, check=True).stdout
    rows = fonts.splitlines()[2:]
    assert all(" yes " in r for r in rows), fonts  # every font embedded: nothing left to the reader's machine
    assert any("Noto-Sans-CJK-SC" in r for r in rows), fonts


def test_the_pdf_renders_chinese_glyphs_not_boxes(report_pdf: Path, tmp_path: Path) -> None:
    from PIL import Image

    subprocess.run(["pdftoppm", "-png", "-r", "150", "-f", "1", "-l", "1", str(report_pdf), str(tmp_path / "p")],
                   check=True)
    (png,) = tmp_path.glob("p*.png")
    bbox = subprocess.run(["pdftotext", "-bbox", "-f", "1", "-l", "1", str(report_pdf), "-"], capture_output=True,
                          text=True, check=True).stdout
    m = re.search(r'<word xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)" yMax="([\d.]+)">监管链报告</word>', bbox)
    assert m, bbox[:2000]
    x0, y0, x1, y1 = (float(v) * 150 / 72 for v in m.groups())
    img = Image.open(png).convert("L")
    step = (x1 - x0) / 5  # five full-width glyphs
    glyphs = [img.crop((round(x0 + i * step), round(y0), round(x0 + (i + 1) * step), round(y1))).tobytes()
              for i in range(5)]
    assert all(any(px < 128 for px in g) for g in glyphs)  # ink in every glyph cell
    assert len(set(glyphs)) == 5  # five different shapes: missing glyphs would be five identical boxes


def test_a_report_of_one_clip_in_english_as_html(case: dict[str, Path], tmp_path: Path) -> None:
    clip = clip_named(case["bag"], "20240301110000")
    sha = sha256_file(clip)
    out = tmp_path / "clip.html"
    dockgate("case", "report", CASE, "--clip", sha, "--lang", "en", "--archive", str(case["archive"]),
             "--pubkey", str(case["pub"]), "--out", str(out))
    html = out.read_text()
    assert "Chain-of-custody report" in html and sha in html and "Ed25519 valid" in html
    others = [sha256_file(p) for p in media_in(case["bag"]).values() if p != clip]
    assert not any(o in html for o in others)


# -- verify for people and programs -----------------------------------------------------------------
def test_verify_json_reports_the_whole_archive_for_programs(case: dict[str, Path]) -> None:
    r = dockgate("verify", "--archive", str(case["archive"]), "--pubkey", str(case["pub"]), "--json")
    out = json.loads(r.stdout)
    assert out["ok"] is True and out["clips"] == 4 and out["failures"] == []


def test_verify_one_case_checks_its_clips_and_custody_excerpt(case: dict[str, Path]) -> None:
    r = dockgate("verify", "--archive", str(case["archive"]), "--pubkey", str(case["pub"]), "--case", CASE, "--json")
    out = json.loads(r.stdout)
    assert out["ok"] is True and out["clips"] == 3 and out["amendments"] == 1 and out["checkpoints"] >= 1


def test_verify_one_clip_names_its_tampered_media(case: dict[str, Path], tmp_path: Path) -> None:
    copy = tmp_path / "archive"
    shutil.copytree(case["archive"], copy)
    clip = clip_named(case["bag"], "20240301083015")
    (target,) = copy.rglob(clip.name)
    ok = dockgate("verify", "--archive", str(copy), "--pubkey", str(case["pub"]), "--clip", sha256_file(target))
    assert ok.stdout.startswith("OK: 1 clips")
    flip(target)
    r = dockgate("verify", "--archive", str(copy), "--pubkey", str(case["pub"]), "--clip",
                 str(target.relative_to(copy)), "--json", check=False)
    out = json.loads(r.stdout)
    assert r.returncode == 1 and out["failures"][0]["check"] == "media-hash"
    assert clip.name in out["failures"][0]["object"]
