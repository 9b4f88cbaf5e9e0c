"""GOST's default TLS certificate, generated without third-party packages.

When a wss/mwss listener has no certificate files, GOST serves a freshly
generated self-signed certificate: ECDSA P-256 key, Subject ``O=GOST,
CN=gost.run``, DNS SAN = the CN, ``CA:TRUE``, key usage digitalSignature +
keyCertSign, extended key usage serverAuth + clientAuth, one year of validity
from now, a 128-bit random serial, signed with ecdsa-with-SHA256. This module
builds the same certificate with the standard library only (the project's
dependencies are fixed: no ``cryptography``), so it carries

* a minimal DER encoder (just the types an X.509 certificate needs) and an
  equally minimal DER reader (for ``generate_signed``, used by tests);
* P-256 arithmetic in Jacobian coordinates on Python ints, and ECDSA signing.

The output is PEM: the certificate and a PKCS#8 ``PRIVATE KEY`` (what Go's
``x509.MarshalPKCS8PrivateKey`` writes and what ``ssl.load_cert_chain`` reads).

Security notes. Keys and nonces come from ``secrets`` (the OS CSPRNG). The
scalar multiplication is a Montgomery ladder (the same sequence of curve
operations for every bit), but CPython's big-int arithmetic is not constant
time; that is acceptable here because a key is generated once, at start, in
the process that owns it, and nothing remote can time it. The certificate is
not meant to be trusted: GOST clients do not verify it unless told to.
"""

from __future__ import annotations

import base64
import datetime as _dt
import hashlib
import ipaddress
import secrets
import ssl

__all__ = ["generate", "generate_signed", "fingerprint_sha256"]

DEFAULT_VALIDITY = 365 * 86400

# --------------------------------------------------------------------------- P-256
# Curve y^2 = x^3 - 3x + b over GF(p) (SEC 2 / FIPS 186-4, "secp256r1" / "prime256v1").
_P = 0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF
_B = 0x5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B
_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
_GX = 0x6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296
_GY = 0x4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5

# A Jacobian point (X, Y, Z) stands for the affine (X/Z^2, Y/Z^3); Z == 0 is infinity.
_INF = (1, 1, 0)


def _double(pt: tuple[int, int, int]) -> tuple[int, int, int]:
    """2*pt ("dbl-2001-b", using a = -3)."""
    x, y, z = pt
    if z == 0 or y == 0:
        return _INF
    p = _P
    delta = z * z % p
    gamma = y * y % p
    beta = x * gamma % p
    alpha = 3 * (x - delta) * (x + delta) % p
    x3 = (alpha * alpha - 8 * beta) % p
    z3 = ((y + z) * (y + z) - gamma - delta) % p
    y3 = (alpha * (4 * beta - x3) - 8 * gamma * gamma) % p
    return x3, y3, z3


def _add(p1: tuple[int, int, int], p2: tuple[int, int, int]) -> tuple[int, int, int]:
    """p1 + p2 ("add-2007-bl" shape), handling infinity and p1 == +-p2."""
    x1, y1, z1 = p1
    x2, y2, z2 = p2
    if z1 == 0:
        return p2
    if z2 == 0:
        return p1
    p = _P
    z1z1 = z1 * z1 % p
    z2z2 = z2 * z2 % p
    u1 = x1 * z2z2 % p
    u2 = x2 * z1z1 % p
    s1 = y1 * z2 * z2z2 % p
    s2 = y2 * z1 * z1z1 % p
    h = (u2 - u1) % p
    r = (s2 - s1) % p
    if h == 0:
        return _double(p1) if r == 0 else _INF
    hh = h * h % p
    hhh = h * hh % p
    v = u1 * hh % p
    x3 = (r * r - hhh - 2 * v) % p
    y3 = (r * (v - x3) - s1 * hhh) % p
    z3 = z1 * z2 * h % p
    return x3, y3, z3


def _multiply(k: int, pt: tuple[int, int, int]) -> tuple[int, int, int]:
    """k*pt by a Montgomery ladder: one add and one double per bit, whatever the bit."""
    r0, r1 = _INF, pt
    for i in range(k.bit_length() - 1, -1, -1):
        if (k >> i) & 1:
            r0, r1 = _add(r0, r1), _double(r1)
        else:
            r0, r1 = _double(r0), _add(r0, r1)
    return r0


def _affine(pt: tuple[int, int, int]) -> tuple[int, int]:
    x, y, z = pt
    if z == 0:
        raise ArithmeticError("point at infinity has no affine form")
    zi = pow(z, -1, _P)
    zi2 = zi * zi % _P
    return x * zi2 % _P, y * zi2 * zi % _P


def _on_curve(x: int, y: int) -> bool:
    return (y * y - (x * x * x - 3 * x + _B)) % _P == 0


