"""Who is using the operator page. Browsers cannot put an X-API-Key header on a link or an
<img>, so the operator signs in once with their key and it rides in a cookie scoped to /ui:
HttpOnly (no script can read it), SameSite=Strict (no other site can make the browser send it,
so no other site can post a review). The key is checked exactly as the API checks its header
(`deps.get_principal`), so roles and development mode mean the same on both."""

from __future__ import annotations

from urllib.parse import urlsplit

from fastapi import Request, Response

from inspection.service.deps import ServiceState, get_principal
from inspection.service.errors import Unauthorized
from inspection.service.settings import Principal

COOKIE = "returns_ui_key"
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


def signed_in(state: ServiceState, request: Request) -> Principal:
    try:
        return principal_for_key(state, request.cookies.get(COOKIE))
    except SignInNeeded as exc:
        if exc.status == 401 and COOKIE in request.cookies and state.principals:
            raise SignInNeeded("That key is no longer valid; sign in again.", 401) from None
        raise


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


def remember_key(response: Response, key: str, root: str, secure: bool) -> None:
    response.set_cookie(COOKIE, key, max_age=COOKIE_MAX_AGE, path=root, httponly=True,
                        samesite="strict", secure=secure)


def forget_key(response: Response, root: str) -> None:
    response.delete_cookie(COOKIE, path=root, httponly=True, samesite="strict")
