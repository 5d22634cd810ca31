"""The municipality's own certificate authority (`haldor ca`): the broker's certificate and
one client certificate per MQTT login, so a trial runs on TLS from the first minute without
openssl. ECDSA P-256 keys and random serials; the CA valid 10 years, what it signs 3 (no
browser sees these, so the 398-day rule of public CAs does not apply; a renewal every
three years is one visit). A client certificate's CN is its MQTT user name
(Mosquitto's ``use_identity_as_username``). The agent never imports this module:
cryptography's X.509 belongs to the municipality's machine (tests/test_lean.py)."""

from __future__ import annotations

import datetime
import ipaddress
import os
import re
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from haldor.errors import DocumentError, HaldorError
from haldor.protocol import IDENTIFIER, IDENTIFIER_TEXT

CA_KEY, CA_CERT = "ca.key", "ca.pem"
BROKER = "broker"  # broker.key and broker.pem, as config/mosquitto/haldor.conf names them
CA_DAYS, LEAF_DAYS = 3652, 1096
#: a certificate is valid from a little before it was made: a box's clock may lag a minute
BACKDATE = datetime.timedelta(minutes=5)
_DNS = re.compile(r"(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*")


def _name(common_name: str, organisation: str = "") -> x509.Name:
    parts = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organisation:
        parts.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation))
    return x509.Name(parts)


