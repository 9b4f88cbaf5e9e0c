"""The pure-Python self-signed certificate: what OpenSSL (library and binary) makes of it."""

from __future__ import annotations

import hashlib
import shutil
import ssl
import subprocess
import time

import pytest

from gostfast.tlsutil import selfsigned

OPENSSL = shutil.which("openssl")
needs_openssl = pytest.mark.skipif(OPENSSL is None, reason="openssl binary not installed")


def _openssl(*args: str) -> str:
    out = subprocess.run([OPENSSL, *args], capture_output=True, text=True, timeout=20, check=False)
    assert out.returncode == 0, out.stderr
    return out.stdout


def _decoded(tmp_path, cert_pem: bytes) -> dict:
    """The certificate as the ssl module decodes it (no openssl binary needed)."""
    path = tmp_path / "decode.pem"
    path.write_bytes(cert_pem)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cafile=str(path))
    (cert,) = ctx.get_ca_certs()
    return cert


@pytest.fixture(scope="module")
def pair() -> tuple[bytes, bytes]:
    return selfsigned.generate()


def test_pem_shapes_and_loads_into_ssl_context(tmp_path, pair):
    cert, key = pair
    assert cert.startswith(b"-----BEGIN CERTIFICATE-----\n")
    assert key.startswith(b"-----BEGIN PRIVATE KEY-----\n")
    (tmp_path / "c.pem").write_bytes(cert)
    (tmp_path / "k.pem").write_bytes(key)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(tmp_path / "c.pem"), str(tmp_path / "k.pem"))  # also checks key == cert


def test_fields_as_the_ssl_module_sees_them(tmp_path, pair):
    cert = _decoded(tmp_path, pair[0])
    assert cert["subject"] == ((("organizationName", "GOST"),), (("commonName", "gost.run"),))
    assert cert["issuer"] == cert["subject"]
    assert cert["subjectAltName"] == (("DNS", "gost.run"),)
    assert cert["version"] == 3
    assert len(cert["serialNumber"]) <= 32  # at most 128 bits
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


def test_non_ascii_organization_is_utf8(tmp_path):
    cert, _ = selfsigned.generate(organization="Société Générale")
    assert _decoded(tmp_path, cert)["subject"][0] == (("organizationName", "Société Générale"),)


@needs_openssl
def test_openssl_text_shows_gost_defaults(tmp_path, pair):
    (tmp_path / "c.pem").write_bytes(pair[0])
    text = _openssl("x509", "-noout", "-text", "-in", str(tmp_path / "c.pem"))
    assert "Subject: O = GOST, CN = gost.run" in text
    assert "Issuer: O = GOST, CN = gost.run" in text
    assert "DNS:gost.run" in text
    assert "CA:TRUE" in text
    assert "Digital Signature, Certificate Sign" in text
    assert "TLS Web Server Authentication, TLS Web Client Authentication" in text
    assert "Signature Algorithm: ecdsa-with-SHA256" in text
    assert "prime256v1" in text or "P-256" in text
    assert "Version: 3 (0x2)" in text


@needs_openssl
def test_openssl_verifies_the_signature(tmp_path, pair):
    (tmp_path / "c.pem").write_bytes(pair[0])
    c = str(tmp_path / "c.pem")
    assert _openssl("verify", "-CAfile", c, c).strip() == f"{c}: OK"
    assert _openssl("verify", "-x509_strict", "-CAfile", c, c).strip() == f"{c}: OK"


@needs_openssl
def test_openssl_reads_the_key(tmp_path, pair):
    (tmp_path / "k.pem").write_bytes(pair[1])
    (tmp_path / "c.pem").write_bytes(pair[0])
    pub_from_key = _openssl("pkey", "-in", str(tmp_path / "k.pem"), "-pubout")
    pub_from_cert = _openssl("x509", "-in", str(tmp_path / "c.pem"), "-noout", "-pubkey")
    assert pub_from_key == pub_from_cert


@needs_openssl
def test_fingerprint_matches_openssl(tmp_path, pair):
    (tmp_path / "c.pem").write_bytes(pair[0])
    out = _openssl("x509", "-noout", "-fingerprint", "-sha256", "-in", str(tmp_path / "c.pem"))
    assert out.strip().split("=", 1)[1] == selfsigned.fingerprint_sha256(pair[0])


def test_fingerprint_format(pair):
    fp = selfsigned.fingerprint_sha256(pair[0])
    der = ssl.PEM_cert_to_DER_cert(pair[0].decode())
    assert fp == ":".join(f"{b:02X}" for b in hashlib.sha256(der).digest())
    assert selfsigned.fingerprint_sha256(pair[0].decode()) == fp


def test_twenty_generations_all_verify(tmp_path):
    """Each certificate verifies (openssl binary if present, else our own ECDSA check)."""
    certs = [selfsigned.generate()[0] for _ in range(20)]
    assert len({selfsigned.fingerprint_sha256(c) for c in certs}) == 20
    for i, cert in enumerate(certs):
        path = tmp_path / f"c{i}.pem"
        path.write_bytes(cert)
        if OPENSSL:
            assert _openssl("verify", "-CAfile", str(path), str(path)).strip().endswith("OK")
        else:
            assert _self_signature_ok(cert)


