"""GOST's default certificate: its fields as X.509 parsers see them.

The fields are read three ways: cryptography's x509 parser, the ssl module's
decoder, and (where installed; CI installs it) the openssl binary. Real TLS
handshakes with these certificates (verified by CA file and name, client
certificates from ``generate_signed``) are in test_tls_contexts.py.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import ssl
import subprocess
import time

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, SignatureAlgorithmOID

from gostfast.tlsutil import selfsigned


@pytest.fixture(scope="module")
def openssl() -> str:
    found = shutil.which("openssl")
    if not found:
        if os.environ.get("CI") == "true":
            pytest.fail("the openssl binary is not installed (.ci/run installs Debian's openssl)")
        pytest.skip("the openssl binary is not installed (apt-get install openssl)")
    return found


def _run(openssl: str, *args: str) -> str:
    out = subprocess.run([openssl, *args], capture_output=True, text=True, timeout=20, check=False)
    assert out.returncode == 0, out.stderr
    return out.stdout


def _decoded(tmp_path, cert_pem: bytes) -> dict:
    """The certificate as the ssl module decodes it."""
    path = tmp_path / "decode.pem"
    path.write_bytes(cert_pem)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cafile=str(path))
    (cert,) = ctx.get_ca_certs()
    return cert


def _x509(cert_pem: bytes) -> x509.Certificate:
    return x509.load_pem_x509_certificate(cert_pem)


def _ext(cert: x509.Certificate, cls: type) -> x509.Extension:
    return cert.extensions.get_extension_for_class(cls)


@pytest.fixture(scope="module")
def pair() -> tuple[bytes, bytes]:
    return selfsigned.generate()


def test_pem_shapes_and_loads_into_ssl_context(tmp_path, pair):
    cert, key = pair
    assert cert.startswith(b"-----BEGIN CERTIFICATE-----\n")
    assert key.startswith(b"-----BEGIN PRIVATE KEY-----\n")  # PKCS#8, as Go writes it
    (tmp_path / "c.pem").write_bytes(cert)
    (tmp_path / "k.pem").write_bytes(key)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(tmp_path / "c.pem"), str(tmp_path / "k.pem"))  # also checks key == cert


def test_gost_fields_as_cryptography_parses_them(pair):
    """GOST's generateKeyPair (go-gost/x): every field and extension, in Go's order."""
    cert = _x509(pair[0])
    assert cert.version is x509.Version.v3
    assert cert.subject.rfc4514_string() == "CN=gost.run,O=GOST"  # RFC 4514 lists it reversed
    assert [a.oid for a in cert.subject] == [NameOID.ORGANIZATION_NAME, NameOID.COMMON_NAME]
    assert cert.issuer == cert.subject
    assert 0 < cert.serial_number < 1 << 128
    assert cert.signature_algorithm_oid == SignatureAlgorithmOID.ECDSA_WITH_SHA256
    pub = cert.public_key()
    assert isinstance(pub, ec.EllipticCurvePublicKey) and pub.curve.name == "secp256r1"
    # (validity times: test_fields_as_the_ssl_module_sees_them)

    assert [e.oid for e in cert.extensions] == [
        x509.ExtensionOID.KEY_USAGE,
        x509.ExtensionOID.EXTENDED_KEY_USAGE,
        x509.ExtensionOID.BASIC_CONSTRAINTS,
        x509.ExtensionOID.SUBJECT_KEY_IDENTIFIER,
        x509.ExtensionOID.SUBJECT_ALTERNATIVE_NAME,
    ]  # no Authority Key Identifier: Go leaves it out of self-signed certificates
    ku = _ext(cert, x509.KeyUsage)
    assert ku.critical
    assert ku.value.digital_signature and ku.value.key_cert_sign
    assert not any(
        (ku.value.content_commitment, ku.value.key_encipherment, ku.value.data_encipherment)
    )
    assert not (ku.value.key_agreement or ku.value.crl_sign)
    eku = _ext(cert, x509.ExtendedKeyUsage)
    assert not eku.critical
    assert list(eku.value) == [ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH]
    bc = _ext(cert, x509.BasicConstraints)
    assert bc.critical and bc.value.ca and bc.value.path_length is None
    skid = _ext(cert, x509.SubjectKeyIdentifier)
    assert skid.value == x509.SubjectKeyIdentifier.from_public_key(pub)
    san = _ext(cert, x509.SubjectAlternativeName)
    assert not san.critical
    assert list(san.value) == [x509.DNSName("gost.run")]
    cert.verify_directly_issued_by(cert)  # raises unless the self-signature holds


def test_key_is_the_certificates_pkcs8_p256_key(pair):
    key = serialization.load_pem_private_key(pair[1], password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1"
    assert key.public_key() == _x509(pair[0]).public_key()


def test_fields_as_the_ssl_module_sees_them(tmp_path, pair):
    cert = _decoded(tmp_path, pair[0])
    assert cert["subject"] == ((("organizationName", "GOST"),), (("commonName", "gost.run"),))
    assert cert["issuer"] == cert["subject"]
    assert cert["subjectAltName"] == (("DNS", "gost.run"),)
    assert cert["version"] == 3
    lifetime = ssl.cert_time_to_seconds(cert["notAfter"]) - ssl.cert_time_to_seconds(
        cert["notBefore"]
    )
    assert lifetime == 365 * 86400
    assert abs(ssl.cert_time_to_seconds(cert["notBefore"]) - time.time()) < 120


def test_overrides(tmp_path):
    cert, _ = selfsigned.generate(
        common_name="tunnel.example", organization="Acme Ltd", validity=3600
    )
    d = _decoded(tmp_path, cert)
    assert d["subject"] == (
        (("organizationName", "Acme Ltd"),),
        (("commonName", "tunnel.example"),),
    )
    assert d["subjectAltName"] == (("DNS", "tunnel.example"),)
    lifetime = ssl.cert_time_to_seconds(d["notAfter"]) - ssl.cert_time_to_seconds(d["notBefore"])
    assert lifetime == 3600


def test_non_ascii_organization(tmp_path):
    cert, _ = selfsigned.generate(organization="Société Générale")
    assert _decoded(tmp_path, cert)["subject"][0] == (("organizationName", "Société Générale"),)


def test_openssl_text_shows_gost_defaults(tmp_path, pair, openssl):
    (tmp_path / "c.pem").write_bytes(pair[0])
    text = _run(openssl, "x509", "-noout", "-text", "-in", str(tmp_path / "c.pem"))
    assert "Subject: O = GOST, CN = gost.run" in text
    assert "Issuer: O = GOST, CN = gost.run" in text
    assert "DNS:gost.run" in text
    assert "CA:TRUE" in text
    assert "Digital Signature, Certificate Sign" in text
    assert "TLS Web Client Authentication, TLS Web Server Authentication" in text
    assert "Signature Algorithm: ecdsa-with-SHA256" in text
    assert "prime256v1" in text or "P-256" in text
    assert "Version: 3 (0x2)" in text


def test_openssl_verifies_the_signature(tmp_path, pair, openssl):
    (tmp_path / "c.pem").write_bytes(pair[0])
    c = str(tmp_path / "c.pem")
    assert _run(openssl, "verify", "-CAfile", c, c).strip() == f"{c}: OK"
    assert _run(openssl, "verify", "-x509_strict", "-CAfile", c, c).strip() == f"{c}: OK"


def test_openssl_reads_the_key(tmp_path, pair, openssl):
    (tmp_path / "k.pem").write_bytes(pair[1])
    (tmp_path / "c.pem").write_bytes(pair[0])
    pub_from_key = _run(openssl, "pkey", "-in", str(tmp_path / "k.pem"), "-pubout")
    pub_from_cert = _run(openssl, "x509", "-in", str(tmp_path / "c.pem"), "-noout", "-pubkey")
    assert pub_from_key == pub_from_cert


def test_fingerprint_matches_openssl(tmp_path, pair, openssl):
    (tmp_path / "c.pem").write_bytes(pair[0])
    out = _run(openssl, "x509", "-noout", "-fingerprint", "-sha256", "-in", str(tmp_path / "c.pem"))
    assert out.strip().split("=", 1)[1] == selfsigned.fingerprint_sha256(pair[0])


def test_fingerprint_format(pair):
    fp = selfsigned.fingerprint_sha256(pair[0])
    der = ssl.PEM_cert_to_DER_cert(pair[0].decode())
    assert fp == ":".join(f"{b:02X}" for b in hashlib.sha256(der).digest())
    assert selfsigned.fingerprint_sha256(pair[0].decode()) == fp


def test_every_generation_is_a_new_key_and_serial():
    certs = [_x509(selfsigned.generate()[0]) for _ in range(5)]
    assert len({c.serial_number for c in certs}) == 5
    assert len({c.public_key().public_numbers().x for c in certs}) == 5


def test_a_tampered_certificate_fails_verification(pair):
    der = bytearray(ssl.PEM_cert_to_DER_cert(pair[0].decode()))
    der[der.rfind(b"gost.run")] ^= 0x20  # "Gost.run" in the SAN; the issuer stays
    tampered = x509.load_der_x509_certificate(bytes(der))
    with pytest.raises(InvalidSignature):
        tampered.verify_directly_issued_by(_x509(pair[0]))


def test_generate_signed_leaf(pair):
    ca_cert, ca_key = pair
    leaf_pem, leaf_key = selfsigned.generate_signed(
        ca_cert, ca_key, "client.example", sans=["client.example", "127.0.0.1", "::1"]
    )
    ca, leaf = _x509(ca_cert), _x509(leaf_pem)
    leaf.verify_directly_issued_by(ca)
    assert leaf.issuer == ca.subject
    assert leaf.subject.rfc4514_string() == "CN=client.example,O=GOST"
    assert not _ext(leaf, x509.BasicConstraints).value.ca
    ku = _ext(leaf, x509.KeyUsage).value
    assert ku.digital_signature and not ku.key_cert_sign
    aki = _ext(leaf, x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == _ext(ca, x509.SubjectKeyIdentifier).value.digest
    san = _ext(leaf, x509.SubjectAlternativeName).value
    assert [str(n.value) for n in san] == ["client.example", "127.0.0.1", "::1"]
    assert [type(n) for n in san] == [x509.DNSName, x509.IPAddress, x509.IPAddress]
    key = serialization.load_pem_private_key(leaf_key, password=None)
    assert key.public_key() == leaf.public_key()


def test_generate_signed_leaf_as_openssl_sees_it(tmp_path, pair, openssl):
    ca_cert, ca_key = pair
    leaf, leaf_key = selfsigned.generate_signed(
        ca_cert, ca_key, "client.example", sans=["client.example", "127.0.0.1", "::1"]
    )
    (tmp_path / "ca.pem").write_bytes(ca_cert)
    (tmp_path / "leaf.pem").write_bytes(leaf)
    (tmp_path / "leaf.key").write_bytes(leaf_key)
    ca, lf = str(tmp_path / "ca.pem"), str(tmp_path / "leaf.pem")
    assert _run(openssl, "verify", "-x509_strict", "-CAfile", ca, lf).strip() == f"{lf}: OK"
    text = _run(openssl, "x509", "-noout", "-text", "-in", lf)
    assert "CA:FALSE" in text
    assert "Subject: O = GOST, CN = client.example" in text
    assert "DNS:client.example, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1" in text
    assert "Authority Key Identifier" in text
    # the leaf does not verify against an unrelated CA
    other = tmp_path / "other.pem"
    other.write_bytes(selfsigned.generate()[0])
    bad = subprocess.run(
        [openssl, "verify", "-CAfile", str(other), lf], capture_output=True, text=True, timeout=20
    )
    assert bad.returncode != 0
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_cert_chain(lf, str(tmp_path / "leaf.key"))


def test_generate_signed_takes_a_sec1_ca_key(pair):
    """The CA key may also be SEC 1 'EC PRIVATE KEY' PEM (what openssl ecparam writes)."""
    ca_cert, ca_key = pair
    sec1 = serialization.load_pem_private_key(ca_key, password=None).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    assert sec1.startswith(b"-----BEGIN EC PRIVATE KEY-----")
    leaf, _ = selfsigned.generate_signed(ca_cert, sec1, "x")
    _x509(leaf).verify_directly_issued_by(_x509(ca_cert))


def test_generate_signed_refuses_a_key_of_another_ca(pair):
    _, other_key = selfsigned.generate()
    with pytest.raises(ValueError, match="CA key does not belong"):
        selfsigned.generate_signed(pair[0], other_key, "x")


def test_bad_validity_is_refused():
    with pytest.raises(ValueError, match="validity"):
        selfsigned.generate(validity=0)
