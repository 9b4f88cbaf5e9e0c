"""GOST's default TLS certificate, built with the ``cryptography`` package.

When a wss/mwss listener has no certificate files, GOST serves a freshly
generated self-signed certificate (go-gost/x ``generateKeyPair``): ECDSA P-256
key, Subject ``O=GOST, CN=gost.run``, DNS SAN = the CN, ``CA:TRUE``, key usage
digitalSignature + keyCertSign, extended key usage clientAuth + serverAuth (in
that order), one year of validity from now, a 128-bit random serial, signed
with ecdsa-with-SHA256, and a Subject Key Identifier (Go adds one to every CA).
The key is PKCS#8 PEM (``PRIVATE KEY``, what Go's ``x509.MarshalPKCS8PrivateKey``
writes and what ``ssl.load_cert_chain`` reads).

Why ``cryptography``: the project never hand-writes cryptography. Key
generation, ECDSA signing and X.509/DER encoding are done by a vetted,
maintained library on OpenSSL's constant-time P-256, not by our code. One
difference from Go stays, and does not matter to TLS: names are UTF8String
where Go writes PrintableString when the text fits (both are valid
DirectoryString choices; verifiers compare names canonically).

The certificate is not meant to be trusted: GOST clients do not verify it
unless told to.
"""

from __future__ import annotations

import datetime as _dt
import ipaddress
import secrets

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["DEFAULT_VALIDITY", "generate", "generate_signed", "fingerprint_sha256"]

DEFAULT_VALIDITY = 365 * 86400


def generate(
    common_name: str = "gost.run",
    organization: str = "GOST",
    validity: float = DEFAULT_VALIDITY,
) -> tuple[bytes, bytes]:
    """A self-signed CA certificate like GOST's default; returns ``(cert_pem, key_pem)``.

    ``validity`` is in seconds from now. The DNS SAN is the common name, as in GOST.
    """
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name(common_name, organization)
    cert = _build(
        subject=name,
        issuer=name,
        public=key.public_key(),
        signer=key,
        is_ca=True,
        sans=[common_name] if common_name else [],
        validity=validity,
        authority_key_id=None,  # Go leaves it out of self-signed certificates
    )
    return _cert_pem(cert), _key_pem(key)


def generate_signed(
    ca_cert_pem: bytes,
    ca_key_pem: bytes,
    common_name: str = "gost.run",
    organization: str = "GOST",
    validity: float = DEFAULT_VALIDITY,
    *,
    sans: list[str] | None = None,
    is_ca: bool = False,
) -> tuple[bytes, bytes]:
    """A certificate signed by the CA (e.g. one made by ``generate``); returns ``(cert_pem, key_pem)``.

    Used to build client and server certificates for tests of verification.
    The CA key may be PKCS#8 or SEC 1 (``EC PRIVATE KEY``) PEM, and must be
    the CA certificate's key. ``sans`` defaults to ``[common_name]``; entries
    that parse as IP addresses become iPAddress names, the rest dNSName.
    """
    ca = x509.load_pem_x509_certificate(_data(ca_cert_pem))
    ca_key = serialization.load_pem_private_key(_data(ca_key_pem), password=None)
    if ca_key.public_key() != ca.public_key():
        raise ValueError("generate_signed: the CA key does not belong to the CA certificate")
    try:
        ca_skid = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    except x509.ExtensionNotFound:
        ca_skid = None
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _build(
        subject=_name(common_name, organization),
        issuer=ca.subject,
        public=key.public_key(),
        signer=ca_key,
        is_ca=is_ca,
        sans=list(sans) if sans is not None else ([common_name] if common_name else []),
        validity=validity,
        authority_key_id=ca_skid,
    )
    return _cert_pem(cert), _key_pem(key)


def fingerprint_sha256(cert_pem: bytes | str) -> str:
    """SHA-256 over the DER certificate as ``"AB:CD:..."`` (openssl's and browsers' format)."""
    digest = x509.load_pem_x509_certificate(_data(cert_pem)).fingerprint(hashes.SHA256())
    return ":".join(f"{b:02X}" for b in digest)


# --------------------------------------------------------------------------- internals
def _data(pem: bytes | str) -> bytes:
    return pem.encode("ascii") if isinstance(pem, str) else pem


def _name(common_name: str, organization: str) -> x509.Name:
    """Subject Name in Go's attribute order (O before CN); empty parts are left out."""
    attrs = []
    if organization:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    if common_name:
        attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attrs)


def _general_name(entry: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(entry))
    except ValueError:
        return x509.DNSName(entry)


def _build(
    *,
    subject: x509.Name,
    issuer: x509.Name,
    public: ec.EllipticCurvePublicKey,
    signer: CertificateIssuerPrivateKeyTypes,
    is_ca: bool,
    sans: list[str],
    validity: float,
    authority_key_id: x509.SubjectKeyIdentifier | None,
) -> x509.Certificate:
    """A signed X.509 v3 certificate with GOST's (Go's) extensions, in Go's order."""
    if validity <= 0:
        raise ValueError("validity must be positive (seconds)")
    # whole seconds, as DER times hold them, so the lifetime is exactly ``validity``
    not_before = _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public)
        .serial_number(secrets.randbelow((1 << 128) - 1) + 1)  # 128 random bits, never 0
        .not_valid_before(not_before)
        .not_valid_after(not_before + _dt.timedelta(seconds=int(validity)))
        .add_extension(_key_usage(is_ca), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
        # RFC 5280 method 1 (SHA-1 of the key bits), as Go does: lets chain
        # builders (and strict verifiers) match issuer and subject keys
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
    )
    if authority_key_id is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(authority_key_id),
            critical=False,
        )
    if sans:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([_general_name(s) for s in sans]), critical=False
        )
    return builder.sign(signer, _hash_for(signer))


def _key_usage(is_ca: bool) -> x509.KeyUsage:
    """digitalSignature, plus keyCertSign for a CA (GOST's default certificate is one)."""
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=is_ca,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


def _hash_for(signer: CertificateIssuerPrivateKeyTypes) -> hashes.SHA256 | None:
    """SHA-256 (ecdsa-with-SHA256, sha256WithRSA); EdDSA keys sign without a separate hash."""
    if isinstance(signer, ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey):
        return None
    return hashes.SHA256()


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
