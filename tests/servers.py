"""Real servers for the tests, on 127.0.0.1: the moto S3 API server, and a
TCP proxy in front of it that a test can cut to make the archive "go down"
without losing the server's (in-memory) state.

A missing server binary fails the test; it never skips."""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3

_HANDED_OUT: set[int] = set()


def _ephemeral_range() -> tuple[int, int]:
    try:
        lo, hi = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(lo), int(hi)
    except (OSError, ValueError):
        return 32768, 60999


def free_port() -> int:
    """A port for a server a test starts later: free now, below the kernel's
    ephemeral range and never handed out twice in this process.

    `bind(0)` would pick from the ephemeral range, and the kernel hands the
    same ports to outgoing connections (broker clients, uploads) made between
    the pick and the server's own bind: the daemon then fails with EADDRINUSE.
    Below that range only a listener can hold a port, and the check sees it."""
    lo, _ = _ephemeral_range()
    first = 20000 if lo > 21000 else 1024
    rng = random.Random(os.getpid() ^ time.monotonic_ns())
    for _ in range(200):
        port = rng.randrange(first, lo)
        if port in _HANDED_OUT:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _HANDED_OUT.add(port)
        return port
    raise AssertionError(f"no free port in {first}-{lo - 1} after 200 tries")


def wait_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise AssertionError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


