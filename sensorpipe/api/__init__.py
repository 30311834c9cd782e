"""`sensorpipe serve`: the read-only HTTP service for municipalities and residents.

`app` builds the FastAPI application over one `context` (configuration, InfluxDB client,
registry, register statistics) read from `config`, and `server` runs it in uvicorn within the
package's HTTP bounds. `v1` answers /api/v1 (the public register, air readings and counts,
health) with the models of `answers`, `crowding` the areas and their crowding levels (its own
router), `alerts` the crowding alerts raised (/api/v1/alerts, its own router), `sta/` the read
part of OGC SensorThings API v1.1 under /sta/v1.1, and `dashboard` the map and charts at / from
`static/` (with the vendored Leaflet, uPlot and Swagger UI). Every answer passes `guard` (a
bound on heavy requests, security headers); errors are `problems` (RFC 9457 problem details).
"""