def _write_new(path: Path, data: bytes, mode: int) -> None:
    """Write a file that must not exist yet (O_EXCL: never over a key or certificate)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(path, mode)  # whatever the umask said
    except FileExistsError:
        raise HaldorError(f"{path}: exists; not overwritten (move it aside to make a new one)") from None
    except OSError as exc:
        raise HaldorError(f"{exc.filename or path}: cannot write: {exc.strerror}") from None


def _refuse_existing(*paths: Path) -> None:
    """Check every file first, so that a refusal leaves nothing half-made behind."""
    for path in paths:
        if path.exists():
            raise HaldorError(f"{path}: exists; not overwritten (move it aside to make a new one)")


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def init(directory: Path, name: str) -> tuple[Path, Path]:
    """``ca.key`` (mode 0600) and ``ca.pem``, a self-signed CA for 10 years; never over an old one."""
    if name != name.strip() or len(name) > 54:
        raise DocumentError(f"--name: {name!r}: at most 54 characters, no spaces around (the municipality's name)")
    key_path, cert_path = directory / CA_KEY, directory / CA_CERT
    for path in (key_path, cert_path):
        if path.exists():
            raise HaldorError(f"{path}: a CA is here already; not overwritten (a new one means new certificates for all)")
    key = ec.generate_private_key(ec.SECP256R1())
    subject = _name(f"{name} Haldor CA" if name else "Haldor CA", name)
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + datetime.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_usage(cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _mkdir(directory)
    _write_new(key_path, _key_pem(key), 0o600)
    _write_new(cert_path, _cert_pem(cert), 0o644)
    return key_path, cert_path


def _mkdir(directory: Path) -> None:
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise HaldorError(f"{directory}: cannot make the folder: {exc.strerror}") from None


def _usage(*, cert_sign: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not cert_sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _load_ca(directory: Path) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key_path, cert_path = directory / CA_KEY, directory / CA_CERT
    try:
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    except FileNotFoundError as exc:
        raise HaldorError(f"{exc.filename}: no CA here (haldor ca init --dir {directory} makes one)") from None
    except OSError as exc:
        raise HaldorError(f"{exc.filename}: cannot read: {exc.strerror}") from None
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise DocumentError(f"{directory}: {CA_KEY} or {CA_CERT} is not a CA haldor ca init made") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.public_key() != cert.public_key():
        raise DocumentError(f"{key_path}: not the key of {cert_path}")
    return key, cert


def _sign_leaf(
    directory: Path, subject: x509.Name, public_key: ec.EllipticCurvePublicKey, purpose: x509.ObjectIdentifier, sans: list
) -> x509.Certificate:
    ca_key, ca_cert = _load_ca(directory)
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(min(now + datetime.timedelta(days=LEAF_DAYS), ca_cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_usage(), critical=True)
        .add_extension(x509.ExtendedKeyUsage([purpose]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(ca_key, hashes.SHA256())


def _san(text: str, option: str) -> x509.GeneralName:
    """An IP address or a DNS name, as a TLS client compares it with the host it dialled."""
    try:
        return x509.IPAddress(ipaddress.ip_address(text))
    except ValueError:
        pass
    if option == "--ip":
        raise DocumentError(f"--ip: {text!r} is not an IP address")
    if not _DNS.fullmatch(text):
        raise DocumentError(f"{option}: {text!r} is neither a DNS name nor an IP address")
    return x509.DNSName(text.lower())


def broker_cert(directory: Path, host: str, ips: list[str]) -> tuple[Path, Path]:
    """``broker.key`` and ``broker.pem`` for HOST (and each ``--ip``), for serverAuth."""
    sans = [_san(host, "HOST")] + [_san(ip, "--ip") for ip in ips]
    key_path, cert_path = directory / f"{BROKER}.key", directory / f"{BROKER}.pem"
    _refuse_existing(key_path, cert_path)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _sign_leaf(directory, _name(host), key.public_key(), ExtendedKeyUsageOID.SERVER_AUTH, list(dict.fromkeys(sans)))
    _write_new(key_path, _key_pem(key), 0o600)
    _write_new(cert_path, _cert_pem(cert), 0o644)
    return key_path, cert_path


def _client_name(name: str) -> str:
    if not IDENTIFIER.fullmatch(name) or name.startswith("."):
        raise DocumentError(f"NAME: {name!r} is not an MQTT user name for Haldor ({IDENTIFIER_TEXT})")
    return name


def request(directory: Path, name: str) -> tuple[Path, Path]:
    """On a box: ``NAME.key`` (mode 0600, it never leaves) and ``NAME.csr`` for the CA to sign."""
    key_path, csr_path = directory / f"{_client_name(name)}.key", directory / f"{name}.csr"
    _refuse_existing(key_path, csr_path)
    key = ec.generate_private_key(ec.SECP256R1())
    csr = x509.CertificateSigningRequestBuilder().subject_name(_name(name)).sign(key, hashes.SHA256())
    _mkdir(directory)
    _write_new(key_path, _key_pem(key), 0o600)
    _write_new(csr_path, csr.public_bytes(serialization.Encoding.PEM), 0o644)
    return key_path, csr_path


def _read_csr(path: Path, name: str) -> ec.EllipticCurvePublicKey:
    """The public key of a request made for NAME: signed by its own key, P-256, CN = NAME."""
    try:
        csr = x509.load_pem_x509_csr(path.read_bytes())
    except OSError as exc:
        raise HaldorError(f"{path}: cannot read: {exc.strerror}") from None
    except ValueError:
        raise DocumentError(f"{path}: not a PEM certificate request (haldor ca request NAME makes one)") from None
    if not csr.is_signature_valid:
        raise DocumentError(f"{path}: its signature does not verify")
    key = csr.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise DocumentError(f"{path}: not an ECDSA P-256 key (haldor ca request NAME makes one)")
    asked = [a.value for a in csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    if asked != [name]:
        raise DocumentError(f"{path}: made for {', '.join(map(str, asked)) or 'no name'}, not {name}")
    return key


def client_cert(directory: Path, name: str, csr: Path | None = None) -> tuple[Path | None, Path]:
    """``NAME.pem`` for clientAuth with CN = NAME, and ``NAME.key`` unless a CSR brought the key."""
    key_path, cert_path = directory / f"{_client_name(name)}.key", directory / f"{name}.pem"
    if csr is not None:
        public_key = _read_csr(csr, name)
        _refuse_existing(cert_path)
        cert = _sign_leaf(directory, _name(name), public_key, ExtendedKeyUsageOID.CLIENT_AUTH, [])
        _write_new(cert_path, _cert_pem(cert), 0o644)
        return None, cert_path
    _refuse_existing(key_path, cert_path)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _sign_leaf(directory, _name(name), key.public_key(), ExtendedKeyUsageOID.CLIENT_AUTH, [])
    _write_new(key_path, _key_pem(key), 0o600)
    _write_new(cert_path, _cert_pem(cert), 0o644)
    return key_path, cert_path
