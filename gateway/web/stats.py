"""Statistics for supervision (pages and JSON)."""

from __future__ import annotations

from aiohttp import web

from gateway.web.app import Web


def routes(app: web.Application, w: Web) -> None:
    pass
