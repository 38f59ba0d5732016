"""A throwaway PKI made with `cryptography`: a CA, a server certificate for localhost and
127.0.0.1, and client certificates, written as PEM files into a test's directory."""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True, slots=True)
class Certificate:
    cert: Path
    key: Path


@dataclass(frozen=True, slots=True)
class Pki:
    ca: Path
    server: Certificate
    client: Certificate
    # Signed by another CA: must be refused where only `ca` is trusted.
    stranger: Certificate
    # That other CA: a client trusting only it must refuse our server.
    other_ca: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _sign(subject, issuer, public_key, signing_key, *, ca=False, usage=None, sans=()):
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
    if usage:
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    return builder.sign(signing_key, hashes.SHA256())


def _ca(directory: Path, name: str):
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _sign(_name(name), _name(name), key.public_key(), key, ca=True)
    path = directory / f"{name}.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key, cert, path


def _issue(directory: Path, name: str, ca_key, ca_cert, usage, sans=()) -> Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _sign(_name(name), ca_cert.subject, key.public_key(), ca_key, usage=usage, sans=sans)
    cert_path, key_path = directory / f"{name}.crt", directory / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return Certificate(cert_path, key_path)


def make_pki(directory: Path, client_name: str = "receiver-1") -> Pki:
    """Server certificate for localhost/127.0.0.1; the client's CN is `client_name`."""
    ca_key, ca_cert, ca_path = _ca(directory, "test-ca")
    sans = (x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    server = _issue(directory, "server", ca_key, ca_cert, ExtendedKeyUsageOID.SERVER_AUTH, sans)
    client = _issue(directory, client_name, ca_key, ca_cert, ExtendedKeyUsageOID.CLIENT_AUTH)
    other_key, other_cert, other_path = _ca(directory, "other-ca")
    stranger = _issue(directory, "stranger", other_key, other_cert, ExtendedKeyUsageOID.CLIENT_AUTH)
    return Pki(ca_path, server, client, stranger, other_path)
