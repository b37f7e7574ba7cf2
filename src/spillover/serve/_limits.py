"""What one request may ask of the server, and the body-size cap enforced before a body is read.

Imported by the CLI for its option defaults, so it imports nothing of FastAPI at module level.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class RequestLimits(BaseModel):
    """Bounds on a single request. Each field is a `spillover serve` option of the same name."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_body_bytes: int = Field(1_048_576, ge=1024, description="Largest request body in bytes; larger ones get a 413 before they are read.")
    max_n: int = Field(16, ge=1, le=128, description="Most choices (n) one request may ask for.")
    max_messages: int = Field(256, ge=1, description="Most messages in one request's conversation.")


class BodyTooLarge(Exception):
    """Raised from `receive` when the bytes of a body pass the cap; the middleware answers 413."""


class BodySizeLimit:
    """ASGI middleware: a request body over `max_bytes` gets a 413 in OpenAI's error shape.

    A Content-Length over the cap is refused before any of the body is read; a body without one
    (chunked) is counted as it arrives and refused once it passes the cap, so a large body never
    sits in memory and never reaches JSON parsing.
    """

    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and int(declared) > self.max_bytes:  # the HTTP parser has checked it is a number
            await self._refuse(scope, receive, send)
            return
        received = 0
        started = False

        async def counted_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge
            return message

        async def tracked_send(message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, tracked_send)
        except BodyTooLarge:
            if started:
                raise
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope, receive, send) -> None:
        from ._protocol import ApiError

        message = f"The request body is over this server's limit of {self.max_bytes} bytes (start it with a higher --max-body-bytes)."
        await ApiError(413, message, code="request_too_large").response()(scope, receive, send)
