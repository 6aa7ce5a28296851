"""A small HTTP proxy that adds a bearer token: ``python bearer_proxy.py PORT UPSTREAM TOKEN``.

Clients that cannot send a token (the MCP conformance suite) reach ``mcp-state serve
--transport http`` through it. Everything else passes unchanged, Host and Origin included
(so the server's DNS-rebinding checks still see what the client sent), and responses stream
(server-sent events arrive as they are written). Listens on 127.0.0.1 only.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import httpx2
import uvicorn
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import StreamingResponse

DEBUG = bool(os.environ.get("BEARER_PROXY_DEBUG"))
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "content-length"}


def proxy_app(upstream: str, token: str) -> Any:
    client = httpx2.AsyncClient(base_url=upstream, timeout=None)

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        headers = [
            (k, v) for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP | {"authorization"}
        ]
        headers.append(("authorization", f"Bearer {token}"))
        body = await request.body()
        if DEBUG:
            print(request.method, dict(request.headers), body[:300], file=sys.stderr, flush=True)
        upstream_request = client.build_request(
            request.method,
            request.url.path + (f"?{request.url.query}" if request.url.query else ""),
            headers=headers,
            content=body,
        )
        response = await client.send(upstream_request, stream=True)
        reply = StreamingResponse(
            response.aiter_raw(),
            status_code=response.status_code,
            headers={k: v for k, v in response.headers.items() if k.lower() not in HOP_BY_HOP},
            background=BackgroundTask(response.aclose),
        )
        await reply(scope, receive, send)

    return app


if __name__ == "__main__":
    port, upstream, token = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    uvicorn.run(proxy_app(upstream, token), host="127.0.0.1", port=port, log_level="warning")
