"""Each sensor's health as computed from what a real InfluxDB holds: ok or not, the last error,
since when, and uptime per sensor (sensorpipe.query.health through register_stats)."""

from __future__ import annotations

import pytest

from sensorpipe.ingest.influx import InfluxClient
from sensorpipe.query.register import register_stats

pytestmark = pytest.mark.integration

T0 = 1_780_000_200_000  # a multiple of 5 minutes
MIN = 60_000


def test_ok_since_and_uptime_per_sensor_follow_the_stored_points(influx: InfluxClient) -> None:
    lines = []
    # An hour of messages (one per 5-minute window), the SDS011 read in each window, the BME280
    # in the first four only; it then fails, recovers, and fails again.
    for i in range(12):
        t = T0 + i * 5 * MIN
        lines.append(f"link,device_id=d1,site=s,kind=air,gateway=g seq={i}i {t}")
        lines.append(f"air,device_id=d1,site=s,sensor=sds011 pm2_5=3,pm10=5 {t}")
        if i < 4:
            lines.append(f"air,device_id=d1,site=s,sensor=bme280 temperature=20 {t}")
        if i < 6:  # a model sensorpipe does not know: its most-reported field counts
            extra = ",co2=400" if i < 2 else ""
            lines.append(f"air,device_id=d1,site=s,sensor=acme-7 noise=40{extra} {t}")
    status = [
        (1, "bme280", "true", None),
        (4, "bme280", "false", "bme280: no answer at 0x76"),
        (5, "bme280", "true", None),
        (6, "bme280", "false", "bme280: bad chip id 0x00"),
        (8, "bme280", "false", "bme280: no answer at 0x76"),
        (10, "bme280", "false", "bme280: no answer at 0x76"),
        (10, "sds011", "true", None),
    ]
    for i, sensor, ok, error in status:
        extra = f',last_error="{error}"' if error else ""
        lines.append(
            f"sensor_status,device_id=d1,site=s,sensor={sensor} ok={ok}{extra} {T0 + i * 5 * MIN}"
        )
    # A device with only a status point (its sensor never opened) and one with nothing.
    lines.append(f"link,device_id=d2,site=s,kind=status,gateway=g seq=0i {T0}")
    lines.append(
        f'sensor_status,device_id=d2,site=s,sensor=bme280 ok=false,last_error="no bus" {T0}'
    )
    influx.write(lines)

    stats = register_stats(influx, now_ms=T0 + 60 * MIN)
    d1 = stats.of("d1").health
    assert set(d1) == {"sds011", "bme280", "acme-7"}
    assert d1["acme-7"].uptime["24h"] == pytest.approx(6 / 12) and d1["acme-7"].ok is None
    bme, sds = d1["bme280"], d1["sds011"]
    assert bme.ok is False
    assert bme.since_ms == T0 + 6 * 5 * MIN  # the first failure after it was last ok
    assert bme.last_error == "bme280: no answer at 0x76"
    assert bme.reported_ms == T0 + 10 * 5 * MIN
    assert bme.uptime["24h"] == pytest.approx(4 / 12)
    assert stats.of("d1").uptime["24h"] == 1.0  # the device's own uptime hides it
    assert bme.note() == "bme280 not ok since 2026-05-28 21:00 UTC: bme280: no answer at 0x76"
    assert sds.ok is True and sds.since_ms == T0 + 10 * 5 * MIN and sds.last_error is None
    assert sds.uptime["24h"] == 1.0 and sds.note() is None

    d2 = stats.of("d2").health
    assert d2["bme280"].ok is False and d2["bme280"].since_ms == T0
    assert d2["bme280"].uptime["24h"] == 0.0
    assert stats.of("d3").health == {}
