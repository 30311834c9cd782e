"""OGC SensorThings API v1.1, read part, under /sta/v1.1.

- ids.py: entity ids that stay the same across restarts
- odata.py: the query options ($top, $skip, $count, $orderby, $select, $expand, $filter)
- catalog.py: Things, Locations, Sensors, ObservedProperties and Datastreams
- observations.py: Observations, read from InfluxDB a page at a time
- routes.py: the resource paths
"""

from sensorpipe.api.sta.routes import router

__all__ = ["router"]
