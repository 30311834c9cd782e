"""OGC SensorThings API v1.1, read part, under /sta/v1.1."""

from fastapi import APIRouter

router = APIRouter(prefix="/sta/v1.1", tags=["SensorThings"])
