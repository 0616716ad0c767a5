"""Kill the daemon with SIGKILL at random moments, again and again, while
recorders are pulled, clips stamped and forwarded to a real S3 API server
with Object Lock, and events go to a real mosquitto; then let it finish and
count: every source clip must be in the archive exactly once, the catalog
must have nothing in flight, and `dockgate verify` must pass.

    python bench/soak.py --iterations 50 [--seed 1]

Prints `lost=N duplicated=N` (0 and 0, or the truth) and exits non-zero on
any loss, duplicate or verification failure.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from drivers import PROTOCOLS  # every family, in turn, so the storage switch is killed mid-way too
from gateway.cli.simstation import write_station
from gateway.evidence.manifest import is_evidence_metadata
from tests.helpers import DaemonProc, dockgate, source_hashes
from tests.servers import Mosquitto, MotoServer


def configure(work: Path, s3: MotoServer, broker: Mosquitto) -> tuple[Path, str]:
    bucket = s3.make_bucket()
    station = write_station(work / "station", slots=4, reserve_bytes=0, custody_rotate_s=0.5,
                            mqtt=f"127.0.0.1:{broker.port}")
    creds = work / "station" / "secrets"
    for name, value in (("ak", "dockgate-test"), ("sk", "dockgate-test-secret")):
        (creds / name).write_text(value)
        os.chmod(creds / name, 0o600)
    text = re.sub(r"\[archive\].*?(?=\n\[|\Z)", f'''[archive]
backend = "s3"
endpoint = "{s3.endpoint}"
bucket = "{bucket}"
access_key_file = "{creds / 'ak'}"
secret_key_file = "{creds / 'sk'}"
retention_mode = "GOVERNANCE"
retention_days = 1
multipart_threshold = 5242880
part_size = 5242880

[forward]
retry_initial_s = 0.2
retry_max_s = 1.0
''', station.read_text(), flags=re.S)
    station.write_text(text)
    return station, bucket


def make_recorder(work: Path, n: int, rng: random.Random) -> Path:
    protocol = PROTOCOLS[n % len(PROTOCOLS)]
    folder = work / "recorders" / f"R{n:04d}"
    size = rng.choice(["400k", "1M", "2M", "6M"])  # 6M goes multipart
    dockgate("sim", "make", str(folder), "--protocol", protocol, "--serial", f"SK{n:05d}",
             "--officer", f"{100000 + n % 7}", "--clips", str(rng.randint(2, 5)), "--size", size,
             "--link-rate", "6M", "--seed", str(n))
    return folder


def archive_objects(s3: MotoServer, bucket: str) -> tuple[Counter[str], Counter[str]]:
    """(media hash -> count over keys, key -> number of versions)."""
    c = s3.client()
    hashes: Counter[str] = Counter()
    versions: Counter[str] = Counter()
    kwargs: dict[str, str] = {}
    while True:
        resp = c.list_object_versions(Bucket=bucket, **kwargs)
        for v in resp.get("Versions", []):
            versions[v["Key"]] += 1
        if not resp.get("IsTruncated"):
            break
        kwargs = {"KeyMarker": resp["NextKeyMarker"], "VersionIdMarker": resp["NextVersionIdMarker"]}
    for key in versions:
        if not is_evidence_metadata(key):
            body = c.get_object(Bucket=bucket, Key=key)["Body"].read()
            hashes[hashlib.sha256(body).hexdigest()] += 1
    return hashes, versions


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--iterations", type=int, default=50)
    ap.add_argument("--seed", type=int, default=int(time.time()))
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    a = ap.parse_args()
    rng = random.Random(a.seed)
    work = Path(tempfile.mkdtemp(prefix="dockgate-soak-"))
    s3 = MotoServer(work / "moto.log")
    broker = Mosquitto(work / "broker")
    made: list[Path] = []
    slots: dict[int, Path] = {}
    try:
        station, bucket = configure(work, s3, broker)
        d = DaemonProc(station, work / "daemon.log")
        kills: Counter[str] = Counter()
        finished: set[int] = set()
        for _ in range(a.iterations):
            # keep every slot busy: an empty slot, or one whose recorder was done
            # before the last kill, gets a new recorder
            for slot in range(1, 5):
                if slot not in slots or slot in finished:
                    if slot in slots:
                        dockgate("sim", "detach", "-c", str(station), "--slot", str(slot))
                    rec = make_recorder(work, len(made), rng)
                    made.append(rec)
                    slots[slot] = rec
                    dockgate("sim", "attach", str(rec), "-c", str(station), "--slot", str(slot))
            d.start()
            time.sleep(rng.uniform(0.5, 4.0))
            s = d.status()
            finished = {x["slot"] for x in s["slots"] if x["state"] in ("done", "error")}
            states = {x["state"] for x in s["slots"]}
            active = [name for name, on in (("dock", bool(states & {"idle", "identifying"})),
                                            ("pull", "pulling" in states), ("stamp", s["clips"]["staged"] > 0),
                                            ("forward", s["clips"]["stamped"] + s["clips"]["forwarding"] > 0))
                      if on]
            phase = "+".join(active) or "idle"
            kills[phase] += 1
            d.kill()
        d.start()
        s = d.wait_for(lambda s: all(x["state"] in ("done", "error") for x in s["slots"] if x["slot"] in slots)
                       and s["queue"]["clips"] == 0 and s["clips"]["staged"] == 0
                       and s["clips"]["pulling"] == 0 and s["clips"]["discovered"] == 0, timeout=600,
                       what="the last run to finish")
        time.sleep(2)  # custody segments rotate every 0.5 s and are forwarded
        assert d.stop() == 0
        want = Counter()
        for rec in made:
            want += source_hashes(rec / "storage")
        have, versions = archive_objects(s3, bucket)
        lost = sum(1 for h in want if h not in have)
        duplicated = sum(n - 1 for n in have.values() if n > 1) + sum(n - 1 for n in versions.values() if n > 1)
        in_flight = {k: v for k, v in s["clips"].items() if k in ("pulling", "staged", "forwarding") and v}
        interrupted = s["clips"]["interrupted"]
        verify = dockgate("verify", "-c", str(station), check=False)
        ok = verify.returncode == 0
        print(f"iterations={a.iterations} seed={a.seed} recorders={len(made)} clips={len(want)} "
              f"kills={dict(kills)}")
        print(f"catalog={json.dumps(s['clips'])} in_flight={in_flight or 0} interrupted_left={interrupted}")
        print(f"verify={'ok' if ok else 'FAILED'}: {(verify.stdout or verify.stderr).strip().splitlines()[0]}")
        print(f"lost={lost} duplicated={duplicated}")
        return 0 if lost == 0 and duplicated == 0 and ok and not in_flight else 1
    finally:
        broker.stop()
        s3.stop()
        if a.keep:
            print(f"work directory: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
