"""uvicorn's httptools protocol with the two limits it lacks: the size of a request's line
and headers, and the time a client may take to send them. Without them one client can hold
a connection open forever by sending a header byte a second (slowloris), or make the
server buffer megabytes of headers."""

from __future__ import annotations

import asyncio
import json

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class GuardedHttpProtocol(HttpToolsProtocol):
    max_head_bytes = 32_768
    head_timeout_seconds = 10.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]  # uvicorn declares BaseTransport
        super().connection_made(transport)
        self._head_bytes = 0
        self._reading_head = True
        self._deadline: asyncio.TimerHandle | None = None
        self._start_head()

    def _start_head(self) -> None:
        """From connecting, and from the first byte of each later request."""
        self._reading_head, self._head_bytes = True, 0
        if self._deadline is None:
            self._deadline = self.loop.call_later(self.head_timeout_seconds, self._too_slow)

    def _end_head(self) -> None:
        self._reading_head = False
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def data_received(self, data: bytes) -> None:
        reading = self._reading_head
        super().data_received(data)
        if reading and self._reading_head and not self.transport.is_closing():
            self._head_bytes += len(data)  # the whole chunk: httptools holds it all
            if self._head_bytes > self.max_head_bytes:
                self._refuse(
                    431,
                    "Request Header Fields Too Large",
                    f"request line and headers larger than {self.max_head_bytes} bytes",
                )

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if not self._reading_head:
            self._start_head()

    def on_headers_complete(self) -> None:
        self._end_head()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._end_head()
        super().connection_lost(exc)

    def _too_slow(self) -> None:
        self._deadline = None
        if self._reading_head and not self.transport.is_closing():
            self._refuse(
                408,
                "Request Timeout",
                f"request line and headers not received within {self.head_timeout_seconds:g} s",
            )

    def _refuse(self, status: int, reason: str, message: str) -> None:
        self._end_head()
        body = json.dumps({"status": "error", "message": message}).encode()
        self.transport.write(
            f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n".encode()
            + body
        )
        self.transport.close()


def guarded_http(max_head_bytes: int, head_timeout_seconds: float) -> type[GuardedHttpProtocol]:
    """The protocol class for ``uvicorn.Config(http=...)``, with these limits."""
    return type(
        "ConfiguredHttpProtocol",
        (GuardedHttpProtocol,),
        {"max_head_bytes": max_head_bytes, "head_timeout_seconds": head_timeout_seconds},
    )