_G = (_GX, _GY, 1)


def _public_key(d: int) -> tuple[int, int]:
    q = _affine(_multiply(d, _G))
    if not _on_curve(*q):  # cheap self-check against arithmetic slips
        raise ArithmeticError("P-256: computed public key is not on the curve")
    return q


def _point_bytes(q: tuple[int, int]) -> bytes:
    """SEC 1 uncompressed point encoding: 04 || X || Y."""
    return b"\x04" + q[0].to_bytes(32, "big") + q[1].to_bytes(32, "big")


def _new_scalar() -> int:
    """Uniform in [1, n-1]."""
    return secrets.randbelow(_N - 1) + 1


def _ecdsa_sign(d: int, message: bytes) -> tuple[int, int]:
    """ECDSA over SHA-256 with a fresh random nonce (SHA-256 is exactly n's 256 bits)."""
    e = int.from_bytes(hashlib.sha256(message).digest(), "big")
    while True:
        k = _new_scalar()
        r = _affine(_multiply(k, _G))[0] % _N
        if r == 0:
            continue
        s = pow(k, -1, _N) * (e + r * d) % _N
        if s != 0:
            return r, s


def _ecdsa_verify(q: tuple[int, int], message: bytes, r: int, s: int) -> bool:
    """The textbook check, for tests that cannot use the openssl binary."""
    if not (0 < r < _N and 0 < s < _N):
        return False
    e = int.from_bytes(hashlib.sha256(message).digest(), "big")
    w = pow(s, -1, _N)
    pt = _add(_multiply(e * w % _N, _G), _multiply(r * w % _N, (q[0], q[1], 1)))
    if pt[2] == 0:
        return False
    return _affine(pt)[0] % _N == r


# --------------------------------------------------------------------------- DER out
def _tlv(tag: int, body: bytes) -> bytes:
    n = len(body)
    if n < 0x80:
        return bytes((tag, n)) + body
    length = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((tag, 0x80 | len(length))) + length + body


def _seq(*items: bytes) -> bytes:
    return _tlv(0x30, b"".join(items))


def _set_of_one(item: bytes) -> bytes:
    return _tlv(0x31, item)  # a one-element SET OF needs no DER sorting