class MotoServer:
    """moto's S3 API server. With ``auth=True`` it checks every request's
    signature against its own IAM, as a real archive does: the station's
    keys are in ``access_key`` / ``secret_key``, anything else is refused."""

    #: unauthenticated calls moto allows before it enforces auth: the three that make the station's user
    _SETUP_CALLS = 3

    def __init__(self, log: Path, auth: bool = False) -> None:
        exe = shutil.which("moto_server") or str(Path(sys.executable).parent / "moto_server")
        if not os.path.exists(exe):
            raise AssertionError("moto_server is not installed (pip install 'moto[server]'); "
                                 "the S3 tests need a real S3 API server")
        self.port = free_port()
        self._log = open(log, "ab")  # noqa: SIM115
        env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": str(self._SETUP_CALLS)} if auth else None
        self.proc = subprocess.Popen([exe, "-H", "127.0.0.1", "-p", str(self.port)], stdout=self._log,
                                     stderr=subprocess.STDOUT, env=env)
        wait_port(self.port)
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.access_key, self.secret_key = "dockgate-test", "dockgate-test-secret"
        if auth:
            iam = boto3.client("iam", endpoint_url=self.endpoint, region_name="us-east-1",
                               aws_access_key_id="setup", aws_secret_access_key="setup")
            iam.create_user(UserName="station")
            iam.put_user_policy(UserName="station", PolicyName="archive", PolicyDocument=json.dumps({
                "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
            key = iam.create_access_key(UserName="station")["AccessKey"]
            self.access_key, self.secret_key = key["AccessKeyId"], key["SecretAccessKey"]

    def client(self, endpoint: str | None = None):
        return boto3.client("s3", endpoint_url=endpoint or self.endpoint, region_name="us-east-1",
                            aws_access_key_id=self.access_key, aws_secret_access_key=self.secret_key)

    def make_bucket(self, lock_mode: str = "GOVERNANCE") -> str:
        name = f"evidence-{uuid.uuid4().hex[:12]}"
        c = self.client()
        c.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
        c.put_object_lock_configuration(Bucket=name, ObjectLockConfiguration={
            "ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {"Mode": lock_mode, "Days": 1}}})
        return name

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        self._log.close()


class Proxy:
    """127.0.0.1:<port> -> target; `down()` refuses and cuts connections,
    `up()` serves again (same port); `hold()` accepts and relays nothing,
    so requests stay in flight (an outage mid-upload, whatever the speed)."""

    def __init__(self, target_port: int) -> None:
        self.target = target_port
        self.port = free_port()
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._server: socket.socket | None = None
        self._flowing = threading.Event()
        self.up()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def hold(self) -> None:
        self._flowing.clear()

    def up(self) -> None:
        self._flowing.set()
        if self._server is not None:
            return  # released from hold()
        srv = socket.socket()
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(("127.0.0.1", self.port))
        srv.listen(64)
        self._server = srv
        threading.Thread(target=self._accept, args=(srv,), daemon=True).start()

    def down(self) -> None:
        if self._server is not None:
            # shutdown first: a close() alone leaves the socket listening
            # while the accept thread is blocked in it, and up() cannot bind
            with contextlib.suppress(OSError):
                self._server.shutdown(socket.SHUT_RDWR)
            self._server.close()
            self._server = None
        with self._lock:
            for c in self._conns:
                with contextlib.suppress(OSError):
                    c.shutdown(socket.SHUT_RDWR)
                    c.close()
            self._conns.clear()

    def _accept(self, srv: socket.socket) -> None:
        while True:
            try:
                client, _ = srv.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target))
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns |= {client, upstream}
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                while not self._flowing.wait(0.05):
                    if b.fileno() < 0:  # cut by down()
                        return
                b.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                b.shutdown(socket.SHUT_WR)


@contextlib.contextmanager
def moto(tmp: Path, auth: bool = False) -> Iterator[MotoServer]:
    server = MotoServer(tmp / "moto.log", auth=auth)
    try:
        yield server
    finally:
        server.stop()


class Mosquitto:
    """A real mosquitto on 127.0.0.1, restartable on the same port, with
    persistence so that a durable subscriber's session survives a restart."""

    def __init__(self, workdir: Path, port: int | None = None, extra: str = "", anonymous: bool = True) -> None:
        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not os.path.exists(exe):
            raise AssertionError("mosquitto is not installed (apt-get install mosquitto); the MQTT tests need it")
        self.exe = exe
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.conf = self.dir / "mosquitto.conf"
        # as root mosquitto drops to user "mosquitto", who cannot write our temp dir
        user = f"user {getpass.getuser()}\n"
        self.conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous {str(anonymous).lower()}\n"
                             f"persistence true\n"
                             f"persistence_location {self.dir}/\nautosave_interval 1\n{user}{extra}")
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        self._log = open(self.dir / "mosquitto.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen([self.exe, "-c", str(self.conf)], stdout=self._log, stderr=subprocess.STDOUT)
        wait_port(self.port)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None
        self._log.close()


class OpensslTsa:
    """An RFC 3161 time-stamping authority on 127.0.0.1, made of `openssl ts
    -reply` behind a small HTTP server (no network). Its CA is ``ca``; `down()`
    makes it refuse connections until `up()`."""

    CONF = """[ tsa ]
default_tsa = tsa_config
[ tsa_config ]
dir = {dir}
serial = {dir}/serial
crypto_device = builtin
signer_cert = {dir}/tsa.crt
certs = {dir}/ca.crt
signer_key = {dir}/tsa.key
signer_digest = sha256
default_policy = 1.2.3.4.1
digests = sha256, sha384, sha512
accuracy = secs:1
ordering = yes
tsa_name = yes
ess_cert_id_chain = no
ess_cert_id_alg = sha256
[ tsa_ext ]
basicConstraints = critical,CA:false
keyUsage = critical,digitalSignature
extendedKeyUsage = critical,timeStamping
"""

    def __init__(self, workdir: Path) -> None:
        import http.server

        self.dir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "tsa.cnf").write_text(self.CONF.format(dir=workdir))
        (workdir / "serial").write_text("01\n")

        def run(*args: str) -> None:
            subprocess.run(["openssl", *args], cwd=workdir, check=True, capture_output=True)

        run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "ca.key",
            "-out", "ca.crt", "-subj", "/CN=dockgate test TSA root", "-days", "30")
        run("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "tsa.key",
            "-out", "tsa.csr", "-subj", "/CN=dockgate test TSA")
        run("x509", "-req", "-in", "tsa.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-out",
            "tsa.crt", "-days", "30", "-extfile", "tsa.cnf", "-extensions", "tsa_ext")
        self.ca = workdir / "ca.crt"
        self.requests = 0
        self.lock = threading.Lock()
        tsa = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                query = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with tsa.lock:
                    tsa.requests += 1
                    (tsa.dir / "q.tsq").write_bytes(query)
                    r = subprocess.run(["openssl", "ts", "-reply", "-config", str(tsa.dir / "tsa.cnf"), "-queryfile",
                                        str(tsa.dir / "q.tsq"), "-out", str(tsa.dir / "r.tsr")], capture_output=True,
                                       check=False)
                    body = (tsa.dir / "r.tsr").read_bytes() if r.returncode == 0 else b""
                self.send_response(200 if body else 500)
                self.send_header("Content-Type", "application/timestamp-reply")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self._handler = Handler
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/tsr"
        self.server: object | None = None
        self.up()

    def up(self) -> None:
        import http.server

        srv = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), self._handler)
        self.server = srv
        threading.Thread(target=srv.serve_forever, daemon=True).start()

    def down(self) -> None:
        srv = self.server
        if srv is not None:
            srv.shutdown()  # type: ignore[attr-defined]
            srv.server_close()  # type: ignore[attr-defined]
            self.server = None
