"""CSRF protection for the page's POST forms (pure, no Airflow).

The Airflow UI authenticates the browser with the ``_token`` cookie (httponly, SameSite=Lax), so a
form POST from another site would not carry it -- and on top of that every state-changing POST
must (1) come from our own origin (``Origin`` / ``Sec-Fetch-Site`` headers, sent by every current
browser) and (2) carry a form token that only our page can know: an HMAC of the user's identity
under the API server's secret key.  A request that authenticates with an ``Authorization: Bearer``
header is not exposed to CSRF (browsers never add that header by themselves) and needs neither.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from urllib.parse import urlsplit

FORM_FIELD = "csrf_token"


def form_token(secret: str | bytes, user_key: str) -> str:
    key = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(key, f"deployteq-salesforce-ui:{user_key}".encode(), hashlib.sha256).hexdigest()


def token_matches(secret: str | bytes, user_key: str, submitted: str | None) -> bool:
    return bool(submitted) and hmac.compare_digest(form_token(secret, user_key), str(submitted))


def cross_origin_reason(headers: Mapping[str, str], *, host: str | None) -> str | None:
    """Why this request does not look same-origin, or None when it does (or the browser said nothing)."""
    fetch_site = (headers.get("sec-fetch-site") or "").lower()
    if fetch_site and fetch_site not in ("same-origin", "none"):
        return f"request came from another site (Sec-Fetch-Site: {fetch_site})"
    origin = headers.get("origin")
    if origin and origin != "null":
        origin_host = urlsplit(origin).netloc
        if host and origin_host.lower() != host.lower():
            return f"request came from another origin ({origin})"
    return None
