"""The integrator's commands: `haldor keygen`, `sign`, `publish`, `command`, `watch` and `ca`.
The command line parses; what each option means is decided here."""

from __future__ import annotations

import getpass
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from haldor import config
from haldor.errors import EXIT_FAILURE, DocumentError
from haldor.mqtt import BrokerOptions

from . import broker_client, documents

#: `haldor command`: nothing came back in time (the box may be offline)
EXIT_NO_ANSWER = 3

Load = Callable[[Any], config.Config]


def keygen(args: Any, load: Load) -> int:
    if args.site:
        from haldor.access import sealing
        from haldor.agent.site import site_key

        cfg = load(args)
        text = sealing.public_text(site_key(cfg))
        print(f"site {cfg.site_id}: seal its schedules to {text}")
        print(f'for the bridge\'s [[sites]] table:  id = "{cfg.site_id}"  public_key = "{text}"')
        print(f"for haldor publish:  --seal-to {text}")
        return 0
    private, public, text = documents.keygen(args.kid, Path(args.dir))
    print(f"private key: {private} (keep it where it signs: the booking system, or the fleet for commands; mode 0600)")
    print(f"public key:  {public}")
    print(f'for the agents\' [trust] section, a key that signs schedules:  keys = {{ "{args.kid}" = "{text}" }}')
    print(f'                              or one that signs commands:  command_keys = {{ "{args.kid}" = "{text}" }}')
    print(f'for the agents\' [update] section, a key that signs releases:  release_keys = {{ "{args.kid}" = "{text}" }}')
    return 0


def sign(args: Any) -> int:
    print(json.dumps(documents.sign(args.key, documents.read_document(args.file), args.kid), ensure_ascii=False))
    return 0


def broker_options(args: Any, load: Load) -> BrokerOptions:
    cfg = None
    if not args.broker:
        cfg = load(args)
    return BrokerOptions.parse(
        args.broker,
        cfg,
        tls=args.tls,
        ca_file=args.ca_file,
        cert_file=args.cert_file,
        key_file=args.key_file,
        username=args.username,
        password_file=args.password_file,
        transport="websockets" if args.websockets else None,
        prefix=args.prefix,
    )


def _verify_keys(args: Any, load: Load) -> dict:
    """The public keys to check a signature with: ``--verify-with``, else the trusted keys
    of a configuration that was named or exists (an integrator's machine may have none)."""
    if args.verify_with:
        return documents.public_keys(args.verify_with)
    if args.config or Path(config.default_path()).exists():
        return dict(load(args).trusted_keys)
    return {}


def publish(args: Any, load: Load) -> int:
    try:
        inner, payload = documents.outgoing(
            documents.read_document(args.file),
            key=args.key,
            kid=args.kid,
            verify=_verify_keys(args, load),
            unsigned=args.unsigned,
            site=args.site,
            seal_to=args.seal_to,
            verify_required=True,
        )
        topic = broker_client.publish(broker_options(args, load), inner, payload, older=args.older)
    except DocumentError as exc:
        text = str(exc).removeprefix(f"{args.file}: ")
        raise DocumentError(f"{args.file}: {text}; nothing published") from None
    print(f"{args.file}: published to {topic}")
    return 0


def command(args: Any, load: Load) -> int:
    if not 0 < args.wait <= 3600:
        raise DocumentError("--wait: more than 0 and at most 3600 seconds")
    if not 0 < args.valid <= 24 * 3600:
        raise DocumentError("--valid: more than 0 and at most 86400 seconds (a day): a command is for now")
    doc = documents.new_command(
        args.site,
        args.action,
        door=args.door,
        duration_s=args.duration,
        reason=args.reason,
        by=args.by or getpass.getuser(),
        valid_s=args.valid,
    )
    if args.action == "update":
        from .releases import update_fields

        doc |= update_fields(args.manifest, args.url)
    elif args.manifest or args.url:
        raise DocumentError("--manifest and --url: only the update action takes them")
    _, payload = documents.outgoing(doc, key=args.key, kid=args.kid, verify=_verify_keys(args, load))
    result = broker_client.command(broker_options(args, load), doc, payload, wait=args.wait)
    if result is None:
        print(
            f"haldor: no answer from {args.site} within {args.wait:g} s: the box may be offline. "
            f"It carries the command out if it gets it before {doc['expires_at']} (command {doc['id']})",
            file=sys.stderr,
        )
        return EXIT_NO_ANSWER
    print(json.dumps(result, ensure_ascii=False))
    if not result.get("ok"):
        print(f"haldor: {args.site} refused {args.action}: {result.get('error')}", file=sys.stderr)
        return EXIT_FAILURE
    return 0


