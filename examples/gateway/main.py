"""The TracSeq gateway of this example as an ASGI app.

    python -m tracseq_kit.gateway --config examples/gateway/gateway.toml --port 8000

or, with an ASGI server of your choice (keep proxy headers off: the gateway is the edge)::

    uvicorn examples.gateway.main:app --port 8000 --loop uvloop --http httptools --no-proxy-headers
"""

from __future__ import annotations

from pathlib import Path

from tracseq_kit.gateway import Gateway

CONFIG = Path(__file__).with_name("gateway.toml")

app = Gateway.from_file(CONFIG)
