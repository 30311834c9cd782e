"""The dashboard page at / and its static files."""

from fastapi import APIRouter

router = APIRouter(include_in_schema=False)
