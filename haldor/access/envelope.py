"""The signed envelope of PROTOCOL 2: ``{"doc": "<json text>", "kid": ..., "sig": ...}``,
or, sealed to the site, ``{"sealed": "<base64>", "kid": ..., "sig": ...}`` (the signature
over the sealed text, so a forged payload is refused before anything is decrypted)."""

from __future__ import annotations

import base64
import binascii
import io
import json
from collections.abc import Mapping
from typing import Any, BinaryIO, Protocol

from nacl.exceptions import BadSignatureError
from nacl.public import PrivateKey, PublicKey
from nacl.signing import VerifyKey

from haldor.errors import DocumentError, SignatureError
from haldor.records import record

from .public_keys import load_public_key as load_public_key  # where the tools have always found it
from .schedule_stream import head
from .sealing import open_sealed, seal_to

#: Larger payloads are refused before parsing (a 100,000-credential snapshot is about 25
#: MB, 300,000 about 76 MB; sealed, its base64 is a third larger). A snapshot is read
#: item by item, so what it costs beyond its own bytes does not grow with it.
MAX_DOCUMENT_BYTES = 160 * 1024 * 1024


class SigningKey(Protocol):
    """An Ed25519 private key as the booking system's side holds it (cryptography's)."""

    def sign(self, data: bytes) -> bytes: ...


def _verify_key(key: Any) -> VerifyKey:
    """A trusted key as given: its 32 bytes (the configuration's, :func:`load_public_key`),
    PyNaCl's, or cryptography's Ed25519PublicKey (the tools' and tests')."""
    if isinstance(key, VerifyKey):
        return key
    return VerifyKey(key if isinstance(key, bytes) else key.public_bytes_raw())


def open_envelope(
    payload: bytes | str,
    keys: Mapping[str, Any],
    require_signature: bool,
    *,
    max_bytes: int | None = None,
    site_key: PrivateKey | None = None,
    plain: bool = True,
) -> Any:
    """The verified document inside an envelope, as parsed JSON.

    Without ``require_signature`` a bare document, or an envelope without ``sig``, is
    accepted too (development and the demo only). A sealed envelope is opened with
    ``site_key``; without ``plain`` (a site that takes schedules sealed only) a document
    in clear is refused.
    """
    opened = open_document(payload, keys, require_signature, max_bytes=max_bytes, site_key=site_key, plain=plain)
    return opened.parsed()


@record
class Opened:
    """A verified document: its JSON text (a str, or the file it is in) to be read as it is
    parsed, or, when it was parsed already to find out what it is, the parsed value."""

    text: str | BinaryIO | None
    value: Any = None
    #: what a parse error names: the bare payload or the envelope's doc
    what: str = "doc"

    def source(self) -> str | BinaryIO | None:
        """The text from its start (a file is read again from the beginning)."""
        if self.text is not None and not isinstance(self.text, str):
            self.text.seek(0)
        return self.text

    def parsed(self) -> Any:
        text = self.source()
        if text is None:
            return self.value
        return _json(text if isinstance(text, str) else text.read(), self.what)


