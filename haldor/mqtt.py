"""MQTT as every part of Haldor speaks it (agent, tools, fleet): paho-mqtt 2.x clients
on MQTT 5, TLS, credentials and websockets from one set of options."""

from __future__ import annotations

import logging
import socket
import ssl
import uuid
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from haldor.errors import ConfigError
from haldor.protocol import TOPIC_PREFIX

log = logging.getLogger(__name__)


def make_client(client_id: str, *, transport: Literal["tcp", "websockets", "unix"] = "tcp") -> mqtt.Client:
    return mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5, transport=transport, manual_ack=True
    )


def set_nodelay(sock: Any) -> None:
    """Nagle's algorithm holds small packets for 40-90 ms on a quiet link: off."""
    raw = getattr(sock, "_socket", sock)  # paho's websocket wrapper keeps the socket inside
    try:
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except (OSError, AttributeError) as exc:
        log.debug("TCP_NODELAY not set: %s", exc)


class ClientSettings(Protocol):
    """What a client's connection takes: the ``[mqtt]`` section or :class:`BrokerOptions`."""

    @property
    def tls(self) -> bool: ...
    @property
    def ca_file(self) -> str: ...
    @property
    def cert_file(self) -> str: ...
    @property
    def key_file(self) -> str: ...
    @property
    def username(self) -> str: ...
    @property
    def password_file(self) -> str: ...
    @property
    def transport(self) -> str: ...


def configure_client(client: mqtt.Client, m: ClientSettings, path: str) -> None:
    """TLS, credentials and websockets from the ``[mqtt]`` section."""
    if m.tls:
        try:
            client.tls_set(
                ca_certs=m.ca_file or None,
                certfile=m.cert_file or None,
                keyfile=m.key_file or None,
                cert_reqs=ssl.CERT_REQUIRED,
            )
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"{path}: mqtt.ca_file/cert_file/key_file: {exc}") from None
    if m.username:
        password = None
        if m.password_file:
            try:
                with open(m.password_file, encoding="utf-8") as f:
                    password = f.read().strip()
            except OSError as exc:
                raise ConfigError(f"{path}: mqtt.password_file: {exc.strerror}: {m.password_file}") from None
        client.username_pw_set(m.username, password)
    if m.transport == "websockets":
        client.ws_set_options(path="/mqtt")


@dataclass
class BrokerOptions:
    host: str
    port: int = 1883
    tls: bool = False
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    username: str = ""
    password_file: str = ""
    transport: Literal["tcp", "websockets", "unix"] = "tcp"
    prefix: str = TOPIC_PREFIX

    @classmethod
    def parse(cls, broker: str | None, cfg=None, **overrides: Any) -> BrokerOptions:
        """``--broker host[:port]``, else the ``[mqtt]`` section of the configuration."""
        if broker:
            host, _, port = broker.rpartition(":") if ":" in broker else (broker, "", "")
            if port and not (port.isdigit() and 0 < int(port) < 65536):
                raise ConfigError(f"--broker: {broker!r}: the port must be 1-65535")
            opts = cls(host=host or broker, port=int(port) if port else (8883 if overrides.get("tls") else 1883))
        elif cfg is not None and cfg.mqtt.host:
            m = cfg.mqtt
            opts = cls(
                host=m.host,
                port=m.port,
                tls=m.tls,
                ca_file=m.ca_file,
                cert_file=m.cert_file,
                key_file=m.key_file,
                username=m.username,
                password_file=m.password_file,
                transport=m.transport,
                prefix=m.topic_prefix,
            )
        else:
            raise ConfigError("--broker: no broker given and none configured ([mqtt] host)")
        for name, value in overrides.items():
            if value not in (None, "", False):
                setattr(opts, name, value)
        return opts

    def client(self, name: str, client_id: str | None = None) -> mqtt.Client:
        client = make_client(client_id or f"haldor-{name}-{uuid.uuid4().hex[:8]}", transport=self.transport)
        client.manual_ack_set(False)
        configure_client(client, self, "--broker")
        client.on_socket_open = lambda c, userdata, sock: set_nodelay(sock)
        return client
