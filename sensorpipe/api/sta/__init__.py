"""OGC SensorThings API v1.1, read part, under /sta/v1.1.

`routes` serves the resource paths; `catalog` builds Things, Locations, Sensors,
ObservedProperties and Datastreams from the registry, `observations` reads Observations from
InfluxDB a page at a time, `odata` parses the query options ($top, $skip, $count, $orderby,
$select, $expand, $filter) and `ids` makes entity ids that stay the same across restarts.
"""

from sensorpipe.api.sta.routes import router

__all__ = ["router"]
