"""Run a service with uvicorn, configured for the chassis."""

from __future__ import annotations

from typing import Any

from tracseq_kit._exceptions import MissingDependencyError
from tracseq_kit.settings import ServiceSettings


def run_service(
    app: Any, *, settings: ServiceSettings | None = None, **uvicorn_options: Any
) -> None:
    """Serve ``app`` with uvicorn until SIGINT/SIGTERM, then shut down gracefully.

    Host, port and the graceful-shutdown bound come from ``settings`` (default: the
    settings ``create_service`` stored on ``app.state``). uvicorn's own log configuration
    and access log are turned off so every line goes through the kit's JSON logging;
    ``uvicorn_options`` override any of this. Raises ``MissingDependencyError`` (extra
    ``server``) if uvicorn is missing.
    """
    try:
        import uvicorn
    except ImportError:
        raise MissingDependencyError("uvicorn", extra="server", purpose="run_service") from None
    if settings is None:
        settings = getattr(getattr(app, "state", None), "settings", None) or ServiceSettings()
    options: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "log_config": None,
        "access_log": False,
        "server_header": False,
        "timeout_graceful_shutdown": settings.shutdown_timeout,
        **uvicorn_options,
    }
    uvicorn.run(app, **options)