def watch(args: Any, load: Load) -> int:
    return broker_client.watch(broker_options(args, load), args.site, count=args.count)


def ca(args: Any) -> int:
    """`haldor ca init|broker-cert|client-cert|request`: the files, and the lines that use them."""
    from . import ca as authority  # cryptography's X.509: loaded only for `haldor ca`

    directory = Path(args.dir)
    if args.ca_command == "init":
        key, cert = authority.init(directory, args.name)
        print(f"CA key:         {key} (mode 0600: it signs every certificate; keep it on this machine, backed up offline)")
        print(f"CA certificate: {cert} (for the broker's cafile and every client's ca_file)")
        print(f"next: haldor ca broker-cert HOST --dir {directory}, and haldor ca client-cert NAME --dir {directory} per login")
    elif args.ca_command == "broker-cert":
        key, cert = authority.broker_cert(directory, args.host, args.ip)
        print(f"broker key: {key} (mode 0600), certificate: {cert}, for {', '.join([args.host, *args.ip])}")
        print(f"on the broker:  install -d -m 750 -o root -g mosquitto {MOSQUITTO_CERTS}")
        print(
            f"                install -m 640 -o root -g mosquitto {directory / authority.CA_CERT} {cert} {key} {MOSQUITTO_CERTS}/"
        )
        print("in each TLS listener of haldor.conf (config/mosquitto/):")
        for option, path in (("cafile", authority.CA_CERT), ("certfile", cert.name), ("keyfile", key.name)):
            print(f"{option} {MOSQUITTO_CERTS}/{path}")
    elif args.ca_command == "client-cert":
        _client_cert(authority, directory, args)
    else:
        key, csr = authority.request(directory, args.name)
        print(f"{args.name}: key {key} (mode 0600: it stays on this machine), request {csr} (no secret in it)")
        print(f"at the CA:  haldor ca client-cert {args.name} --csr {csr.name}")
        print(f"then put the {args.name}.pem it makes, and the CA's ca.pem, beside the key")
    return 0


#: where the printed lines put the files: the broker's, and a box's (README "Installing on a Raspberry Pi")
MOSQUITTO_CERTS, BOX_ETC = "/etc/mosquitto/certs", "/etc/haldor"


def _client_cert(authority: Any, directory: Path, args: Any) -> None:
    csr = Path(args.csr) if args.csr else None
    key, cert = authority.client_cert(directory, args.name, csr)
    made = f"key {key} (mode 0600), " if key is not None else ""
    print(f"{args.name}: {made}certificate {cert}; its CN {args.name} is its MQTT user name (use_identity_as_username)")
    files = f"{directory / authority.CA_CERT} {cert}" + (f" {key}" if key is not None else "")
    print(f"to a box:  install -m 640 -o root -g haldor {files} {BOX_ETC}/   (the fleet, the bridge: where their user reads)")
    print("its [mqtt] section:")
    print("tls = true")
    for option, name in (("ca_file", authority.CA_CERT), ("cert_file", cert.name), ("key_file", f"{args.name}.key")):
        print(f'{option} = "{BOX_ETC}/{name}"')
    print(f"or on the command line:  --tls --ca-file ca.pem --cert-file {cert.name} --key-file {args.name}.key")
