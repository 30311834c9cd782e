"""`sensorpipe edge run`: open what the configuration names, then run the agent until stopped.

Shared by the click command (sensorpipe.cli.edge) and the command's lean start
(sensorpipe.cli.entry), which runs the agent without loading the CLI library: the agent runs
for months on a small Pi, and click and the command groups are a megabyte it never uses.
"""

from __future__ import annotations

import functools
import logging
import signal
import sys
import threading
from pathlib import Path

from sensorpipe.protocol.configfile import ConfigError


class RunError(Exception):
    """What ends `edge run` with status 1, in one line."""


def run_agent(config_path: Path) -> None:
    """Run the agent of `config_path` until SIGTERM or Ctrl-C (or its video file ends).

    Raises RunError for a configuration that cannot be used or something it names that cannot
    be opened, and for a camera that stopped delivering frames (for the service manager to
    start the agent again)."""
    from sensorpipe.edge.agent import Agent, SensorOpener
    from sensorpipe.edge.config import load_edge_config
    from sensorpipe.edge.counting.errors import ModelError
    from sensorpipe.edge.drivers import open_driver
    from sensorpipe.edge.drivers.registry import duty_cycle, sensor_tag
    from sensorpipe.edge.duty import HOURS_FILE, LaserHours
    from sensorpipe.edge.outbox import OutboxError, SqliteOutbox
    from sensorpipe.edge.sensorloop import READ_TIMEOUT_S

    try:
        config = load_edge_config(config_path)
    except ConfigError as exc:
        raise RunError(str(exc)) from None
    # What the file names is opened now; what cannot be is one line naming the key.
    try:
        counter = None
        if config.counting is not None:
            # Loaded only with a camera: an air-only host keeps the counting code out of memory.
            from sensorpipe.edge.counting.config import build_pipeline, open_source
            from sensorpipe.edge.counting.errors import SourceUnavailable
            from sensorpipe.edge.counting.loop import CountingLoop

            pipeline = build_pipeline(config.counting, config_path.resolve().parent)
            try:
                source = open_source(config.counting.source)
            except SourceUnavailable as exc:
                raise RunError(str(config.key_error("counting.source", str(exc)))) from None
            counter = CountingLoop(pipeline, source)
        outbox = SqliteOutbox(config.outbox_path, max_entries=config.outbox_max_entries)
    except ModelError as exc:
        raise RunError(str(exc)) from None
    except OutboxError as exc:
        raise RunError(str(config.key_error("outbox_path", str(exc)))) from None
    # Sensors are opened by the agent: one that cannot be opened is reported and tried again
    # while the others are read.
    hours = LaserHours(Path(config.outbox_path).parent / HOURS_FILE)
    # A sensor's own `timeout_s` (where its section has one) bounds one exchange; an open or
    # a read after a lost port does up to three (the SDS011's wake, mode, query).
    sensors = [
        SensorOpener(
            sensor_tag(s),
            functools.partial(open_driver, s),
            s.interval_s,
            duty_cycle(s, hours),
            read_timeout_s=max(READ_TIMEOUT_S, 3 * float(getattr(s, "timeout_s", 0.0)) + 1.0),
        )
        for s in config.sensors
    ]
    from sensorpipe.edge.healthfile import HEALTH_FILE

    state_dir = Path(config.outbox_path).parent
    agent = Agent(
        config,
        sensors=sensors,
        outbox=outbox,
        counter=counter,
        health_path=state_dir / HEALTH_FILE,
    )
    # Without -v the agent still says how it starts: each sensor's first reading queued, the
    # first confirmation from the ingest, then a summary every few minutes (INFO).
    edge_log = logging.getLogger("sensorpipe.edge")
    if logging.getLogger().getEffectiveLevel() > logging.INFO and edge_log.level == 0:
        edge_log.setLevel(logging.INFO)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print(f"{config.device_id}: publishing to {config.mqtt.host}:{config.mqtt.port}", flush=True)
    try:
        ended = agent.run(stop)
    except KeyboardInterrupt:
        stop.set()
        ended = None
    finally:
        waiting = outbox.depth()
        outbox.close()
    if ended is None:
        return
    assert config.counting is not None
    queued = agent.stats.kinds.get("count", 0)
    summary = (
        f"{config.device_id}: {ended}; count messages queued: {queued}, "
        f"messages waiting in the outbox for the next start: {waiting}"
    )
    if config.counting.source.kind == "video":
        print(summary, file=sys.stderr, flush=True)
        return
    raise RunError(f"{summary}; the camera stopped delivering frames")
