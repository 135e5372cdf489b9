"""Command line entry point: serve a gateway config with uvicorn (uvloop + httptools)."""

from __future__ import annotations

import argparse
import logging
import sys

from tracseq_kit._exceptions import ConfigurationError

__all__ = ["main"]


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, load the config (exit 2 with the error on a bad file), serve."""
    parser = argparse.ArgumentParser(prog="python -m tracseq_kit.gateway")
    parser.add_argument("--config", required=True, help="TOML or YAML gateway config")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper())

    import uvicorn

    from tracseq_kit.gateway._app import Gateway

    try:
        app = Gateway.from_file(args.config)
    except ConfigurationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="httptools",
        log_level=args.log_level,
        access_log=False,
        lifespan="on",
        # the gateway is the edge: never let clients set the peer address via X-Forwarded-For
        proxy_headers=False,
        # pass the upstream's Date and Server through instead of duplicating them
        server_header=False,
        date_header=False,
    )
