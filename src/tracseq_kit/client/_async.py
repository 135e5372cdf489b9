"""The async client, for services and async code (same surface as the blocking one)."""

from __future__ import annotations

import builtins
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from datetime import datetime
from typing import Any, Generic, TypeVar

import anyio
import httpx
from httpx_sse import EventSource, SSEError

from tracseq_kit._exceptions import APIConnectionError, APIError
from tracseq_kit.client import _calls as C
from tracseq_kit.client._base import (
    NOT_GIVEN,
    BaseClient,
    Call,
    NotGiven,
    Progress,
    _AsyncUpload,
    parse,
    parse_sse,
)
from tracseq_kit.events import CloudEvent
from tracseq_kit.resilience import CircuitBreaker, Retry, remaining
from tracseq_kit.schemas import (
    EventAccepted,
    FieldDefinition,
    HealthStatus,
    ReplayJob,
    StoredEvent,
    SubmissionReport,
    Template,
    TemplateCategory,
    TemplateCreate,
    TemplateStatus,
    TemplateUpdate,
    TypeCount,
)

__all__ = ["AsyncPager", "AsyncTracSeqClient"]

T = TypeVar("T")


class AsyncPager(Generic[T]):
    """A lazy, auto-paginating async iterator over a listing (``async for``).

    Call :meth:`pages` for whole pages. Nothing is fetched until you iterate; each
    iteration starts again from the first page.
    """

    def __init__(
        self, fetch: Callable[[str | None], Awaitable[tuple[list[T], str | None]]]
    ) -> None:
        self._fetch = fetch

    async def pages(self) -> AsyncIterator[list[T]]:
        """Yield one list of items per page until the last page."""
        cursor: str | None = None
        while True:
            items, cursor = await self._fetch(cursor)
            yield items
            if cursor is None:
                return

    async def __aiter__(self) -> AsyncIterator[T]:
        async for page in self.pages():
            for item in page:
                yield item

    async def first(self, n: int) -> list[T]:
        """The first ``n`` items (fetching only the pages needed)."""
        out: list[T] = []
        async for item in self:
            if len(out) >= n:
                break
            out.append(item)
        return out


