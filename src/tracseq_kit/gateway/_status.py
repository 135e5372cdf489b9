"""The ``/status`` HTML page: services, instances, states and request rates."""

from __future__ import annotations

from collections.abc import Mapping
from html import escape
from typing import Any, Protocol

__all__ = ["render_status"]

_STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem;color:#222}
table{border-collapse:collapse;margin-bottom:1.5rem}
th,td{border:1px solid #ccc;padding:.3rem .6rem;text-align:left}
.healthy,.up{color:#176f2c}.degraded,.ejected{color:#a66300}.unhealthy,.down{color:#b00020}
"""


class _PoolStateLike(Protocol):
    pool: Any
    guard: Any


def render_status(
    pools: Mapping[str, _PoolStateLike],
    totals: Mapping[str, int],
    rates: Mapping[str, float],
    *,
    now: float,
    refresh_ms: int = 2000,
) -> str:
    """Render the status page; it refreshes its tables in place every ``refresh_ms``.

    The refresh fetches the page again and swaps the ``#content`` element (no
    navigation, no flicker); without JavaScript a meta refresh reloads every 5 s.
    """
    rows = []
    for name, state in sorted(pools.items()):
        pool = state.pool
        pstate = pool.state()
        breaker = getattr(state.guard, "state", None)
        breaker = getattr(breaker, "value", breaker)  # BreakerState -> "closed"
        breaker_txt = escape(str(breaker)) if breaker is not None else "none"
        for inst in pool.instances:
            if not inst.healthy:
                istate = "down"
            elif not inst.available(now):
                istate = "ejected"
            else:
                istate = "up"
            rows.append(
                f"<tr data-service='{escape(name)}'><td>{escape(name)}</td>"
                f"<td class='{pstate}'>{pstate}</td><td>{breaker_txt}</td>"
                f"<td>{escape(inst.address)}</td><td class='{istate}'>{istate}</td>"
                f"<td>{inst.outstanding}</td><td>{inst.requests}</td><td>{inst.failures}</td></tr>"
            )
        if not pool.instances:
            rows.append(
                f"<tr data-service='{escape(name)}'><td>{escape(name)}</td>"
                f"<td class='unhealthy'>unhealthy</td><td>{breaker_txt}</td>"
                "<td colspan='5'>no instances</td></tr>"
            )
    route_rows = [
        f"<tr><td>{escape(r)}</td><td>{totals[r]}</td><td>{rates.get(r, 0.0):.1f}</td></tr>"
        for r in sorted(totals)
    ]
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        "<noscript><meta http-equiv='refresh' content='5'></noscript>"
        "<title>TracSeq gateway status</title>"
        f"<style>{_STYLE}</style></head><body><h1>TracSeq gateway</h1>"
        "<div id='content'><h2>Services</h2><table id='services'><tr><th>service</th><th>state</th>"
        "<th>breaker</th><th>instance</th><th>instance state</th><th>in flight</th>"
        "<th>requests</th><th>failures</th></tr>"
        + "".join(rows)
        + "</table><h2>Routes</h2><table id='routes'><tr><th>route</th><th>requests</th>"
        "<th>req/s</th></tr>"
        + "".join(route_rows)
        + "</table></div>"
        + _SCRIPT.replace("REFRESH_MS", str(int(refresh_ms)))
        + "</body></html>"
    )


_SCRIPT = """<script>
setInterval(async () => {
  try {
    const r = await fetch(location.href, {cache: "no-store"});
    const doc = new DOMParser().parseFromString(await r.text(), "text/html");
    document.getElementById("content").replaceWith(doc.getElementById("content"));
    document.body.dataset.refreshes = String(Number(document.body.dataset.refreshes || 0) + 1);
  } catch (e) { /* keep the last view; try again on the next tick */ }
}, REFRESH_MS);
</script>"""
