"""uvicorn's httptools protocol, answering request-framing errors as problem+json.

uvicorn answers a request it cannot parse (an overflowing chunk size, a bad header line)
itself, with a plain-text 400, before the gateway sees it; and if the error comes while
a response is already being written, it writes that 400 into the middle of it. This
subclass answers the same 400 as ``application/problem+json`` (like every other error of
the gateway), and only closes the connection when a response has already started.
"""

from __future__ import annotations

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from tracseq_kit.asgi import problem_body

__all__ = ["ProblemHttpToolsProtocol"]


class ProblemHttpToolsProtocol(HttpToolsProtocol):
    """``uvicorn.run(app, http=ProblemHttpToolsProtocol)``: framing errors as problems."""

    def send_400_response(self, msg: str) -> None:
        """Answer 400 problem+json, or just close when a response already started."""
        cycle = self.cycle
        if cycle is not None and cycle.response_started:
            self.transport.close()
            return
        body = problem_body(400, detail=f"the request could not be parsed: {msg}")
        head = [b"HTTP/1.1 400 Bad Request\r\n"]
        for name, value in self.server_state.default_headers:
            head += (name, b": ", value, b"\r\n")
        head += (
            b"content-type: application/problem+json\r\n",
            b"content-length: %d\r\n" % len(body),
            b"connection: close\r\n\r\n",
        )
        self.transport.write(b"".join(head) + body)
        self.transport.close()
