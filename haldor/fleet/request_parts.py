"""Small pieces every handler of the fleet's page uses: a request's headers as the
sessions and login limits read them, the peer's address, a plain-text answer."""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import PlainTextResponse


class RequestHeaders:
    """``get`` and ``get_all``, as sessions.py and login_limits.py ask a message's headers."""

    def __init__(self, headers: Headers) -> None:
        self._headers = headers

    def get(self, name: str, default: str | None = None) -> str | None:
        return self._headers.get(name, default)

    def get_all(self, name: str) -> list[str]:
        return self._headers.getlist(name)


def peer(request: Request) -> str:
    """The address the connection came from (never a header's word: uvicorn's proxy headers are off)."""
    return request.client.host if request.client is not None else ""


def plain(status: int, text: str, headers: dict[str, str] | None = None) -> PlainTextResponse:
    return PlainTextResponse(text, status_code=status, headers=headers)


def words(status: int, text: str) -> PlainTextResponse:
    """A refusal a person reads: one line, in the page's language, never the input echoed at length."""
    return plain(status, f"{text[:300]}\n")
