"""A device that subscribes to other topics, the ingest workers' group included, takes nothing.

With Mosquitto 2.0.11's acl_file every SUBSCRIBE was granted (the file is applied when a message
is delivered): a device that joined the workers' shared subscription was dealt every (k+1)-th
message, refused it, and the group lost it: 13 of 40 messages arrived only with the devices'
resend 600 s later. The generated security (the dynamic security plugin) refuses every such
SUBSCRIBE in the SUBACK, so the device never joins the group; and the workers' group name is
still a secret of the stack (a random one), should the broker lack the plugin.
"""

from __future__ import annotations

import pytest

from sensorpipe.ingest.config import load_ingest_config
from sensorpipe.ingest.influx import InfluxClient
from sensorpipe.protocol.topics import subscription
from sensorpipe.stack.local import LocalStack
from tests.helpers import wait_for
from tests.integration.mqtt_helpers import TestDevice, air_message
from tests.integration.test_broker_rules import Client

# What a device would try: the ingest's subscription under the group name the project used to
# give it and the names one would guess, everything, every device's readings and
# confirmations, and another device's own topics.
SPY_TOPICS = (
    subscription("ingest"),
    "$share/ingest/sensorpipe/v1/#",
    subscription("sensorpipe"),
    subscription("workers"),
    "#",
    "sensorpipe/v1/+/+",
    "sensorpipe/v1/sender-0/+",
    "sensorpipe/ack/v1/+",
    "sensorpipe/ack/v1/sender-0",
    "$share/ingest/sensorpipe/ack/v1/+",
)
PER_DEVICE = 40
SENDERS = 3


@pytest.mark.timeout(240)
def test_a_spying_device_neither_reads_nor_delays_any_message(
    stack: LocalStack, influx: InfluxClient
) -> None:
    assert stack.ingest is not None
    stack.ingest.stop()  # the stack's own (unshared) ingest steps aside for two workers
    workers = [stack.add_worker(name) for name in ("worker-1", "worker-2")]
    group = load_ingest_config(workers[0].directory / "ingest.toml").broker.shared_group
    assert group is not None and not any(group in t for t in SPY_TOPICS)
    for w in workers:
        w.start()
    port = stack.require_info().broker_port
    creds = stack.add_devices(
        [("spy", {"site": "s"})] + [(f"sender-{i}", {"site": "s"}) for i in range(SENDERS)]
    )
    # The spy: a registered device's own MQTT 5 connection, subscribed to what it should not read.
    spy = Client(port, creds[0].username, creds[0].password, creds[0].device_id)
    senders = [TestDevice(c, port) for c in creds[1:]]
    try:
        subacks = {t: spy.subscribe(t) for t in (*SPY_TOPICS, subscription(group))}
        for seq in range(1, PER_DEVICE + 1):
            for device in senders:
                assert not device.send(air_message(device.creds.device_id, seq)).is_failure
        # The devices would send a lost message again after 600 s; stored well before that
        # means nothing was lost. The deadline is generous, not a measure of speed.
        total = SENDERS * PER_DEVICE
        try:
            wait_for(lambda: _stored(influx) >= total, timeout_s=60, what=f"{total} stored")
        except AssertionError:
            pytest.fail(f"{_stored(influx)} of {total} messages stored after 60 s")
        for device in senders:
            rows = influx.query(
                f"SELECT seq FROM link WHERE device_id = '{device.creds.device_id}'"
            )
            seqs = sorted(int(v[1]) for s in rows for v in s["values"])
            assert seqs == list(range(1, PER_DEVICE + 1)), device.creds.device_id
        assert spy.messages == [], [(m.topic, m.payload[:40]) for m in spy.messages]
        # Refused at SUBSCRIBE: the broker holds no subscription for any of them.
        granted = {t: r for t, r in subacks.items() if not r[0].is_failure}
        assert granted == {}, granted
    finally:
        spy.close()
        for device in senders:
            device.close()
        for w in workers:
            w.stop()
    # Both workers took part, so the spy did subscribe while the group was shared.
    for w in workers:
        assert '"stored_messages": 0' not in w.stats_path.read_text()


def test_the_stack_keeps_one_random_group_for_all_its_workers(stack: LocalStack) -> None:
    first = stack.shared_group()
    assert first == stack.shared_group() and len(first) >= 22
    names = {
        load_ingest_config(stack.add_worker(name).directory / "ingest.toml").broker.shared_group
        for name in ("worker-a", "worker-b")
    }
    assert names == {first}
    assert (stack.directory / "ingest" / "shared_group").stat().st_mode & 0o077 == 0


def _stored(influx: InfluxClient) -> int:
    series = influx.query("SELECT count(seq) FROM link WHERE device_id =~ /^sender-/")
    return int(series[0]["values"][0][1]) if series else 0
