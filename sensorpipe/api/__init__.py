"""`sensorpipe serve`: the read-only HTTP service for municipalities and residents.

- /api/v1: the public register, air readings and counts, health (api.v1);
- /sta/v1.1: the read part of OGC SensorThings API v1.1 (api.sta);
- /: the dashboard, a map and charts (api.dashboard, static files in api/static).
"""
