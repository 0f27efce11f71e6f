"""Who is using the operator page. Browsers cannot put an X-API-Key header on a link or an
<img>, so the operator signs in once with their key and gets a signed session in a cookie
scoped to /ui: HttpOnly (no script can read it), SameSite=Strict (no other site can make the
browser send it, so no other site can post a review). The key is checked exactly as the API
checks its header (`deps.get_principal`), so roles and development mode mean the same on both.

The cookie never holds the key: it holds which key signed in (a truncated sha256 of it) and
until when, signed with HMAC-SHA256. The signing secret is RETURNS_SESSION_SECRET or, without
one, derived from the configured keys, so every worker and replica with the same keys accepts
the same sessions, and a key removed from RETURNS_API_KEYS ends its sessions at once."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from urllib.parse import urlsplit

from fastapi import Request, Response

from inspection.service.deps import ServiceState, get_principal
from inspection.service.errors import Unauthorized
from inspection.service.settings import Principal

COOKIE = "returns_ui_session"
COOKIE_MAX_AGE = 12 * 3600  # one shift; the operator signs in again the next day
UI_ROLES = ("operator", "admin")


class SignInNeeded(Exception):
    """Answer with the sign-in page: `message` says why (None: just not signed in yet)."""

    def __init__(self, message: str | None, status: int):
        super().__init__(message or "sign in")
        self.message = message
        self.status = status


def principal_for_key(state: ServiceState, key: str | None) -> Principal:
    """The key's holder if they may work the queue; SignInNeeded (401/403) otherwise."""
    try:
        principal = get_principal(state, key or None)
    except Unauthorized as exc:
        if not state.principals:  # no keys and not in development mode: nobody can sign in
            raise SignInNeeded(exc.message, 401) from None
        raise SignInNeeded("Unknown API key." if key else None, 401) from None
    if principal.role not in UI_ROLES:
        msg = f"A {principal.role} key cannot work the review queue; sign in with an operator key."
        raise SignInNeeded(msg, 403)
    return principal


def session_secret(state: ServiceState) -> bytes:
    configured = state.settings.session_secret
    material = configured or "ui-session|" + "|".join(sorted(state.principals))
    return hashlib.sha256(material.encode()).digest()


def key_fingerprint(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def session_token(state: ServiceState, key: str, now: float | None = None) -> str:
    """`<fingerprint>.<expiry>.<signature>`: who signed in and until when, not the key."""
    expires = int((now or time.time()) + COOKIE_MAX_AGE)
    payload = f"{key_fingerprint(key)}.{expires}"
    return f"{payload}.{_sign(state, payload)}"


def _sign(state: ServiceState, payload: str) -> str:
    digest = hmac.new(session_secret(state), payload.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def key_for_session(state: ServiceState, token: str | None) -> str | None:
    """The configured key a valid, unexpired session stands for; None otherwise."""
    parts = (token or "").split(".")
    if len(parts) != 3 or not parts[1].isdigit():
        return None
    fingerprint, expires, signature = parts
    if not hmac.compare_digest(signature, _sign(state, f"{fingerprint}.{expires}")):
        return None
    if int(expires) < time.time():
        return None
    return next((key for key in state.principals if key_fingerprint(key) == fingerprint), None)


def signed_in(state: ServiceState, request: Request) -> Principal:
    token = request.cookies.get(COOKIE)
    key = key_for_session(state, token)
    if key is None and token and state.principals:
        raise SignInNeeded("Your session is no longer valid; sign in again.", 401)
    return principal_for_key(state, key)


def same_origin(request: Request) -> bool:
    """Defence in depth beside SameSite: a form post must come from this very site."""
    origin = request.headers.get("origin")
    if origin is None:  # not every client sends it on a same-origin post; SameSite still holds
        return True
    return urlsplit(origin).netloc == request.url.netloc


def safe_next(target: str, root: str) -> str:
    """Where to go after signing in: a page of this UI only (never another site)."""
    inside = target.startswith(root + "/") and not target.startswith(("//", root + "/login"))
    return target if inside and "\\" not in target else root + "/"


def remember_session(response: Response, token: str, root: str, secure: bool) -> None:
    response.set_cookie(COOKIE, token, max_age=COOKIE_MAX_AGE, path=root, httponly=True,
                        samesite="strict", secure=secure)


def forget_key(response: Response, root: str) -> None:
    response.delete_cookie(COOKIE, path=root, httponly=True, samesite="strict")