def open_document(
    payload: bytes | str | BinaryIO,
    keys: Mapping[str, Any],
    require_signature: bool,
    *,
    max_bytes: int | None = None,
    site_key: PrivateKey | None = None,
    plain: bool = True,
) -> Opened:
    """As :func:`open_envelope`, without parsing the document inside when it need not be:
    a bare document (its header read, not its arrays; from a file, not even read into
    memory) or the envelope's ``doc`` text."""
    limit = MAX_DOCUMENT_BYTES if max_bytes is None else max_bytes
    if not isinstance(payload, (bytes, str)):  # a file (`haldor schedule load`)
        size = payload.seek(0, io.SEEK_END)
        if size > limit:
            raise DocumentError(f"payload too large ({size} bytes, at most {limit})")
        payload.seek(0)
        if _bare(head(payload)):
            if require_signature:
                raise SignatureError("unsigned document (no envelope) while signatures are required")
            return Opened(payload, what="payload")
        payload.seek(0)
        payload = payload.read()
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    if len(payload) > limit:
        raise DocumentError(f"payload too large ({len(payload)} bytes, at most {limit})")
    try:
        text: str | None = payload.decode("utf-8")
    except UnicodeDecodeError:
        text = None  # parsed below, as JSON's own detection of the encoding takes it
    if text is not None and _bare(head(text)):
        if require_signature:
            raise SignatureError("unsigned document (no envelope) while signatures are required")
        return Opened(text, what="payload")
    outer = _json(payload, "payload")
    sealed = isinstance(outer, dict) and "sealed" in outer and "doc" not in outer
    if not (isinstance(outer, dict) and ("doc" in outer or sealed)):
        if require_signature:
            raise SignatureError("unsigned document (no envelope) while signatures are required")
        return Opened(None, outer)
    inner = outer["sealed" if sealed else "doc"]
    if not isinstance(inner, str):
        raise DocumentError("sealed: expected base64 text" if sealed else "doc: expected the document as a JSON text")
    if not sealed and not plain and require_signature:  # development boxes take anything
        raise DocumentError("a document in clear: this site takes schedules sealed to its key only ([trust] plain_documents)")
    sig = outer.get("sig")
    if sig is None:
        if require_signature:
            raise SignatureError("envelope has no sig while signatures are required")
        return Opened(_opened(inner, sealed, site_key))
    check_signature(outer, keys)
    return Opened(_opened(inner, sealed, site_key))


def _bare(first: dict[str, Any] | None) -> bool:
    """A document, not an envelope (its header says so before any array)."""
    return first is not None and "schema" in first and "doc" not in first and "sealed" not in first


def check_signature(outer: Mapping[str, Any], keys: Mapping[str, Any]) -> None:
    """The envelope's ``sig`` verifies over its ``doc`` or ``sealed`` text with the key
    its ``kid`` names (a sealed document's signature is checked without opening it)."""
    text = outer.get("sealed") if "doc" not in outer else outer.get("doc")
    kid, sig = outer.get("kid"), outer.get("sig")
    if not isinstance(kid, str) or kid not in keys:
        raise SignatureError(f"kid: unknown key {kid!r}")
    if not isinstance(sig, str) or not isinstance(text, str):
        raise SignatureError(f"signature does not verify with key {kid!r}")
    try:
        _verify_key(keys[kid]).verify(text.encode("utf-8"), base64.b64decode(sig, validate=True))
    except (BadSignatureError, binascii.Error, ValueError, TypeError):
        raise SignatureError(f"signature does not verify with key {kid!r}") from None


def _opened(text: str, sealed: bool, site_key: PrivateKey | None) -> str:
    if sealed:
        if site_key is None:
            raise DocumentError("sealed: this box has no site key to open it with")
        text = open_sealed(site_key, text)
    return text


def seal(document: Any, kid: str, private_key: SigningKey, *, to: PublicKey | None = None) -> dict[str, str]:
    """The envelope for ``document``, signed, and sealed to a site's key when ``to`` is
    given (the booking system's side; used by tools, the bridge and tests)."""
    text = document if isinstance(document, str) else json.dumps(document, ensure_ascii=False, separators=(",", ":"))
    field = "doc"
    if to is not None:
        text, field = seal_to(to, text), "sealed"
    sig = private_key.sign(text.encode("utf-8"))
    return {field: text, "kid": kid, "sig": base64.b64encode(sig).decode("ascii")}


def _json(data: bytes | str, what: str) -> Any:
    """Parsed JSON. Nesting is bounded by the parser itself: past the interpreter's
    recursion limit it raises RecursionError, which becomes a rejection like any other
    parse failure (the validators never recurse into what they do not know)."""
    try:
        return json.loads(data)
    except RecursionError:
        raise DocumentError(f"{what}: nested too deeply") from None
    except (ValueError, TypeError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise DocumentError(f"{what}: not valid JSON ({exc})") from None