class AsyncTracSeqClient(BaseClient):
    """The TracSeq API from async code; the twin of :class:`TracSeqClient`.

    ``base_url`` defaults to ``$TRACSEQ_BASE_URL``, else the local gateway
    (``http://127.0.0.1:8000``); ``token`` to ``$TRACSEQ_API_TOKEN`` (sent as a bearer
    token). ``timeout`` bounds each attempt; ``deadline`` bounds a whole call including
    retries and travels to the server in ``X-Request-Deadline-Ms``. ``retry`` (a
    :class:`~tracseq_kit.resilience.Retry`, default :func:`default_retry`; None
    disables) retries connection errors, timeouts, 408, 429 and 5xx, honouring
    ``Retry-After``. ``breaker=True`` (one breaker per base URL, shared by every client
    of the process, sync or async) or a local
    :class:`~tracseq_kit.resilience.CircuitBreaker` fails fast while the server keeps
    failing. ``transport`` replaces httpx's (e.g. ``httpx.MockTransport`` in tests).

    A deadline set with :func:`tracseq_kit.resilience.deadline` around a call also
    bounds it. Use it as an async context manager, or call :meth:`aclose`. Raises
    :class:`~tracseq_kit.ConfigurationError` for bad options; calls raise the
    :class:`~tracseq_kit.APIError` family.
    """

    _http: httpx.AsyncClient
    _upload = _AsyncUpload

    def __init__(
        self,
        base_url: str | None = None,
        *,
        token: str | None = None,
        timeout: float = 30.0,
        deadline: float | None = None,
        retry: Retry | NotGiven | None = NOT_GIVEN,
        breaker: CircuitBreaker | bool = False,
        headers: Mapping[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._options = self._resolve(
            base_url,
            token=token,
            timeout=timeout,
            retry=retry,
            breaker=breaker,
            deadline=deadline,
            headers=headers,
        )
        self._bind(httpx.AsyncClient(transport=transport), owns_http=True)

    def _bind(self, http: httpx.AsyncClient, *, owns_http: bool) -> None:
        self._headers = self._default_headers()
        self._http = http
        self._owns_http = owns_http
        self.templates = Templates(self)
        self.events = Events(self)

    async def aclose(self) -> None:
        """Close the connections (a client from :meth:`with_options` leaves them open)."""
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> AsyncTracSeqClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def health(self) -> HealthStatus:
        """``GET /health``: the gateway's (or service's) report; never raises for 503."""
        response = await self._send(C.health())
        return C.health_status(response.content, response.status_code)

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        write: bool | None = None,
    ) -> httpx.Response:
        """Any call, with the client's auth, retries and errors; returns the raw response.

        ``write`` (default: true for methods other than GET/HEAD) sends an
        ``Idempotency-Key``; with ``write=False`` a POST or PATCH is retried only when it
        certainly did not reach the server. Raises the :class:`~tracseq_kit.APIError` family for
        error statuses, like the typed methods.
        """
        call = C.raw(
            method, path, params=params, json=json, content=content, headers=headers, write=write
        )
        return await self._send(call)

    # ------------------------------------------------------------------ plumbing

    async def _run(self, call: Call, parser: Callable[[bytes], T]) -> T:
        return parse(parser, await self._send(call))

    async def _send(self, call: Call, *, stream: bool = False) -> httpx.Response:
        options = self._options
        key = self._key_for(call)
        left = remaining()
        deadline_at = self._deadline_at(None if left is None else time.monotonic() + left)
        retry = options.retry
        started = retry.begin() if retry is not None else 0.0
        attempt = 1
        while True:
            self._check_deadline(deadline_at, attempt, call)
            try:
                return await self._attempt(call, key, deadline_at, stream)
            except APIError as exc:
                delay = self._retry_delay(exc, call, attempt, started, deadline_at)
                if delay is None or retry is None:
                    raise
            attempt += 1
            await retry.sleep(delay)

    async def _attempt(
        self, call: Call, key: str | None, deadline_at: float | None, stream: bool
    ) -> httpx.Response:
        breaker = self._options.breaker
        permit = await breaker.admit() if breaker is not None else None
        request = self._http.build_request(**self._build(call, key, deadline_at))
        error: APIError | None = None
        try:
            try:
                response = await self._http.send(request, stream=stream)
            except httpx.TransportError as exc:
                raise self._transport_error(exc, request) from exc
            if response.status_code >= 400 and response.status_code not in call.accept_status:
                if stream:
                    await response.aread()
                raise self._status_error(response)
            return response
        except APIError as exc:
            error = exc
            raise
        except BaseException:
            if breaker is not None and permit is not None:
                await breaker.release(permit)
                permit = None
            raise
        finally:
            if breaker is not None and permit is not None:
                await breaker.record(permit, ok=not self._counts_against_breaker(error))


class Templates:
    """``client.templates``: the template service's API."""

    def __init__(self, client: AsyncTracSeqClient) -> None:
        self._c = client

    def list(
        self,
        *,
        status: TemplateStatus | str | None = None,
        category: TemplateCategory | str | None = None,
        tag: str | None = None,
        q: str | None = None,
        page_size: int = 50,
    ) -> AsyncPager[Template]:
        """Templates, newest first, filtered; a lazy iterator over every page.

        Raises :class:`~tracseq_kit.ConfigurationError` at once for a bad ``page_size``.
        """
        first = C.list_templates(
            status=status, category=category, tag=tag, q=q, page_size=page_size, cursor=None
        )

        async def fetch(cursor: str | None) -> tuple[builtins.list[Template], str | None]:
            page = await self._c._run(C.page(first, cursor), C.TEMPLATE_PAGE)
            return page.items, page.next_cursor

        return AsyncPager(fetch)

    async def get(self, template_id: str, *, version: int | None = None) -> Template:
        """The template (its current draft or state), or one published ``version``."""
        return await self._c._run(C.get_template(template_id, version), C.TEMPLATE)

    async def create(self, template: TemplateCreate | Mapping[str, Any]) -> Template:
        """Create a draft template."""
        return await self._c._run(C.create_template(template), C.TEMPLATE)

    async def update(
        self, template_id: str, changes: TemplateUpdate | Mapping[str, Any]
    ) -> Template:
        """Change a template; a published one gets the draft of its next version."""
        return await self._c._run(C.update_template(template_id, changes), C.TEMPLATE)

    async def add_field(
        self, template_id: str, field: FieldDefinition | Mapping[str, Any]
    ) -> Template:
        """Append a field (ConfigurationError if one of that name exists)."""
        return await self._c._run(C.with_field(await self.get(template_id), field), C.TEMPLATE)

    async def update_field(self, template_id: str, name: str, **changes: Any) -> Template:
        """Change one field's attributes, e.g. ``update_field(id, "volume", required=True)``."""
        return await self._c._run(
            C.with_field_changed(await self.get(template_id), name, changes), C.TEMPLATE
        )

    async def publish(self, template_id: str) -> Template:
        """Publish: freeze the definition as the next numbered version."""
        return await self._c._run(C.template_action(template_id, "publish"), C.TEMPLATE)

    async def archive(self, template_id: str) -> Template:
        """Archive: still readable, no longer offered."""
        return await self._c._run(C.template_action(template_id, "archive"), C.TEMPLATE)

    async def deprecate(self, template_id: str) -> Template:
        """Deprecate a published template: still readable, no longer advised."""
        return await self._c._run(C.template_action(template_id, "deprecate"), C.TEMPLATE)

    async def clone(self, template_id: str) -> Template:
        """A new draft copied from the template."""
        return await self._c._run(C.template_action(template_id, "clone"), C.TEMPLATE)

    async def versions(self, template_id: str) -> builtins.list[Template]:
        """Every published version, oldest first."""
        return await self._c._run(C.list_versions(template_id), C.TEMPLATES)

    async def validate_submission(
        self,
        template_id: str,
        sheet: C.SheetInput | None = None,
        *,
        rows: Iterable[Mapping[str, Any]] | None = None,
        version: int | None = None,
        include_rows: bool = True,
        progress: Progress | None = None,
    ) -> SubmissionReport:
        """Validate a sample sheet (path, bytes, binary file, or ``rows`` of dicts).

        Checks against ``version`` or the latest published version. Every problem is in
        the report; only an unreadable sheet (422) or one over the limits (413) raises.
        ``progress(sent, total)`` follows the upload (bytes), on every attempt.
        """
        call = C.validate_submission(
            template_id,
            sheet,
            rows,
            version=version,
            include_rows=include_rows,
            progress=progress,
        )
        return await self._c._run(call, C.REPORT)


class Events:
    """``client.events``: the event service's API."""

    def __init__(self, client: AsyncTracSeqClient) -> None:
        self._c = client

    def query(
        self,
        *,
        type: str | None = None,
        source: str | None = None,
        subject: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        page_size: int = 100,
    ) -> AsyncPager[StoredEvent]:
        """Stored events, newest first; ``type`` may end in ``*`` (a prefix)."""
        first = C.query_events(
            type=type,
            source=source,
            subject=subject,
            since=since,
            until=until,
            page_size=page_size,
            cursor=None,
        )

        async def fetch(cursor: str | None) -> tuple[builtins.list[StoredEvent], str | None]:
            page = await self._c._run(C.page(first, cursor), C.EVENT_PAGE)
            return page.items, page.next_cursor

        return AsyncPager(fetch)

    async def get(self, event_id: str) -> StoredEvent:
        """One stored event by its CloudEvent id."""
        return await self._c._run(C.get_event(event_id), C.EVENT)

    async def publish(
        self,
        event: CloudEvent[Any] | None = None,
        *,
        type: str | None = None,
        source: str | None = None,
        data: Any = None,
        subject: str | None = None,
    ) -> EventAccepted:
        """Publish a CloudEvent (or one built from ``type``/``source``/``data``)."""
        call = C.publish_event(event, type=type, source=source, data=data, subject=subject)
        return await self._c._run(call, C.ACCEPTED)

    async def stats(self, *, window: float = 3600) -> list[TypeCount]:
        """Counts by type and source over the last ``window`` seconds."""
        return await self._c._run(C.event_stats(window), C.STATS)

    async def replay(
        self,
        target_topic: str,
        *,
        type: str | None = None,
        source: str | None = None,
        subject: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        wait: bool = False,
        progress: Progress | None = None,
        poll_interval: float = 0.5,
    ) -> ReplayJob:
        """Re-publish matching stored events to ``target_topic`` as a background job.

        With ``wait=True`` returns once the job finished or failed, calling
        ``progress(done, total)`` as it advances. A topic name Kafka would refuse raises
        :class:`~tracseq_kit.ConfigurationError` before anything is sent.
        """
        call = C.start_replay(
            target_topic, type=type, source=source, subject=subject, since=since, until=until
        )
        job = await self._c._run(call, C.JOB)
        while wait and job.status == "running":
            if progress is not None:
                progress(job.done, job.total)
            await anyio.sleep(poll_interval)
            job = await self.replay_status(job.id)
        if progress is not None:
            progress(job.done, job.total)
        return job

    async def replay_status(self, job_id: str) -> ReplayJob:
        """A replay job's progress."""
        return await self._c._run(C.get_replay(job_id), C.JOB)

    async def tail(
        self,
        *,
        type: str | None = None,
        source: str | None = None,
        subject: str | None = None,
        last_event_id: str | None = None,
        reconnect: bool = True,
    ) -> AsyncIterator[StoredEvent]:
        """Events as they are stored (Server-Sent Events), forever (``async for``).

        Starts after ``last_event_id`` (a ``seq``), else with new events. When the
        stream breaks it reconnects (``reconnect=True``) from the last event seen, so
        nothing is skipped or repeated. Stop by breaking out of the loop.
        """
        position = last_event_id
        failures = 0
        while True:
            call = C.tail_events(type=type, source=source, subject=subject, last_event_id=position)
            try:
                response = await self._c._send(call, stream=True)
                try:
                    async for sse in EventSource(response).aiter_sse():
                        if not sse.data:
                            continue
                        event = parse_sse(C.EVENT, sse.data, response)
                        position = sse.id or str(event.seq)
                        failures = 0
                        yield event
                finally:
                    await response.aclose()
            except (httpx.TransportError, SSEError, APIConnectionError) as exc:
                if not reconnect:
                    raise APIConnectionError(f"event stream broke: {exc}") from exc
            if not reconnect:
                return
            failures += 1
            await anyio.sleep(min(5.0, 0.1 * 2**failures))
