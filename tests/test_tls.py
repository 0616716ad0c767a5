"""Transport security: MQTT over TLS against mosquitto and S3 over HTTPS,
each with a CA made in the test setup; a wrong CA is refused, and the station
keeps working. Secrets and the signing key are refused if others can read them."""

from __future__ import annotations

import os
import shutil
import ssl
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.archive import ArchiveUnavailable
from gateway.archive.s3 import S3Archive
from gateway.cli.simstation import write_station
from gateway.config import S3ArchiveConfig
from gateway.errors import SecretError
from gateway.evidence.signing import keygen, load_signer
from tests.archive_contract import make_obj
from tests.certs import make_ca_and_server
from tests.helpers import DaemonProc, attach, dockgate
from tests.mqttclient import Recorder
from tests.servers import Mosquitto, free_port, wait_port

pytestmark = pytest.mark.e2e


def test_mqtt_over_tls(tmp_path: Path) -> None:
    pki = make_ca_and_server(tmp_path / "pki")
    other = make_ca_and_server(tmp_path / "other-pki", "other")
    broker = Mosquitto(tmp_path / "broker", extra=f"cafile {pki['ca']}\ncertfile {pki['cert']}\n"
                                                  f"keyfile {pki['key']}\ntls_version tlsv1.2\n")
    station = write_station(tmp_path / "st", reserve_bytes=0)
    base = station.read_text()
    station.write_text(base + f'\n[mqtt]\nenabled = true\nhost = "127.0.0.1"\nport = {broker.port}\ntls = true\n'
                              f'ca_file = "{pki["ca"]}"\n')
    import paho.mqtt.client as mqtt

    orig = mqtt.Client.connect

    def tls_connect(self, *a, **kw):  # type: ignore[no-untyped-def]
        self.tls_set(ca_certs=str(pki["ca"]), cert_reqs=ssl.CERT_REQUIRED)
        return orig(self, *a, **kw)

    mqtt.Client.connect = tls_connect  # the test's own subscriber speaks TLS too
    try:
        sub = Recorder(broker.port, "dockgate/+/availability")
    finally:
        mqtt.Client.connect = orig
    d = DaemonProc(station, tmp_path / "daemon.log").start()
    try:
        sub.wait(lambda: b"online" in sub.on("/availability"), what="online over TLS")
    finally:
        d.stop()
        sub.close()
    # a station that trusts another CA refuses the broker, and still works
    station.write_text(base + f'\n[mqtt]\nenabled = true\nhost = "127.0.0.1"\nport = {broker.port}\ntls = true\n'
                              f'ca_file = "{other["ca"]}"\n')
    rec = tmp_path / "rec"
    dockgate("sim", "make", str(rec), "--clips", "2", "--size", "100k", "--serial", "TLS0001")
    d = DaemonProc(station, tmp_path / "daemon2.log").start()
    try:
        attach(station, rec, 1)
        d.wait_for(lambda s: s["clips"]["archived"] == 2, what="archived without a trusted broker")
    finally:
        d.stop()
        broker.stop()
    assert "CERTIFICATE_VERIFY_FAILED" in (tmp_path / "daemon2.log").read_text()


def test_s3_over_https_with_a_custom_ca(tmp_path: Path) -> None:
    pki = make_ca_and_server(tmp_path / "pki")
    other = make_ca_and_server(tmp_path / "other", "other")
    exe = shutil.which("moto_server") or str(Path(sys.executable).parent / "moto_server")
    port = free_port()
    log = open(tmp_path / "moto.log", "ab")  # noqa: SIM115
    proc = subprocess.Popen([exe, "-H", "127.0.0.1", "-p", str(port), "-c", str(pki["cert"]), "-k", str(pki["key"])],
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_port(port)
        for name, value in (("ak", "dockgate-test"), ("sk", "dockgate-test-secret")):
            (tmp_path / name).write_text(value)
            os.chmod(tmp_path / name, 0o600)

        def archive(ca: Path) -> S3Archive:
            cfg = S3ArchiveConfig.model_validate({
                "backend": "s3", "endpoint": f"https://127.0.0.1:{port}", "bucket": "tls-evidence",
                "access_key_file": tmp_path / "ak", "secret_key_file": tmp_path / "sk", "ca_bundle": ca,
                "retention_mode": "none", "connect_timeout_s": 2, "read_timeout_s": 5})
            return S3Archive(cfg, tmp_path / "state")

        good = archive(pki["ca"])
        good.client.create_bucket(Bucket="tls-evidence")
        obj = make_obj(tmp_path, size=200_000)
        assert not good.put(obj).existed
        assert good.sha256(obj.key) == obj.sha256
        with pytest.raises(ArchiveUnavailable, match=r"certificate verify failed|CERTIFICATE_VERIFY_FAILED"):
            archive(other["ca"]).put(make_obj(tmp_path, size=1000, key="x/y.mp4"))
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


def test_signing_key_and_secrets_readable_by_others_are_refused(tmp_path: Path) -> None:
    key = tmp_path / "station.key"
    keygen(key)
    os.chmod(key, 0o640)
    with pytest.raises(SecretError, match="chmod 600"):
        load_signer(key)
    station = write_station(tmp_path / "st")
    os.chmod(tmp_path / "st" / "secrets" / "station.key", 0o644)
    r = dockgate("run", "-c", str(station), check=False, timeout=30)
    assert r.returncode == 2 and "station.key" in r.stderr and "chmod 600" in r.stderr