def _self_signature_ok(cert_pem: bytes) -> bool:
    der = ssl.PEM_cert_to_DER_cert(cert_pem.decode())
    r = selfsigned._read
    _, cs, ce = r(der, 0)
    _, ts, te = r(der, cs)
    tbs_start = cs
    tbs = der[tbs_start:te]
    fields = selfsigned._children(der, ts, te)
    spki = fields[6]  # version, serial, sig, issuer, validity, subject, spki
    _, algs, alge = r(der, spki[1])
    _, bs, be = r(der, alge)
    point = der[bs + 1 : be]
    q = (int.from_bytes(point[1:33], "big"), int.from_bytes(point[33:65], "big"))
    _, _, sigalg_end = r(der, te)
    _, ss, se = r(der, sigalg_end)
    _, qs, qe = r(der, ss + 1)
    _, rs, re_ = r(der, qs)
    _, s2s, s2e = r(der, re_)
    return selfsigned._ecdsa_verify(
        q, tbs, int.from_bytes(der[rs:re_], "big"), int.from_bytes(der[s2s:s2e], "big")
    )


def test_own_verify_accepts_good_and_rejects_tampered(pair):
    assert _self_signature_ok(pair[0])
    der = bytearray(ssl.PEM_cert_to_DER_cert(pair[0].decode()))
    i = der.find(b"gost.run")
    der[i] ^= 0x20  # "Gost.run" inside the signed part
    tampered = ssl.DER_cert_to_PEM_cert(bytes(der)).encode()
    assert not _self_signature_ok(tampered)


def test_generation_is_fast():
    t0 = time.perf_counter()
    selfsigned.generate()
    assert time.perf_counter() - t0 < 0.5


def test_curve_arithmetic_sanity():
    g = selfsigned._G
    assert selfsigned._on_curve(selfsigned._GX, selfsigned._GY)
    assert selfsigned._multiply(selfsigned._N, g)[2] == 0  # n*G is infinity
    x, y = selfsigned._affine(selfsigned._multiply(selfsigned._N - 1, g))
    assert (x, y) == (selfsigned._GX, selfsigned._P - selfsigned._GY)  # (n-1)*G = -G
    two_g = selfsigned._affine(selfsigned._double(g))
    assert two_g == selfsigned._affine(selfsigned._add(g, g))
    three = selfsigned._affine(selfsigned._add(selfsigned._double(g), g))
    assert three == selfsigned._affine(selfsigned._multiply(3, g))
    # a published P-256 vector: k = 2 (from the NIST/SECG test points)
    assert two_g == (
        0x7CF27B188D034F7E8A52380304B51AC3C08969E277F21B35A60B48FC47669978,
        0x07775510DB8ED040293D9AC69F7430DBBA7DADE63CE982299E04B79D227873D1,
    )


def test_sign_verify_round_trip():
    d = selfsigned._new_scalar()
    q = selfsigned._public_key(d)
    r, s = selfsigned._ecdsa_sign(d, b"message")
    assert selfsigned._ecdsa_verify(q, b"message", r, s)
    assert not selfsigned._ecdsa_verify(q, b"messagf", r, s)


@needs_openssl
def test_generate_signed_leaf_verifies_against_ca(tmp_path, pair):
    ca_cert, ca_key = pair
    leaf, leaf_key = selfsigned.generate_signed(
        ca_cert, ca_key, "client.example", sans=["client.example", "127.0.0.1", "::1"]
    )
    (tmp_path / "ca.pem").write_bytes(ca_cert)
    (tmp_path / "leaf.pem").write_bytes(leaf)
    (tmp_path / "leaf.key").write_bytes(leaf_key)
    ca, lf = str(tmp_path / "ca.pem"), str(tmp_path / "leaf.pem")
    assert _openssl("verify", "-x509_strict", "-CAfile", ca, lf).strip() == f"{lf}: OK"
    text = _openssl("x509", "-noout", "-text", "-in", lf)
    assert "CA:FALSE" in text
    assert "Subject: O = GOST, CN = client.example" in text
    assert "DNS:client.example, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1" in text
    assert "Authority Key Identifier" in text
    # the leaf does not verify against an unrelated CA
    other = tmp_path / "other.pem"
    other.write_bytes(selfsigned.generate()[0])
    bad = subprocess.run(
        [OPENSSL, "verify", "-CAfile", str(other), lf], capture_output=True, text=True, timeout=20
    )
    assert bad.returncode != 0
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_cert_chain(lf, str(tmp_path / "leaf.key"))


def test_sec1_key_input_for_generate_signed(pair):
    """generate_signed also takes a SEC 1 'EC PRIVATE KEY' (what openssl ecparam writes)."""
    ca_cert, ca_key = pair
    d = selfsigned._private_scalar(ca_key)
    q = selfsigned._public_key(d)
    sec1 = selfsigned._seq(
        selfsigned._int(1),
        selfsigned._octets(d.to_bytes(32, "big")),
        selfsigned._explicit(0, selfsigned._oid("1.2.840.10045.3.1.7")),
        selfsigned._explicit(1, selfsigned._bits(selfsigned._point_bytes(q))),
    )
    pem = selfsigned._pem("EC PRIVATE KEY", sec1)
    assert selfsigned._private_scalar(pem) == d
    leaf, _ = selfsigned.generate_signed(ca_cert, pem, "x")
    assert leaf.startswith(b"-----BEGIN CERTIFICATE-----")


def test_bad_validity_is_refused():
    with pytest.raises(ValueError):
        selfsigned.generate(validity=0)
