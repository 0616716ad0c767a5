"""A district: two stations forward into one archive (a folder each), publish
to one broker, and one witness with the district keyring keeps their
checkpoints. `dockgate verify --keyring --witness` verifies every station,
each against its own key; a deleted clip fails naming its station and the
clip; the witness refuses one station's forgery of the other's checkpoint
and a checkpoint that goes back, counts them in its metrics, and the victim
still verifies."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.cli.simstation import write_station
from gateway.evidence.checkpoint import make_checkpoint
from gateway.evidence.signing import load_signer
from tests.helpers import DaemonProc, attach, dockgate, scrape, wait_until
from tests.mqttclient import Recorder as MqttClient
from tests.servers import Mosquitto, MotoServer, free_port

pytestmark = pytest.mark.e2e
STATIONS = ("st-a", "st-b")


@pytest.fixture(scope="module")
def district(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("district")
    broker = Mosquitto(tmp / "broker")
    archive, keyring, store, mport = tmp / "archive", tmp / "keyring", tmp / "witness", free_port()
    archive.mkdir()
    keyring.mkdir()
    configs = {}
    for st in STATIONS:
        cfg = write_station(tmp / st, station_id=st, reserve_bytes=0, mqtt=f"127.0.0.1:{broker.port}",
                            custody_rotate_s=1.0)
        cfg.write_text(cfg.read_text().replace(f'path = "{tmp / st / "archive"}"', f'path = "{archive / st}"'))
        (archive / st).mkdir()
        shutil.copy(tmp / st / "secrets" / "station.pub.pem", keyring / f"{st}.pub.pem")
        configs[st] = cfg
    witness = subprocess.Popen([sys.executable, "-m", "gateway.cli.main", "witness", "--broker",
                                f"127.0.0.1:{broker.port}", "--store", str(store), "--keyring", str(keyring),
                                "--metrics", f"127.0.0.1:{mport}", "--silence-after", "3600"],
                               stdout=subprocess.DEVNULL, stderr=open(tmp / "witness.log", "wb"))  # noqa: SIM115
    daemons: list[DaemonProc] = []
    try:
        wait_until(lambda: _up(mport), timeout=30, what="the witness's metrics")
        for n, st in enumerate(STATIONS, start=1):
            rec = tmp / f"rec-{st}"
            dockgate("sim", "make", str(rec), "--clips", "2", "--size", "20k", "--serial", f"DIST000{n}",
                     "--officer", f"00000{n}")
            d = DaemonProc(configs[st], tmp / f"{st}.log").start()
            daemons.append(d)
            attach(configs[st], rec, 1)
        for d in daemons:
            d.wait_for(lambda s: s["clips"]["archived"] == 2 and s["queue"]["clips"] == 0, timeout=90,
                       what="archived")
        for d in daemons:
            assert d.stop() == 0
        for st in STATIONS:  # the clean stop archived and published the newest checkpoint
            newest = sorted((archive / st / "custody" / st).glob("checkpoint-*.json"))[-1].name
            wait_until((store / st / newest).exists, timeout=30, what=f"the witness to keep {st}'s {newest}")
        # station A, with its own key, forges B's checkpoints: on its own topic and on B's
        a = load_signer(tmp / "st-a" / "secrets" / "station.key")
        forged = make_checkpoint(a, "st-b", 1036, "0" * 64, "custody-st-b-0000000001.jsonl", {})
        # and B's own key signs a checkpoint that goes back (its record rolled back)
        b = load_signer(tmp / "st-b" / "secrets" / "station.key")
        back = make_checkpoint(b, "st-b", 1, "1" * 64, "custody-st-b-0000000001.jsonl", {})
        pub = MqttClient(broker.port, "dockgate/#")
        try:
            pub.publish("dockgate/st-a/checkpoint", forged.mqtt_payload())
            pub.publish("dockgate/st-b/checkpoint", forged.mqtt_payload())
            pub.publish("dockgate/st-b/checkpoint", back.mqtt_payload())
        finally:
            pub.close()
        wait_until(lambda: scrape(mport).get('dockgate_witness_refusals_total{reason="backwards",station="st-b"}')
                   == 1, timeout=30, what="the witness to refuse all three")
        yield {"archive": archive, "keyring": keyring, "store": store, "metrics": mport, "tmp": tmp,
               "forged": forged.name}
    finally:
        for d in daemons:
            if d.proc is not None and d.proc.poll() is None:
                d.kill()
        witness.terminate()
        witness.wait(10)
        broker.stop()


def _up(port: int) -> bool:
    try:
        scrape(port)
    except OSError:
        return False
    return True


def verify(d: dict[str, Any], archive: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return dockgate("verify", "--archive", str(archive), "--keyring", str(d["keyring"]), "--witness",
                    str(d["store"]), *extra, check=False)


def writable_copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    for p in dst.rglob("*"):
        p.chmod(0o755 if p.is_dir() else 0o644)
    return dst


def test_every_station_verifies_each_against_its_own_key_and_witness(district: dict[str, Any]) -> None:
    r = verify(district, district["archive"])
    assert r.returncode == 0, r.stdout + r.stderr
    for st in STATIONS:
        assert re.search(rf"^OK: {st}: 2 clips .* witnessed checkpoints", r.stdout, re.M), r.stdout
    assert "2 of 2 stations verify" in r.stdout


def test_json_gives_one_entry_per_station(district: dict[str, Any]) -> None:
    r = verify(district, district["archive"], "--json")
    out = json.loads(r.stdout)
    assert r.returncode == 0 and out["ok"] is True
    assert [s["station"] for s in out["stations"]] == list(STATIONS)
    for s in out["stations"]:
        assert s["ok"] is True and s["clips"] == 2 and s["witnessed"] >= 1 and s["failures"] == []
        assert s["prefix"] == s["station"] + "/" and s["custody_entries"] > 0


def test_a_deleted_clip_fails_naming_its_station_and_the_clip(district: dict[str, Any], tmp_path: Path) -> None:
    copy = writable_copy(district["archive"], tmp_path / "archive")
    clip = sorted((copy / "st-b").rglob("*.MP4"))[0]
    clip.unlink()
    key = clip.relative_to(copy).as_posix()
    r = verify(district, copy)
    assert r.returncode == 1, r.stdout + r.stderr
    assert re.search(rf"^FAILED: st-b: \S+: {re.escape(key)}: ", r.stderr, re.M), r.stderr
    assert "OK: st-a:" in r.stdout and "1 of 2 stations verify; failed: st-b" in r.stderr
    out = json.loads(verify(district, copy, "--json").stdout)
    bad = {s["station"]: s for s in out["stations"]}["st-b"]
    assert out["ok"] is False and any(f["object"] == key for f in bad["failures"]), bad


def test_a_station_deleted_whole_is_missed_by_its_witness(district: dict[str, Any], tmp_path: Path) -> None:
    copy = writable_copy(district["archive"], tmp_path / "archive")
    shutil.rmtree(copy / "st-a")
    r = verify(district, copy)
    assert r.returncode == 1 and "FAILED: st-a: station-missing: custody/st-a" in r.stderr, r.stderr


def test_a_station_whose_custody_is_deleted_is_no_stations_folder(district: dict[str, Any], tmp_path: Path) -> None:
    copy = writable_copy(district["archive"], tmp_path / "archive")
    shutil.rmtree(copy / "st-b" / "custody")
    r = dockgate("verify", "--archive", str(copy), "--keyring", str(district["keyring"]), check=False)
    assert r.returncode == 1 and "FAILED: st-b: station-unknown: st-b/:" in r.stderr, r.stderr
    assert "OK: st-a:" in r.stdout


def test_a_station_without_a_key_in_the_keyring_fails(district: dict[str, Any], tmp_path: Path) -> None:
    ring = tmp_path / "ring"
    ring.mkdir()
    shutil.copy(district["keyring"] / "st-a.pub.pem", ring)
    r = dockgate("verify", "--archive", str(district["archive"]), "--keyring", str(ring), check=False)
    assert r.returncode == 1 and "FAILED: st-b: keyring-missing" in r.stderr, r.stderr


def test_usage_errors_exit_2(district: dict[str, Any], tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    for args in (["--archive", str(tmp_path / "empty"), "--keyring", str(district["keyring"])],
                 ["--archive", str(district["archive"]), "--keyring", str(tmp_path / "none")],
                 ["--archive", str(district["archive"]), "--keyring", str(district["keyring"]), "--pubkey",
                  str(district["keyring"] / "st-a.pub.pem")]):
        assert dockgate("verify", *args, check=False).returncode == 2, args


def test_the_witness_refused_the_forgeries_and_counted_them(district: dict[str, Any]) -> None:
    assert not (district["store"] / "st-b" / district["forged"]).exists()
    m = scrape(district["metrics"])
    assert m['dockgate_witness_refusals_total{reason="topic",station="st-a"}'] == 1  # B's checkpoint on A's topic
    assert m['dockgate_witness_refusals_total{reason="wrong_key",station="st-b"}'] == 1  # A's key, B's topic
    assert m['dockgate_witness_refusals_total{reason="backwards",station="st-b"}'] == 1
    assert "ALARM" in (district["tmp"] / "witness.log").read_text()


def test_the_witness_exports_each_stations_newest_checkpoint(district: dict[str, Any]) -> None:
    m = scrape(district["metrics"])
    for st in STATIONS:
        newest = sorted((district["archive"] / st / "custody" / st).glob("checkpoint-*.json"))[-1]
        assert m[f'dockgate_witness_entries_covered{{station="{st}"}}'] == json.loads(newest.read_bytes())["seq"]
        assert 0 <= m[f'dockgate_witness_checkpoint_age_seconds{{station="{st}"}}'] < 600
        assert m[f'dockgate_witness_station_silent{{station="{st}"}}'] == 0
    assert m["dockgate_witness_silence_after_seconds"] == 3600


def test_a_district_bucket_verifies_over_s3_and_leaves_no_scratch(district: dict[str, Any], s3server: MotoServer,
                                                                  tmp_path: Path) -> None:
    bucket = f"district-{uuid.uuid4().hex[:8]}"
    c = s3server.client()
    c.create_bucket(Bucket=bucket)
    for p in district["archive"].rglob("*"):
        if p.is_file() and ".dockgate-tmp" not in p.parts:
            c.put_object(Bucket=bucket, Key="district-7/" + p.relative_to(district["archive"]).as_posix(),
                         Body=p.read_bytes())
    (tmp_path / "ak").write_text(s3server.access_key)
    (tmp_path / "sk").write_text(s3server.secret_key)
    for f in ("ak", "sk"):
        (tmp_path / f).chmod(0o600)
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    r = subprocess.run([sys.executable, "-m", "gateway.cli.main", "verify", "--s3-endpoint", s3server.endpoint,
                        "--bucket", bucket, "--prefix", "district-7/", "--access-key-file", str(tmp_path / "ak"),
                        "--secret-key-file", str(tmp_path / "sk"), "--keyring", str(district["keyring"]),
                        "--witness", str(district["store"]), "--json"], capture_output=True, text=True, timeout=300,
                       check=False, env={**os.environ, "TMPDIR": str(scratch)})
    assert r.stdout, r.stderr
    out = json.loads(r.stdout)
    assert r.returncode == 0 and [s["station"] for s in out["stations"] if s["ok"]] == list(STATIONS), r.stderr
    assert list(scratch.iterdir()) == []
