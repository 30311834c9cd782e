"""Which intervals of a counting device are flagged: for whoever learns from counts (the
forecasts) and must not learn a broken counter's zeros as a quiet street.

The flags are stored with the counts (`protocol.storage`): each `traffic` point (device_id,
site, class, direction; one interval from its time) has the string field `qc_count` where a
flag is raised (`stuck`, `clock`; sorted names joined by ","), and `qc`, the check set's
version, where it was checked at all. A run of zeros judged stuck (quality.zeros) is flagged
from its first interval, imported counts included.

    flagged_intervals(influx, "akl-107-quay-street", start_ms, end_ms)  -> [epoch ms, ...]
"""

from __future__ import annotations

from collections.abc import Sequence

from sensorpipe.ingest.influx import InfluxClient, identifier, string_literal
from sensorpipe.protocol import storage
from sensorpipe.quality.flags import STUCK
from sensorpipe.query.flagged import FlagFilter


def flagged_intervals(
    influx: InfluxClient,
    device_id: str,
    start_ms: int,
    end_ms: int,
    *,
    flags: Sequence[str] = (STUCK,),
    count_class: str | None = None,
    direction: str | None = None,
) -> list[int]:
    """The start times (epoch ms, sorted, each once) of the intervals in [start_ms, end_ms) in
    which a count of `device_id` (of `count_class` and `direction`, where given) carries one of
    `flags` (none: any flag). QueryInputError for an unknown flag name."""
    flt = FlagFilter("only", tuple(flags))
    flt.check()
    conditions = [
        f"{identifier('device_id')} = {string_literal(device_id)}",
        f"time >= {int(start_ms)}ms",
        f"time < {int(end_ms)}ms",
        flt.condition("count"),
    ]
    if count_class is not None:
        conditions.append(f"{identifier('class')} = {string_literal(count_class)}")
    if direction is not None:
        conditions.append(f"{identifier('direction')} = {string_literal(direction)}")
    q = f"SELECT qc_count FROM {identifier(storage.TRAFFIC)} WHERE {' AND '.join(conditions)}"
    return sorted({int(row[0]) for s in influx.query(q) for row in s.get("values") or []})
