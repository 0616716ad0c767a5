# ruff: noqa: RUF001 - Chinese text takes full-width punctuation
"""The case file is a court exhibit (issue 26): a 国密 station's case exported
as a bag that carries its SM2 key, checked alike by `dockgate verify --bag`,
OpenSSL 3 (distid 1234567812345678), an independent SM2 library
(snowland-smx) and bagit.py; nothing of another case in it; the archival
catalogue; a PDF a clerk reads; an export on a running station that seals
custody first or says which clips are not yet sealed; exit codes."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import signal
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.cli.simstation import write_station
from gateway.config import load_config
from gateway.evidence.canonical import canonical
from gateway.evidence.custody import entry_hash, redact_line
from tests.helpers import DaemonProc, attach, dockgate
from tests.test_casefile import bagit_validate, ffmpeg_clip, flip, pdftotext, recorder

pytestmark = pytest.mark.e2e
CASE = "A-2024-015"
OTHER = "B-2024-099"
AGENCY = "某市公安局城关分局"
FONDS = "J021"


def national_station(root: Path, rotate_s: float = 1.0) -> Path:
    station = write_station(root, slots=2, reserve_bytes=0, custody_rotate_s=rotate_s)
    dockgate("keygen", "--sm2", str(root / "secrets" / "sm2.key"))
    text = station.read_text().replace("[evidence]\n", f'[evidence]\nnational_crypto = true\n'
                                                       f'sm2_key_file = "{root / "secrets" / "sm2.key"}"\n')
    text = text.replace('location = "simulated precinct"\n',
                        f'location = "simulated precinct"\nagency = "{AGENCY}"\nfonds = "{FONDS}"\n')
    station.write_text(text)
    return station


@pytest.fixture(scope="module")
def gm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    tmp = tmp_path_factory.mktemp("exhibit")
    station = national_station(tmp / "station")
    cfg = load_config(station)
    rec1 = recorder(tmp / "rec1", "ZF00042", "0123456", "张伟", {"20240301083015": "2024-03-01T08:30:15Z",
                                                                "20240301100000": "2024-03-01T10:00:00Z"})
    rec2 = recorder(tmp / "rec2", "ZF00077", "0777777", "王芳", {"20240301084000": "2024-03-01T08:40:00Z"})
    dockgate("assign", "-c", str(station), "--officer", "0123456", "--from", "2024-03-01T08:00:00+00:00",
             "--to", "2024-03-01T09:00:00+00:00", "--case", CASE, "--proof", "妨害公务")
    dockgate("assign", "-c", str(station), "--officer", "0777777", "--from", "2024-03-01T08:00:00+00:00",
             "--to", "2024-03-01T09:00:00+00:00", "--case", OTHER, "--proof", "盗窃现场")
    d = DaemonProc(station, tmp / "daemon.log").start()
    try:
        attach(station, rec1, 1)
        attach(station, rec2, 2)
        d.wait_for(lambda s: s["clips"]["archived"] == 3 and s["queue"]["clips"] == 0, timeout=90,
                   what="3 clips archived")
        # a later amendment into the case: its chain of custody comes along
        dockgate("assign", "-c", str(station), "--officer", "0123456", "--from", "2024-03-01T09:30:00+00:00",
                 "--to", "2024-03-01T10:30:00+00:00", "--case", CASE, "--proof", "妨害公务")
        d.wait_for(lambda s: any(cfg.archive.path.rglob("*.amendment-*.json.sig")), timeout=30,
                   what="amendment archived")
    finally:
        assert d.stop() == 0
    bag = tmp / "bag"
    dockgate("case", "export", CASE, "-c", str(station), "--out", str(bag), "--tz", "Asia/Shanghai")
    sm2pub = tmp / "station" / "secrets" / "sm2.pub.pem"
    yield {"station": station, "archive": cfg.archive.path, "pub": cfg.public_key_file, "sm2pub": sm2pub,
           "bag": bag, "tmp": tmp}


def copy_of(bag: Path, tmp: Path) -> Path:
    out = tmp / "copy"
    shutil.copytree(bag, out)
    for p in out.rglob("*"):
        if p.is_file():
            p.chmod(0o644)
    return out


def remanifest(bag: Path) -> None:
    """What someone who alters a bag does next: BagIt's manifests made anew,
    so that bag fixity passes and only the signatures can tell."""
    import bagit  # type: ignore[import-untyped]

    cwd = os.getcwd()
    try:
        bagit.Bag(str(bag)).save(manifests=True)
    finally:
        os.chdir(cwd)
    assert bagit_validate(bag).returncode == 0


def sm2_sigs(bag: Path) -> list[Path]:
    return sorted((bag / "data" / "archive").rglob("*.manifest.json.sm2.sig"))


def verify_bag(bag: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return dockgate("verify", "--bag", str(bag), *extra, check=False)


# -- SM2: the key in the bag, and everyone agrees --------------------------------------------------
def test_the_bag_carries_the_sm2_public_key_beside_the_ed25519_one(gm: dict[str, Path]) -> None:
    keys = sorted(p.name for p in (gm["bag"] / "data" / "keys").iterdir())
    (sm2,) = [k for k in keys if k.endswith(".sm2.pub.pem")]
    assert len(keys) == 2
    assert (gm["bag"] / "data" / "keys" / sm2).read_bytes() == gm["sm2pub"].read_bytes()
    for m in (gm["bag"] / "data" / "archive").rglob("*.manifest.json"):
        assert sm2 == json.loads(m.read_bytes())["sm2_key_id"] + ".sm2.pub.pem"


def test_verify_bag_checks_sm2_with_the_bags_own_key(gm: dict[str, Path]) -> None:
    r = verify_bag(gm["bag"], "--json")
    out = json.loads(r.stdout)
    assert r.returncode == 0 and out["ok"], r.stdout
    assert any("SM2" in c for c in out["properties"]["authenticity"]["checked"])


@pytest.mark.parametrize("how", ["flipped", "deleted"])
def test_a_bag_whose_sm2_signatures_were_tampered_fails_verify_bag(gm: dict[str, Path], tmp_path: Path,
                                                                    how: str) -> None:
    bag = copy_of(gm["bag"], tmp_path)
    sigs = sm2_sigs(bag)
    assert len(sigs) == 2
    for sig in sigs:
        flip(sig) if how == "flipped" else sig.unlink()
    remanifest(bag)  # bag fixity holds: only the SM2 check can tell
    r = verify_bag(bag)
    assert r.returncode == 1, r.stdout + r.stderr
    first = next(line for line in r.stderr.splitlines() if line.startswith("FAILED: "))
    assert first.startswith("FAILED: manifest-sm2-signature: "), r.stderr
    rel = sigs[0].relative_to(bag / "data" / "archive").as_posix()[: -len(".sm2.sig")]
    assert rel in r.stderr
    assert ("does not verify" if how == "flipped" else "missing") in first
    assert "Traceback" not in r.stderr


def test_a_bag_that_dropped_its_sm2_key_fails(gm: dict[str, Path], tmp_path: Path) -> None:
    bag = copy_of(gm["bag"], tmp_path)
    (key,) = (bag / "data" / "keys").glob("*.sm2.pub.pem")
    key.unlink()
    remanifest(bag)
    r = verify_bag(bag, "--json")
    assert r.returncode == 1
    assert {f["check"] for f in json.loads(r.stdout)["failures"]} == {"manifest-sm2-key-id"}


def test_sm2_pubkey_pins_the_bags_key(gm: dict[str, Path], tmp_path: Path) -> None:
    assert verify_bag(gm["bag"], "--sm2-pubkey", str(gm["sm2pub"])).returncode == 0
    other = tmp_path / "other.key"
    dockgate("keygen", "--sm2", str(other))
    r = verify_bag(gm["bag"], "--sm2-pubkey", str(other.with_suffix(".pub.pem")), "--json")
    assert r.returncode == 1
    checks = [f["check"] for f in json.loads(r.stdout)["failures"]]
    assert checks[0] == "sm2-key-pin" and "manifest-sm2-key-id" in checks


def manual(bag: Path) -> str:
    text = (bag / "说明文件.txt").read_text(encoding="utf-8")
    block = text.split("----- 命令 / commands -----\n")[1].split("----- 命令结束")[0]
    return "\n".join(line[2:] for line in block.splitlines())


def run_manual(bag: Path) -> list[str]:
    r = subprocess.run(["bash", "-u", "-c", manual(bag)], cwd=bag, capture_output=True, text=True, check=False)
    return (r.stdout + r.stderr).splitlines()


def test_openssl_3_with_the_instructions_commands_agrees(gm: dict[str, Path], tmp_path: Path) -> None:
    assert "distid:1234567812345678" in manual(gm["bag"]) and "-sm3" in manual(gm["bag"])
    out = run_manual(gm["bag"])
    # sha256 twice, Ed25519 key id twice, Ed25519 check, SM3 twice, SM2 key id twice, SM2 check
    assert len(out) == 10, out
    assert out[0] == out[1] and out[2] == out[3] and out[5] == out[6] and out[7] == out[8], out
    assert out[4] == "Signature Verified Successfully" and out[9] == "Verified OK", out
    bag = copy_of(gm["bag"], tmp_path)
    for sig in sm2_sigs(bag):
        flip(sig)
    assert "Verification failure" in run_manual(bag)


def test_an_independent_sm2_library_agrees(gm: dict[str, Path], tmp_path: Path) -> None:
    from pysmx.SM2 import Verify  # type: ignore[import-untyped]  # snowland-smx: pure Python, not gmalg

    from gateway.evidence.gm import load_sm2_public, parse_signature

    (key,) = (gm["bag"] / "data" / "keys").glob("*.sm2.pub.pem")
    point = load_sm2_public(key)
    assert point[0] == 4

    def ok(sig: Path) -> bool:
        r, s = parse_signature(sig.read_bytes())
        body = Path(str(sig)[: -len(".sm2.sig")]).read_bytes()
        return bool(Verify(r.to_bytes(32, "big") + s.to_bytes(32, "big"), body, point[1:].hex(), 64,
                           uid=b"1234567812345678"))

    assert all(ok(s) for s in sm2_sigs(gm["bag"]))
    bag = copy_of(gm["bag"], tmp_path)
    for sig in sm2_sigs(bag):
        flip(sig)
    assert not any(ok(s) for s in sm2_sigs(bag))


# -- BagIt, the catalogue ----------------------------------------------------------------------------
def test_bagit_1_0_validates_and_names_the_agency(gm: dict[str, Path]) -> None:
    assert bagit_validate(gm["bag"]).returncode == 0
    assert (gm["bag"] / "bagit.txt").read_text().splitlines()[0] == "BagIt-Version: 1.0"
    info = (gm["bag"] / "bag-info.txt").read_text(encoding="utf-8")
    assert f"Source-Organization: {AGENCY}" in info


def test_the_catalogue_carries_the_archival_elements_and_a_csv_copy(gm: dict[str, Path]) -> None:
    root = ET.fromstring((gm["bag"] / "文件目录.XML").read_bytes())
    files = root.findall("文件")
    assert len(files) == 2
    for f in files:
        assert f.findtext("全宗号") == FONDS and f.findtext("年度") == "2024" and f.findtext("密级") == "内部"
        assert f.findtext("保管期限") == "永久"  # no category: the longest class, never a short default
        assert f.find("保管期限").get("保留类别") == "permanent"  # type: ignore[union-attr]
        assert "+08:00" in (f.find("日期").get("当地时间") or "")  # type: ignore[union-attr]
    text = (gm["bag"] / "文件目录.CSV").read_bytes().decode("utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["档号"] for r in rows] == [f.findtext("档号") for f in files]
    assert all(r["保管期限"] == "永久" and r["全宗号"] == FONDS and r["数字摘要(SM3)"] for r in rows)


def test_a_retention_class_in_days_reads_as_years_or_days() -> None:
    from gateway.casefile.catalogue import retention_period
    from gateway.casefile.source import ClipEvidence
    from gateway.config import RetentionConfig

    cfg = RetentionConfig(categories={"traffic": "standard", "obstruction": "case"})
    clip = ClipEvidence("k", b"", {"category": "obstruction"})
    assert retention_period(cfg, clip) == ("定期30年", "case")
    clip = ClipEvidence("k", b"", {"category": "traffic"})
    assert retention_period(cfg, clip) == ("定期183天", "standard")


# -- nothing of another case ---------------------------------------------------------------------------
def bag_text(bag: Path) -> str:
    parts = []
    for p in bag.rglob("*"):
        if p.is_file() and p.suffix.lower() not in (".mp4", ".pdf"):
            parts.append(p.read_bytes().decode("utf-8", errors="replace"))
    parts.append(pdftotext(bag / "监管链报告.pdf"))
    return "\n".join(parts)


def test_nothing_of_another_case_is_in_the_bag(gm: dict[str, Path]) -> None:
    text = bag_text(gm["bag"])
    for leak in (OTHER, "王芳", "0777777", "盗窃现场", "ZF00077"):
        assert leak not in text, leak
    assert "张伟" in text and CASE in text


def test_other_entries_are_reduced_to_their_hashes_and_the_chain_holds(gm: dict[str, Path]) -> None:
    archive = gm["archive"]
    redacted = 0
    for seg in (gm["bag"] / "data" / "archive" / "custody").rglob("*.jsonl"):
        original = (archive / seg.relative_to(gm["bag"] / "data" / "archive")).read_bytes().splitlines()
        lines = seg.read_bytes().splitlines()
        assert len(lines) == len(original)
        for mine, orig in zip(lines, original, strict=True):
            if mine == orig:
                continue
            redacted += 1
            e, o = json.loads(mine), json.loads(orig)
            assert mine == canonical({"prev": o["prev"], "redacted": entry_hash(orig), "seq": o["seq"],
                                      "station": o["station"]}) == redact_line(orig)
            assert set(e) == {"prev", "redacted", "seq", "station"}
    assert redacted >= 3  # the other officer's dock, identification, clip


# -- the PDF a clerk reads ------------------------------------------------------------------------
def test_the_pdf_shows_local_time_beside_utc_and_never_none(gm: dict[str, Path]) -> None:
    text = pdftotext(gm["bag"] / "监管链报告.pdf")
    assert "2024-03-01 16:30:15 CST (UTC+08:00)" in text and "2024-03-01T08:30:15Z" in text
    assert "None" not in text


def test_every_pdf_page_has_its_number_and_the_case(gm: dict[str, Path]) -> None:
    pages = pdftotext(gm["bag"] / "监管链报告.pdf").split("\f")
    pages = [p for p in pages if p.strip()]
    assert len(pages) >= 2
    for n, page in enumerate(pages, start=1):
        assert f"第{n}页，共{len(pages)}页" in page, page[-300:]
        assert CASE in page


def test_the_pdf_has_an_event_table_in_words_and_the_sm2_commands(gm: dict[str, Path]) -> None:
    text = pdftotext(gm["bag"] / "监管链报告.pdf")
    for words in ("签章（生成清单）", "(stamped)", "归档", "(clip_archived)", "记录仪编号", "清单 SHA-256"):
        assert words in text, words
    assert "distid:1234567812345678" in text and "openssl dgst -sm3" in text and "pkeyutl" in text


# -- exit codes: 0 ok, 1 a check failed, 2 usage or environment; never a traceback -------------------
@pytest.mark.parametrize("what", ["key", "manifest", "custody", "checkpoint", "bagit"])
def test_a_malformed_file_in_a_bag_fails_without_a_traceback(gm: dict[str, Path], tmp_path: Path,
                                                             what: str) -> None:
    bag = copy_of(gm["bag"], tmp_path)
    arch = bag / "data" / "archive"
    target = {"key": next((bag / "data" / "keys").glob("*.sm2.pub.pem")),
              "manifest": next(arch.rglob("*.manifest.json")),
              "custody": next(arch.rglob("*.jsonl")),
              "checkpoint": next(arch.rglob("checkpoint-*.json")),
              "bagit": bag / "bag-info.txt"}[what]
    target.write_bytes(b"[1, 2, \xff garbage")
    r = verify_bag(bag)
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr and "\nFAILED: " in "\n" + r.stderr, r.stderr


def test_usage_and_environment_problems_exit_2(gm: dict[str, Path], tmp_path: Path) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("not a key")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    cases = [
        ("verify", "--bag", str(gm["bag"]), "--pubkey", str(junk)),
        ("verify", "--bag", str(gm["bag"]), "--sm2-pubkey", str(junk)),
        ("verify", "--bag", str(tmp_path)),
        ("case", "export", CASE, "-c", str(gm["station"]), "--out", str(tmp_path / "full")),
        ("case", "export", CASE, "-c", str(gm["station"]), "--out", str(tmp_path / "b"), "--tz", "Mars/Olympus"),
        ("case", "export", "NO-SUCH-CASE", "-c", str(gm["station"]), "--out", str(tmp_path / "c")),
        ("case", "export", CASE, "--archive", str(gm["archive"]), "--pubkey", str(gm["pub"]), "--out",
         str(tmp_path / "d")),  # 国密 clips and no SM2 key given
    ]
    for args in cases:
        r = dockgate(*args, check=False)
        assert r.returncode == 2, (args, r.stderr)
        assert "Traceback" not in r.stderr, r.stderr


# -- an export on a running station ------------------------------------------------------------------
def clips_of(rec: Path, serial: str, src: Path, n: int, minute: int, link_rate: int = 0) -> Path:
    """A recorder of officer 0123456 with *n* distinct one-second clips from minute *minute* of 08:00."""
    day = rec / "storage" / "DCIM" / "20240301"
    day.mkdir(parents=True)
    (rec / "device.toml").write_text(f'serial = "{serial}"\nofficer = "0123456"\nofficer_name = "张伟"\n'
                                     f'protocol = "bc-text"\nlink_rate = {link_rate}\n')
    for i in range(n):
        m = minute + i
        subprocess.run(["ffmpeg", "-v", "error", "-i", str(src), "-c", "copy", "-metadata", f"comment={serial} {i}",
                        "-metadata", f"creation_time=2024-03-01T08:{m:02d}:00Z",
                        str(day / f"0123456_2024030108{m:02d}00_{i:04d}.MP4")], check=True)
    return rec


@pytest.fixture
def busy(tmp_path: Path) -> Iterator[dict[str, object]]:
    """A station that seals custody only every 10 minutes, and two recorders
    of one case's officer: 8 clips, then 8 more over a slow link (10 kB/s),
    still being pulled while the export runs."""
    station = national_station(tmp_path / "station", rotate_s=600.0)
    src = tmp_path / "src.MP4"
    ffmpeg_clip(src, "2024-03-01T08:30:00Z", seconds=1)
    first = clips_of(tmp_path / "rec1", "ZF00900", src, 8, 10)
    second = clips_of(tmp_path / "rec2", "ZF00901", src, 8, 30, link_rate=10_000)
    dockgate("assign", "-c", str(station), "--officer", "0123456", "--from", "2024-03-01T08:00:00+00:00",
             "--to", "2024-03-01T09:00:00+00:00", "--case", CASE)
    d = DaemonProc(station, tmp_path / "daemon.log").start()
    try:
        yield {"station": station, "daemon": d, "rec": first, "second": second, "tmp": tmp_path}
    finally:
        if d.proc is not None and d.proc.poll() is None:
            d.stop()


def custody_in(bag: Path) -> list[dict[str, object]]:
    return [json.loads(line) for seg in (bag / "data" / "archive" / "custody").rglob("*.jsonl")
            for line in seg.read_bytes().splitlines()]


def test_an_export_during_a_busy_dock_seals_custody_first(busy: dict[str, object]) -> None:
    station, d, tmp = busy["station"], busy["daemon"], busy["tmp"]
    assert isinstance(station, Path) and isinstance(d, DaemonProc) and isinstance(tmp, Path)
    attach(station, busy["rec"], 1)  # type: ignore[arg-type]
    d.wait_for(lambda s: s["clips"]["archived"] == 8, timeout=90, what="the first 8 clips archived")
    attach(station, busy["second"], 2)  # type: ignore[arg-type]
    d.wait_for(lambda s: s["slots"][1]["state"] == "pulling", timeout=60, what="the second dock pulling")
    out = tmp / "bag"
    r = dockgate("case", "export", CASE, "-c", str(station), "--out", str(out), check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "four properties" in r.stdout
    print(r.stdout)
    entries = custody_in(out)
    manifests = [json.loads(m.read_bytes()) for m in (out / "data" / "archive").rglob("*.manifest.json")]
    archived = {str(e["data"]["key"]) for e in entries if e.get("event") == "clip_archived"}  # type: ignore[index]
    stamped = {int(e["seq"]) for e in entries if e.get("event") == "stamped"}  # type: ignore[call-overload]
    assert len(manifests) >= 8
    for m in manifests:
        assert m["clip"]["archive_key"] in archived and m["custody_seq"] in stamped
    covered = max(json.loads(p.read_bytes())["seq"] for p in (out / "data" / "archive").rglob("checkpoint-*.json"))
    assert covered >= max(int(e["seq"]) for e in entries if e.get("event") == "clip_archived")  # type: ignore[call-overload]
    assert verify_bag(out).returncode == 0


def test_an_export_whose_custody_is_not_sealed_says_which_clips_and_exits_1(busy: dict[str, object]) -> None:
    station, d, tmp = busy["station"], busy["daemon"], busy["tmp"]
    assert isinstance(station, Path) and isinstance(d, DaemonProc) and isinstance(tmp, Path)
    attach(station, busy["rec"], 1)  # type: ignore[arg-type]
    d.wait_for(lambda s: s["clips"]["archived"] == 8 and s["queue"]["clips"] == 0, timeout=120,
               what="all clips archived")
    d.kill()  # a power cut: the open segment never reaches the archive
    assert d.proc is not None and d.proc.returncode == -signal.SIGKILL
    out = tmp / "bag"
    r = dockgate("case", "export", CASE, "-c", str(station), "--out", str(out), check=False)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "four properties" not in r.stdout and not out.exists()
    unsealed = [line for line in r.stderr.splitlines() if "not yet sealed: " in line]
    assert len(unsealed) == 8, r.stderr
    assert all(re.search(r"\.MP4 \([0-9a-f]{12}\): ", line) for line in unsealed)


# -- which custody entries a case's excerpt shows as they are ---------------------------------------
@pytest.mark.parametrize(("data", "kept"), [
    ({"sha256": "a" * 64, "key": "k/clip.MP4"}, True),                      # one of the case's clips
    ({"key": "k/clip.MP4.amendment-2.json", "sha256": "a" * 64}, True),     # its amendment archived
    ({"sha256": "b" * 64, "key": "k/other.MP4"}, False),                    # another clip
    ({"case_number": CASE, "officer": "0123456"}, True),                    # the case's assignment
    ({"case_number": OTHER, "officer": "0777777"}, False),                  # another case's
    ({"officer": "0777777", "category": "traffic"}, False),                 # an assignment without a case
    ({"slot": 1, "vid": "1209", "pid": "0001", "profile": "bc"}, True),     # a dock: no person
    ({"slot": 2, "serial": "ZF00077", "officer": "0777777"}, False),        # another officer's recorder
    ({"slot": 1, "serial": "ZF00042", "officer": "0123456"}, True),         # the case's recorder
    ({"who": "supervisor 李", "remote": "10.0.0.1"}, False),                # a person, no clip
])
def test_an_excerpt_keeps_only_what_belongs_to_the_case(data: dict[str, object], kept: bool) -> None:
    from gateway.casefile.source import Scope

    scope = Scope(CASE, frozenset({"a" * 64}), frozenset({"k/clip.MP4"}), frozenset({"0123456"}),
                  frozenset({"ZF00042"}))
    assert scope.keeps({"seq": 5, "event": "x", "data": data}) is kept
