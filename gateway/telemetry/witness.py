"""`dockgate witness --metrics HOST:PORT`: the district witness in Prometheus.

Read at each scrape from the store's own counts (gateway/evidence/witness.py),
so nothing is counted twice. Labels: ``station`` (bounded: the district's
stations, from the keyring and the store; a refusal from no known station is
counted under ``station=""``) and ``reason``.

* ``dockgate_witness_checkpoint_age_seconds{station}``: since the newest
  checkpoint of the station was kept (by the witness's clock; a station never
  heard: since the witness started);
* ``dockgate_witness_entries_covered{station}``: the custody entries its
  newest kept checkpoint covers (its ``seq``);
* ``dockgate_witness_refusals_total{station,reason}``: checkpoints refused
  (reasons: gateway.evidence.witness.REASONS; ``topic`` and ``wrong_key`` are
  cross-station forgeries, ``backwards`` a record that went back);
* ``dockgate_witness_station_silent{station}``: 1 while no checkpoint came
  for longer than ``--silence-after``; ``dockgate_witness_silence_after_seconds``
  is that setting (0: off).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from gateway.errors import CannotListen
from gateway.evidence.witness import REASONS, WitnessStore

log = logging.getLogger(__name__)


class WitnessCollector(Collector):
    def __init__(self, store: WitnessStore) -> None:
        self.store = store

    def collect(self) -> Iterator[Metric]:
        s = self.store
        now = s.clock()
        silent = set(s.silence())
        stations = s.stations()
        age = GaugeMetricFamily("dockgate_witness_checkpoint_age_seconds", "Since the station's newest checkpoint "
                                "was kept (never heard: since the witness started)", labels=["station"])
        covered = GaugeMetricFamily("dockgate_witness_entries_covered", "Custody entries the station's newest "
                                    "kept checkpoint covers", labels=["station"])
        quiet = GaugeMetricFamily("dockgate_witness_station_silent", "1 while the station has sent no checkpoint "
                                  "for longer than silence_after", labels=["station"])
        with s.lock:
            heard_now, seen = dict(s.heard), dict(s.refusals)
        for st in stations:
            heard = heard_now.get(st)
            age.add_metric([st], now - (heard.at if heard else s.started))
            covered.add_metric([st], heard.seq if heard else 0)
            quiet.add_metric([st], 1.0 if st in silent else 0.0)
        refused = CounterMetricFamily("dockgate_witness_refusals", "Checkpoints refused, by the station whose "
                                      "topic they came on and why", labels=["station", "reason"])
        for st in ["", *stations]:
            for reason in REASONS:
                if (st, reason) in seen or st:
                    refused.add_metric([st, reason], seen.get((st, reason), 0))
        setting = GaugeMetricFamily("dockgate_witness_silence_after_seconds", "A station is silent after this "
                                    "long without a checkpoint (0: never)")
        setting.add_metric([], s.silence_after)
        yield from (age, covered, quiet, refused, setting)


def registry_of(store: WitnessStore) -> CollectorRegistry:
    r = CollectorRegistry()
    r.register(WitnessCollector(store))
    return r


def serve(store: WitnessStore, listen: str) -> None:
    host, _, port = listen.rpartition(":")
    try:
        start_http_server(int(port), addr=host.strip("[]") or "127.0.0.1", registry=registry_of(store))
    except OSError as e:
        raise CannotListen("witness --metrics", listen, e) from None
    log.info("witness metrics on http://%s/metrics", listen)
