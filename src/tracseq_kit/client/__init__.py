"""The typed client of the TracSeq APIs, for scripts, notebooks and services.

- :class:`TracSeqClient` (blocking) and :class:`AsyncTracSeqClient` (async): the same
  surface, ``client.templates``, ``client.events`` and ``client.health()``, returning the
  models of :mod:`tracseq_kit.schemas`
- :class:`Pager` / :class:`AsyncPager`: lazy, auto-paginating listings
- :func:`default_retry`: the retry policy clients use unless given another
- :class:`FastTransport`: the gateway's pooled HTTP/1.1 client as an httpx transport

Configuration comes from arguments or the environment (``TRACSEQ_BASE_URL``,
``TRACSEQ_API_TOKEN``). Errors are the :class:`~tracseq_kit.APIError` family of the
kit's error tree (``NotFoundError``, ``UnprocessableEntityError``, ...), each carrying
the HTTP status, the request id and the server's problem document.
"""

from tracseq_kit.client._async import AsyncPager, AsyncTracSeqClient
from tracseq_kit.client._base import NOT_GIVEN, default_retry
from tracseq_kit.client._sync import Pager, TracSeqClient
from tracseq_kit.client._transport import FastTransport

__all__ = [
    "NOT_GIVEN",
    "AsyncPager",
    "AsyncTracSeqClient",
    "FastTransport",
    "Pager",
    "TracSeqClient",
    "default_retry",
]
