"""Fixtures shared by the unit tests' modules; a module's own fixture of the same name wins."""

from tests.gateway_app import client, gateway

__all__ = ["client", "gateway"]