def _int(v: int) -> bytes:
    if v < 0:
        raise ValueError("only non-negative INTEGERs are needed here")
    # bit_length()//8 + 1 bytes always leaves the sign bit clear, and is minimal
    return _tlv(0x02, v.to_bytes(v.bit_length() // 8 + 1, "big"))


def _oid(dotted: str) -> bytes:
    arcs = [int(a) for a in dotted.split(".")]
    body = bytearray()
    for arc in [40 * arcs[0] + arcs[1], *arcs[2:]]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        body += bytes(reversed(chunk))
    return _tlv(0x06, bytes(body))


def _bits(data: bytes, unused: int = 0) -> bytes:
    return _tlv(0x03, bytes((unused,)) + data)


def _octets(data: bytes) -> bytes:
    return _tlv(0x04, data)


def _explicit(n: int, inner: bytes) -> bytes:
    return _tlv(0xA0 | n, inner)


_PRINTABLE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 '()+,-./:=?")


def _dirstring(s: str) -> bytes:
    """PrintableString when it fits (as Go writes it), else UTF8String."""
    if s and all(c in _PRINTABLE for c in s):
        return _tlv(0x13, s.encode("ascii"))
    return _tlv(0x0C, s.encode("utf-8"))


def _time(t: _dt.datetime) -> bytes:
    """RFC 5280 4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050."""
    if 1950 <= t.year < 2050:
        return _tlv(0x17, t.strftime("%y%m%d%H%M%SZ").encode())
    return _tlv(0x18, f"{t.year:04d}{t.strftime('%m%d%H%M%S')}Z".encode())


def _pem(label: str, der: bytes) -> bytes:
    b64 = base64.b64encode(der).decode("ascii")
    lines = [b64[i : i + 64] for i in range(0, len(b64), 64)]
    return (f"-----BEGIN {label}-----\n" + "\n".join(lines) + f"\n-----END {label}-----\n").encode()


_OID_CN = "2.5.4.3"
_OID_O = "2.5.4.10"
_OID_EC_PUBLIC_KEY = "1.2.840.10045.2.1"
_OID_P256 = "1.2.840.10045.3.1.7"
_OID_ECDSA_SHA256 = "1.2.840.10045.4.3.2"
_OID_SKID = "2.5.29.14"
_OID_KEY_USAGE = "2.5.29.15"
_OID_SAN = "2.5.29.17"
_OID_BASIC_CONSTRAINTS = "2.5.29.19"
_OID_AKID = "2.5.29.35"
_OID_EKU = "2.5.29.37"
_OID_SERVER_AUTH = "1.3.6.1.5.5.7.3.1"
_OID_CLIENT_AUTH = "1.3.6.1.5.5.7.3.2"

_SIG_ALG = _seq(_oid(_OID_ECDSA_SHA256))  # parameters absent (RFC 5758)
_EC_ALG = _seq(_oid(_OID_EC_PUBLIC_KEY), _oid(_OID_P256))


def _name(common_name: str, organization: str) -> bytes:
    """Subject/issuer Name in Go's attribute order (O before CN); empty parts are left out."""
    rdns = []
    if organization:
        rdns.append(_set_of_one(_seq(_oid(_OID_O), _dirstring(organization))))
    if common_name:
        rdns.append(_set_of_one(_seq(_oid(_OID_CN), _dirstring(common_name))))
    return _seq(*rdns)


def _extension(oid: str, value: bytes, critical: bool = False) -> bytes:
    crit = _tlv(0x01, b"\xff") if critical else b""  # DEFAULT FALSE is omitted in DER
    return _seq(_oid(oid), crit, _octets(value))


def _general_names(names: list[str]) -> bytes:
    out = []
    for n in names:
        try:
            out.append(_tlv(0x87, ipaddress.ip_address(n).packed))  # [7] iPAddress
        except ValueError:
            out.append(_tlv(0x82, n.encode("ascii")))  # [2] dNSName (IA5String)
    return _seq(*out)


def _build(
    *,
    subject: bytes,
    issuer: bytes,
    public: tuple[int, int],
    signer: int,
    is_ca: bool,
    sans: list[str],
    validity: float,
    authority_key_id: bytes | None,
) -> bytes:
    """DER of a signed X.509 v3 certificate."""
    if validity <= 0:
        raise ValueError("validity must be positive (seconds)")
    point = _point_bytes(public)
    not_before = _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0)
    not_after = not_before + _dt.timedelta(seconds=int(validity))
    serial = secrets.randbelow((1 << 128) - 1) + 1  # 128 random bits, never 0
    if is_ca:
        key_usage = _bits(b"\x84", 2)  # digitalSignature(0) | keyCertSign(5)
        basic = _seq(_tlv(0x01, b"\xff"))  # cA TRUE
    else:
        key_usage = _bits(b"\x80", 7)  # digitalSignature(0)
        basic = _seq()  # cA DEFAULT FALSE
    exts = [
        _extension(_OID_KEY_USAGE, key_usage, critical=True),
        _extension(_OID_EKU, _seq(_oid(_OID_SERVER_AUTH), _oid(_OID_CLIENT_AUTH))),
        _extension(_OID_BASIC_CONSTRAINTS, basic, critical=True),
        # RFC 5280 method 1 (SHA-1 of the key bits), as Go does for CAs: lets chain
        # builders (and strict verifiers) match issuer and subject keys
        _extension(_OID_SKID, _octets(hashlib.sha1(point).digest())),
    ]
    if authority_key_id is not None:
        exts.append(_extension(_OID_AKID, _seq(_tlv(0x80, authority_key_id))))
    if sans:
        exts.append(_extension(_OID_SAN, _general_names(sans)))
    tbs = _seq(
        _explicit(0, _int(2)),  # v3
        _int(serial),
        _SIG_ALG,
        issuer,
        _seq(_time(not_before), _time(not_after)),
        subject,
        _seq(_EC_ALG, _bits(point)),
        _explicit(3, _seq(*exts)),
    )
    r, s = _ecdsa_sign(signer, tbs)
    return _seq(tbs, _SIG_ALG, _bits(_seq(_int(r), _int(s))))


def _pkcs8_key(d: int, public: tuple[int, int]) -> bytes:
    """PKCS#8 PrivateKeyInfo wrapping a SEC 1 ECPrivateKey (curve named in the algorithm)."""
    sec1 = _seq(_int(1), _octets(d.to_bytes(32, "big")), _explicit(1, _bits(_point_bytes(public))))
    return _seq(_int(0), _EC_ALG, _octets(sec1))


# --------------------------------------------------------------------------- public API
def generate(
    common_name: str = "gost.run",
    organization: str = "GOST",
    validity: float = DEFAULT_VALIDITY,
) -> tuple[bytes, bytes]:
    """A self-signed CA certificate like GOST's default; returns ``(cert_pem, key_pem)``.

    ``validity`` is in seconds from now. The DNS SAN is the common name, as in GOST.
    """
    d = _new_scalar()
    q = _public_key(d)
    name = _name(common_name, organization)
    cert = _build(
        subject=name,
        issuer=name,
        public=q,
        signer=d,
        is_ca=True,
        sans=[common_name] if common_name else [],
        validity=validity,
        authority_key_id=None,  # Go leaves it out of self-signed certificates
    )
    return _pem("CERTIFICATE", cert), _pem("PRIVATE KEY", _pkcs8_key(d, q))


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
    """A certificate signed by the CA (as made by ``generate``); returns ``(cert_pem, key_pem)``.

    Used to build client and server certificates for tests of verification.
    ``sans`` defaults to ``[common_name]``; entries that parse as IP addresses
    become iPAddress names, the rest dNSName.
    """
    ca_der = ssl.PEM_cert_to_DER_cert(_text(ca_cert_pem))
    issuer, ca_skid = _subject_and_skid(ca_der)
    ca_d = _private_scalar(ca_key_pem)
    d = _new_scalar()
    q = _public_key(d)
    cert = _build(
        subject=_name(common_name, organization),
        issuer=issuer,
        public=q,
        signer=ca_d,
        is_ca=is_ca,
        sans=list(sans) if sans is not None else ([common_name] if common_name else []),
        validity=validity,
        authority_key_id=ca_skid,
    )
    return _pem("CERTIFICATE", cert), _pem("PRIVATE KEY", _pkcs8_key(d, q))


def fingerprint_sha256(cert_pem: bytes | str) -> str:
    """SHA-256 over the DER certificate as ``"AB:CD:..."`` (openssl's and browsers' format)."""
    der = ssl.PEM_cert_to_DER_cert(_text(cert_pem))
    return ":".join(f"{b:02X}" for b in hashlib.sha256(der).digest())


def _text(pem: bytes | str) -> str:
    return pem.decode("ascii") if isinstance(pem, bytes) else pem


# --------------------------------------------------------------------------- DER in
def _read(buf: bytes, pos: int) -> tuple[int, int, int]:
    """One TLV at ``pos``: (tag, start of value, end of value). Raises on truncation."""
    if pos + 2 > len(buf):
        raise ValueError("DER: truncated")
    tag, first = buf[pos], buf[pos + 1]
    pos += 2
    if first < 0x80:
        length = first
    else:
        nbytes = first & 0x7F
        if nbytes == 0 or nbytes > 4 or pos + nbytes > len(buf):
            raise ValueError("DER: bad length")
        length = int.from_bytes(buf[pos : pos + nbytes], "big")
        pos += nbytes
    if pos + length > len(buf):
        raise ValueError("DER: truncated")
    return tag, pos, pos + length


def _children(buf: bytes, start: int, end: int) -> list[tuple[int, int, int, int]]:
    """(tag, value start, value end, TLV start) for each element inside [start, end)."""
    out = []
    pos = start
    while pos < end:
        tag, vs, ve = _read(buf, pos)
        out.append((tag, vs, ve, pos))
        pos = ve
    return out


def _subject_and_skid(cert_der: bytes) -> tuple[bytes, bytes | None]:
    _, cs, ce = _read(cert_der, 0)
    _, ts, te = _read(cert_der, cs)
    fields = _children(cert_der, ts, te)
    if fields and fields[0][0] == 0xA0:  # [0] version present
        fields = fields[1:]
    # serial, signature, issuer, validity, subject, spki, [extensions]
    _, _, subj_end, subj_start = fields[4]
    subject = cert_der[subj_start:subj_end]
    skid = None
    for tag, vs, _, _ in fields[6:]:
        if tag != 0xA3:
            continue
        _, ls, le = _read(cert_der, vs)
        for _, es, ee, _ in _children(cert_der, ls, le):
            parts = _children(cert_der, es, ee)
            oid = cert_der[parts[0][3] : parts[0][2]]
            if oid == _oid(_OID_SKID):
                _, os_, oe = _read(cert_der, parts[-1][1])  # extnValue holds an OCTET STRING
                skid = cert_der[os_:oe]
    return subject, skid


def _private_scalar(key_pem: bytes | str) -> int:
    """d from a PKCS#8 ``PRIVATE KEY`` or SEC 1 ``EC PRIVATE KEY`` PEM (P-256 assumed)."""
    text = _text(key_pem)
    body = "".join(line for line in text.strip().splitlines() if not line.startswith("-----"))
    der = base64.b64decode(body)
    _, s, e = _read(der, 0)
    parts = _children(der, s, e)
    version = int.from_bytes(der[parts[0][1] : parts[0][2]], "big")
    if version == 0:  # PKCS#8: the third element is an OCTET STRING holding ECPrivateKey
        inner = der[parts[2][1] : parts[2][2]]
        _, s, e = _read(inner, 0)
        der, parts = inner, _children(inner, s, e)
    return int.from_bytes(der[parts[1][1] : parts[1][2]], "big")
