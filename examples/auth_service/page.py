"""The device page: one self-contained HTML document (inline style, no script, nothing
loaded from elsewhere), every value escaped. Its headers forbid framing (no clickjacking),
caching and referrers, and let the form post only to this service."""

from __future__ import annotations

import html
from string import Template

__all__ = ["HEADERS", "render"]

HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

_PAGE = Template("""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>TracSeq: $title</title>
<style>
  body { font: 16px/1.5 system-ui, sans-serif; max-width: 28rem; margin: 3rem auto;
         padding: 0 1rem; color: #1b1f23; }
  h1 { font-size: 1.4rem; }
  label { display: block; margin-top: 1rem; font-weight: 600; }
  input { width: 100%; box-sizing: border-box; padding: .5rem; font-size: 1rem;
          border: 1px solid #8a939c; border-radius: 4px; }
  input[name=user_code] { font-family: monospace; letter-spacing: .15em;
                          text-transform: uppercase; }
  .buttons { margin-top: 1.5rem; display: flex; gap: .75rem; }
  button { padding: .55rem 1.2rem; font-size: 1rem; border-radius: 4px;
           border: 1px solid #1f6feb; background: #1f6feb; color: #fff; }
  button[value=deny] { background: #fff; color: #b42318; border-color: #b42318; }
  .message { padding: .75rem 1rem; border-radius: 4px; margin: 1rem 0; }
  .error { background: #fdecea; color: #8a1c12; }
  .ok { background: #e7f5ec; color: #14532d; }
  .asks { background: #f3f4f6; padding: .75rem 1rem; border-radius: 4px; }
  code { font-family: monospace; }
</style>
</head>
<body>
<h1>$title</h1>
$message
$body
</body>
</html>
""")

_FORM = Template("""$asks
<form method="post" action="device" autocomplete="off">
  <label for="user_code">Code shown in your terminal</label>
  <input id="user_code" name="user_code" value="$user_code" required maxlength="32"
         placeholder="XXXX-XXXX" autocapitalize="characters" spellcheck="false">
  <label for="username">Username</label>
  <input id="username" name="username" value="$username" required maxlength="64"
         autocomplete="username" autocapitalize="none" spellcheck="false">
  <label for="password">Password</label>
  <input id="password" name="password" type="password" required maxlength="256"
         autocomplete="current-password">
  <div class="buttons">
    <button type="submit" name="action" value="approve">Approve</button>
    <button type="submit" name="action" value="deny">Deny</button>
  </div>
</form>
<p>Only approve a login you started yourself, on a device you trust.</p>
""")


def render(
    *,
    title: str = "Log in a device",
    message: str | None = None,
    ok: bool = False,
    form: bool = True,
    user_code: str = "",
    username: str = "",
    asks: tuple[str, str] | None = None,
) -> str:
    """The page: ``message`` (an error unless ``ok``), the form when ``form`` (prefilled
    with ``user_code`` and ``username``) and, when ``asks`` is ``(client_id, scopes)``,
    what the login asks for."""
    shown = ""
    if message:
        shown = f'<p class="message {"ok" if ok else "error"}">{html.escape(message)}</p>'
    body = ""
    if form:
        asks_html = ""
        if asks is not None:
            client, scopes = (html.escape(part) for part in asks)
            asks_html = (
                f'<p class="asks"><code>{client}</code> asks to act for you with: '
                f"<code>{scopes}</code></p>"
            )
        body = _FORM.substitute(
            asks=asks_html,
            user_code=html.escape(user_code, quote=True),
            username=html.escape(username, quote=True),
        )
    return _PAGE.substitute(title=html.escape(title), message=shown, body=body)
