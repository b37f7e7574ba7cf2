"""An OpenAI-compatible server (`/v1/chat/completions`, `/v1/models`) over any spillover model."""

from __future__ import annotations

import contextlib
import signal
import socket
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from ._limits import RequestLimits

if TYPE_CHECKING:
    from ._app import create_app
    from ._batcher import ServerStats

__all__ = ["RequestLimits", "ServerStats", "create_app", "serve", "serve_in_thread"]


def __getattr__(name: str):
    # FastAPI takes seconds to import; the CLI imports this package for RequestLimits' defaults only.
    if name == "create_app":
        from ._app import create_app

        return create_app
    if name == "ServerStats":
        from ._batcher import ServerStats

        return ServerStats
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def serve(
    spec: str,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    served_name: str | None = None,
    max_batch: int = 8,
    max_tokens_limit: int = 1024,
    limits: RequestLimits | None = None,
    chat_template: str | None = None,
) -> None:
    """Load `spec` and serve it until interrupted. Binds to loopback unless `host` says otherwise."""
    import uvicorn

    from spillover.models import load

    from ._app import create_app

    lm = load(spec, chat_template=chat_template)
    app = create_app(lm, served_name or spec, max_tokens_limit, max_batch=max_batch, limits=limits)

    class Server(uvicorn.Server):
        """Shuts down gracefully on Ctrl-C, as uvicorn does, then reports it like every other command (exit 130)."""

        interrupted = False

        def handle_exit(self, sig, frame) -> None:
            self.interrupted = self.interrupted or sig == signal.SIGINT
            super().handle_exit(sig, frame)

    server = Server(uvicorn.Config(app, host=host, port=port, log_level="info"))
    server.run()
    if server.interrupted:
        raise KeyboardInterrupt


@contextlib.contextmanager
def serve_in_thread(app, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Run `app` with uvicorn in a background thread; yields its base URL (`http://host:port/v1`).

    Port 0 picks a free port. The socket is bound before the thread starts, so there is no race.
    """
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError("the server thread exited before it started; see its log above")
            time.sleep(0.01)
        yield f"http://{host}:{sock.getsockname()[1]}/v1"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
