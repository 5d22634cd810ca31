"""`haldor enrol URL CODE`: a box joins its municipality in one step (issue 27).

The box makes its own keys here (the sealing key its schedules are sealed to, the device
secret its card hashes are keyed with), sends the fleet only the public half with the
one-time code, and writes what comes back: a complete ``haldor.toml``, the broker
password and CA beside it, so that ``haldor run`` starts without anything edited. A
refusal is one line (exit 2) and writes no configuration; a folder that holds one
already is never overwritten.
"""

from __future__ import annotations

import json
import os
import sys
import time
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from haldor import config
from haldor.access.sealing import public_text
from haldor.errors import EXIT_BAD_INPUT, EXIT_FAILURE
from haldor.store.secret import SECRET_NAME, device_secret, site_key
from haldor.texts import both

CONFIG_NAME = "haldor.toml"
PASSWORD_NAME = "mqtt-password"
CA_NAME = "ca.pem"
#: the fleet answers once the broker confirmed the login: a few seconds, more on a slow link
TIMEOUT_S = 60.0
LOOPBACK = ("127.0.0.1", "::1", "localhost")


def enrol(url: str, code: str, data: str, ca_file: str = "") -> int:
    """Enrol the box whose data folder is ``data``; the exit status."""
    folder = Path(data).absolute()
    target = folder / CONFIG_NAME
    if target.exists():
        return _refused(f"{target}: {both('enrol.data_enrolled')}")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return _refused(f"{url}: the fleet's address, e.g. https://fleet.kommune.dk")
    if parts.scheme == "http" and parts.hostname not in LOOPBACK:
        return _refused(f"{url}: https only (the code goes out and the broker password comes back); http on loopback only")
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = site_key(folder)  # made now if this box has none: only its public half leaves the box
    device_secret(folder / SECRET_NAME)
    answer = _ask(url.rstrip("/") + "/enrol", {"code": code, "sealing_key": public_text(key)}, ca_file)
    if isinstance(answer, int):
        return answer
    text = configuration(answer, folder)
    config.parse(tomllib.loads(text), str(target))  # a fault names its key before anything is written
    mqtt = answer["mqtt"]
    _write(folder / PASSWORD_NAME, mqtt["password"] + "\n")
    if mqtt.get("ca_pem"):
        _write(folder / CA_NAME, mqtt["ca_pem"])
    _write(target, text)  # last: a folder holds a configuration only once it is whole
    site = answer["site"]
    print(f"{both('enrol.done')}: {site['id']} ({site['name']}), broker {mqtt['host']}:{mqtt['port']}")
    print(f"haldor run --config {target}")
    return 0


def _refused(line: str) -> int:
    print(f"haldor enrol: {line}", file=sys.stderr)
    return EXIT_BAD_INPUT


def _ask(url: str, body: dict[str, str], ca_file: str) -> dict[str, Any] | int:
    """The fleet's answer, or the exit status of a refusal or failure (said in one line)."""
    import httpx  # only here: the agent never pays for it

    try:
        reply = httpx.post(url, json=body, timeout=TIMEOUT_S, verify=ca_file or True)
    except httpx.HTTPError as exc:
        print(f"haldor enrol: {url}: {both('enrol.unreachable')} ({exc})", file=sys.stderr)
        return EXIT_FAILURE
    try:
        doc = reply.json()
    except ValueError:
        doc = None
    if reply.status_code == 200 and isinstance(doc, dict):
        return doc
    message = doc.get("message") if isinstance(doc, dict) else None
    if reply.status_code in (403, 409) and message:
        return _refused(str(message))
    print(f"haldor enrol: {url}: {message or f'HTTP {reply.status_code}'}", file=sys.stderr)
    return EXIT_FAILURE


def configuration(answer: dict[str, Any], folder: Path) -> str:
    """The box's haldor.toml from the fleet's answer."""
    site, mqtt, trust = answer["site"], answer["mqtt"], answer["trust"]
    lines = [
        f"# Written by haldor enrol at {time.strftime('%Y-%m-%d %H:%M:%S %z')}: the fleet's register holds this box.",
        "# Its broker login ends when the fleet revokes it; enrol again with a new code after that.",
        "",
        "[site]",
        *_pairs({"id": site["id"], "name": site["name"], "timezone": site["timezone"], "data_dir": str(folder)}),
        "",
        "[mqtt]",
        *_pairs(
            {
                "host": mqtt["host"],
                "port": mqtt["port"],
                "tls": mqtt["tls"],
                "transport": mqtt.get("transport", "tcp"),
                **({"ca_file": str(folder / CA_NAME)} if mqtt.get("ca_pem") else {}),
                "username": mqtt["username"],
                "password_file": str(folder / PASSWORD_NAME),
                "topic_prefix": mqtt["topic_prefix"],
            }
        ),
        "",
        "[trust]",
        *_pairs({"require_signature": True, "keys": trust["keys"], "command_keys": trust.get("command_keys", {})}),
    ]
    for name, tables in (("doors", answer["doors"]), ("readers", answer["readers"])):
        for table in tables:
            if table.get("scbk_file") and not os.path.isabs(table["scbk_file"]):
                table = {**table, "scbk_file": str(folder / table["scbk_file"])}
            lines += ["", f"[[{name}]]", *_pairs(table)]
    return "\n".join(lines) + "\n"


def _pairs(values: dict[str, Any]) -> list[str]:
    return [f"{k} = {_value(v)}" for k, v in values.items()]


def _value(v: Any) -> str:
    """A TOML value: JSON's strings, numbers and booleans are TOML's too (but for DEL,
    which TOML wants escaped); a table inline."""
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{_value(str(k))} = {_value(x)}" for k, x in v.items()) + " }"
    return json.dumps(v, ensure_ascii=False).replace("\x7f", "\\u007f")


def _write(path: Path, text: str) -> None:
    """Whole or not at all, readable by the box's user only."""
    temporary = path.with_name(f".{path.name}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(temporary, path)
