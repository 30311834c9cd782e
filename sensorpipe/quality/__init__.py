"""Quality flags on every air reading, computed as it is stored, beside the raw value.

`flags` names each flag and says in one sentence why it exists; `config` holds the thresholds
per quantity and per sensor model (the `[quality]` section of ingest.toml), each default with
its reason; `checker` is the `QualityChecker` the live ingest (devices and the kit gateway's
kits alike, which arrive over MQTT) and the importer both use: one implementation, so a value
imported from a history file is flagged as the same value arriving live would be. `zeros` is
what it keeps of counts of passers-by to tell a counter stuck at zero from a quiet street:
each series' hour-of-week profile and the hour's city-wide factor (and `stuck_intervals`, the
same judgement over rows read from a file).

The raw value is never changed: a flag is a string field `qc_<quantity>` beside it (the sorted
flag names, joined by ","), written only where a flag is raised, and every checked air point
carries the integer field `qc`, the version of the check set (`flags.QC_VERSION`), so
"checked, no flag" differs from "not checked" (`protocol.storage`).

The neighbour outlier is judged later, over stored hourly means, where neighbours exist:
`neighbours` computes the robust z-scores (pure functions); ingest.neighbours reads the means
from InfluxDB, merges the flag `neighbour` into the outliers' stored flags, and is the timer the
ingest runs it on (`sensorpipe quality neighbours` runs it over any period).
"""
