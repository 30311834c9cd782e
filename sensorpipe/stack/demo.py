"""`sensorpipe demo`: the whole pipeline on real parts, counted from what InfluxDB holds.

Brings up Mosquitto, influxd and the ingest on free ports in a temporary directory, runs N
simulated devices (plus one misbehaving device whose messages must be rejected) for S seconds,
drains every outbox, then counts: published (acknowledged by the broker), stored (messages
found in InfluxDB), rejected (messages in the dead-letter store: a letter's repeats count, as the
same bad payload sent twice is kept once) and lost = published - stored - rejected.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from sensorpipe.firmware_sim.faults import FaultyDevice
from sensorpipe.firmware_sim.fleet import Fleet, HostKit, sensirion_installed
from sensorpipe.ingest.deadletter import DeadLetterStore
from sensorpipe.ingest.influx import InfluxClient
from sensorpipe.protocol import storage
from sensorpipe.protocol.messages import Location
from sensorpipe.query.influxql import AirQuery
from sensorpipe.query.output import rows_from_series
from sensorpipe.stack.local import LocalStack, StackInfo

Say = Callable[[str], None]


@dataclass
class DemoSummary:
    devices: int
    duration_s: float
    published: int = 0
    stored: int = 0
    rejected: int = 0
    lost: int = 0
    pending_in_outboxes: int = 0
    air_points: int = 0
    rejected_by_reason: dict[str, int] = field(default_factory=dict)
    defective_sent: dict[str, int] = field(default_factory=dict)
    malformed_frames_skipped: int = 0
    # Per sensor model, the faults the devices counted by kind (their sensor health).
    sensor_faults: dict[str, dict[str, int]] = field(default_factory=dict)
    # "device sensor": the longest back-off its status messages reported (seconds).
    backed_off: dict[str, float] = field(default_factory=dict)
    query: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


# The demo's fleet, repeated over its devices: the sensors people own, each showing its
# typical faults now and then (firmware_sim.fleet.HostKit: in the demo's minute, about one of
# each per half minute), counted and backed off on the device while no reading is lost.
DEMO_KITS: tuple[HostKit, ...] = (
    HostKit(pms5003=True, faults=True),  # a street: SDS011, PMS5003 on a mini-UART, BME280
    # A garden: SHT4x, a soil probe on an ADS1115 and a DS18B20 soil thermometer.
    HostKit(sds011=False, sht4x=True, soil=True, ds18b20=True, faults=True),
    HostKit(sds011=False, sht3x=True, scd4x=True, faults=True),  # a classroom: SCD41, SHT3x
    HostKit(sds011=False, sps30=True, scd30=True, faults=True),  # a kit: SPS30, SCD30
    HostKit(faults=True),  # the classic: SDS011 and BME280
)
# Status messages (sensor health) this often: a back-off of a few seconds shows centrally.
DEMO_STATUS_S = 3.0


def demo_kits(sensirion: bool) -> tuple[list[HostKit], str | None]:
    """The demo's kits, without the Sensirion sensors where their drivers (the `sensirion`
    extra) are not installed, and a line saying so."""
    if sensirion:
        return list(DEMO_KITS), None
    kits = [
        replace(k, sps30=False, scd4x=False, scd30=False, sds011=k.sds011 or k.sensirion)
        for k in DEMO_KITS
    ]
    return kits, (
        "the classroom's SCD41 and the kit's SPS30 and SCD30 are left out: Sensirion's "
        "drivers are not installed (pip install 'sensorpipe[sensirion]')"
    )


def count_stored(influx: InfluxClient, since_ms: int) -> tuple[int, int]:
    """(messages, air points) in InfluxDB since `since_ms`: one link point per message."""

    def total(measurement: str, field_name: str) -> int:
        series = influx.query(
            f'SELECT count("{field_name}") FROM "{measurement}" WHERE time >= {since_ms}ms'
        )
        return sum(int(v[1]) for s in series for v in s["values"] if v[1] is not None)

    return total(storage.LINK, "seq"), total(storage.AIR, "pm2_5") + total(
        storage.AIR, "temperature"
    )


def run_demo(
    *,
    devices: int = 5,
    duration_s: float = 60.0,
    interval_s: float = 1.0,
    fault_every_s: float = 5.0,
    say: Say = print,
    directory: Path | None = None,
    after: Callable[[DemoSummary, StackInfo], None] | None = None,
) -> DemoSummary:
    """Run the demo; `after` is called with the summary while the stack still runs (the
    dashboard kept up for a look at what was stored), and the stack stops when it returns."""
    summary = DemoSummary(devices=devices, duration_s=duration_s)
    with tempfile.TemporaryDirectory(prefix="sensorpipe-demo-") as tmp:
        root = directory or Path(tmp)
        stack = LocalStack(root / "stack")
        info = stack.up(detach=False, progress=say)
        try:
            _run(
                stack,
                info.broker_port,
                info.influx_url,
                root,
                summary,
                interval_s,
                fault_every_s,
                say,
            )
            if after is not None:
                after(summary, info)
        finally:
            say("stopping the stack")
            stack.down()
    return summary


def _run(
    stack: LocalStack,
    port: int,
    influx_url: str,
    root: Path,
    summary: DemoSummary,
    interval_s: float,
    fault_every_s: float,
    say: Say,
) -> None:
    since_ms = int(time.time() * 1000) - 1000
    kits, left_out = demo_kits(sensirion_installed())
    if left_out:
        say(left_out)
    specs: list[tuple[str, dict[str, Any]]] = [
        (
            f"sim-{i + 1:03d}",
            {
                "site": f"demo-street-{i % 3 + 1}",
                "owner": "demo",
                "purpose": "simulated air quality",
                "sensors": kits[i % len(kits)].declared(),
                "location": _demo_location(i),
            },
        )
        for i in range(summary.devices)
    ]
    specs.append(
        (
            "sim-faulty",
            {
                "site": "demo-street-1",
                "owner": "demo",
                "purpose": "sends defective messages on purpose",
            },
        )
    )
    credentials = stack.add_devices(specs)
    n = summary.devices
    say(f"registered {n} simulated device{'' if n == 1 else 's'} and one misbehaving device")
    (root / "outboxes").mkdir(exist_ok=True)
    fleet = Fleet(
        credentials[:-1],
        broker_host="127.0.0.1",
        broker_port=port,
        workdir=root / "outboxes",
        interval_s=interval_s,
        status_interval_s=DEMO_STATUS_S,
        kits=kits,
    )
    faulty = FaultyDevice(credentials[-1], host="127.0.0.1", port=port)
    stats_path = stack.directory / "ingest" / "stats.json"
    fleet.start()
    started = time.monotonic()
    next_fault = started + fault_every_s / 2
    try:
        while (elapsed := time.monotonic() - started) < summary.duration_s:
            if time.monotonic() >= next_fault:
                faulty.send()
                next_fault += fault_every_s
            ingest = _read_json(stats_path)
            say(
                f"[{elapsed:5.1f}s] queued {fleet.queued():5d}  acked {fleet.acked():5d}  "
                f"stored {ingest.get('stored_messages', 0):5d}  "
                f"rejected {ingest.get('rejected', 0):3d}"
            )
            time.sleep(min(1.0, max(0.0, summary.duration_s - elapsed)))
    except KeyboardInterrupt:
        say("interrupted: finishing early")
    say("stopping the devices and draining their outboxes")
    summary.pending_in_outboxes = fleet.stop()
    faulty.close()
    summary.duration_s = round(time.monotonic() - started, 1)
    summary.published = fleet.acked() + faulty.total_sent
    summary.defective_sent = dict(faulty.sent)
    summary.malformed_frames_skipped = sum(
        h.frames_bad for host in fleet.hosts for h in host.agent.sensor_health()
    )
    for host in fleet.hosts:
        for h in host.agent.sensor_health():
            faults = summary.sensor_faults.setdefault(h.sensor, {})
            for kind, n in h.errors.items():
                faults[kind] = faults.get(kind, 0) + n
    summary.sensor_faults = {k: v for k, v in sorted(summary.sensor_faults.items()) if v}

    influx = InfluxClient(influx_url, "sensorpipe")
    deadletters = DeadLetterStore(stack.directory / "ingest" / "deadletter.sqlite")
    try:
        deadline = time.monotonic() + 30
        while True:
            summary.stored, summary.air_points = count_stored(influx, since_ms)
            summary.rejected = deadletters.deliveries()
            if (
                summary.stored + summary.rejected >= summary.published
                or time.monotonic() > deadline
            ):
                break
            time.sleep(0.5)
        summary.rejected_by_reason = deadletters.deliveries_by_code()
        summary.backed_off = _backed_off(influx, since_ms)
        summary.lost = summary.published - summary.stored - summary.rejected
        q = AirQuery(
            quantities=list(DEMO_TABLE_QUANTITIES),
            start="-5m",
            every="1m",
        )
        summary.query = rows_from_series(
            influx.query(q.to_influxql()), ["device_id", "site", "sensor"]
        )
    finally:
        influx.close()
        deadletters.close()


# What the summary's table shows of the fleet's last minutes: each quantity some demo sensor
# measures (columns nobody measured are dropped when it is printed).
DEMO_TABLE_QUANTITIES = (
    "pm1",
    "pm2_5",
    "pm10",
    "temperature",
    "relative_humidity",
    "co2",
    "soil_moisture",
    "soil_temperature",
)


def _backed_off(influx: InfluxClient, since_ms: int) -> dict[str, float]:
    """Sensors whose status messages reported a back-off, with the longest: the central view
    of a sensor that kept failing and was tried less often."""
    series = influx.query(
        f'SELECT max("backoff_s") FROM "{storage.SENSOR_STATUS}" WHERE time >= {since_ms}ms '
        "GROUP BY device_id, sensor"
    )
    out = {}
    for s in series:
        tags = s.get("tags") or {}
        longest = max((v[1] for v in s["values"] if v[1] is not None), default=None)
        if longest:
            out[f"{tags.get('device_id')} {tags.get('sensor')}"] = float(longest)
    return dict(sorted(out.items()))


def _demo_location(i: int) -> Location:
    """Places for the demo's devices on the dashboard's map: a few streets in Utrecht."""
    return Location(
        lat=round(52.0907 + 0.004 * (i % 5), 5), lon=round(5.1214 + 0.006 * (i // 5), 5)
    )


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return dict(json.loads(path.read_text()))
    except (FileNotFoundError, ValueError):
        return {}
