"""GOST's admission rules (go-gost/x admission): which client IPs a service accepts."""

from __future__ import annotations

import pytest

from gostfast.admission import Admission
from gostfast.config.errors import ConfigError
from gostfast.config.model import AdmissionConfig
from gostfast.config.yaml import load_text

DENY = AdmissionConfig("deny", ("10.0.0.0/8", "192.168.1.7", "fd00::1", "localhost"))
ONLY = AdmissionConfig("only", ("127.0.0.1", "10.1.0.0/16"), whitelist=True)


@pytest.mark.parametrize(
    ("client", "deny", "only"),
    [
        ("10.9.9.9", False, False),
        ("10.1.2.3", False, True),
        ("192.168.1.7", False, False),
        ("192.168.1.8", True, False),
        ("::ffff:192.168.1.7", False, False),  # mapped IPv4 is the IPv4 address
        ("fd00::1", False, False),
        ("127.0.0.1", False, True),  # "localhost" was resolved once, at start
        ("", True, True),  # an unknown address is admitted, as GOST does
    ],
)
def test_plain_and_whitelist(client: str, deny: bool, only: bool) -> None:
    assert Admission([DENY]).admits(client) is deny
    assert Admission([ONLY]).admits(client) is only


def test_every_admission_must_admit_and_empty_lists() -> None:
    both = Admission([DENY, ONLY])
    assert both.admits("127.0.0.1") is False  # ONLY admits it, DENY (localhost) does not
    assert both.admits("10.1.2.3") is False
    assert Admission([AdmissionConfig("e")]).admits("1.2.3.4")  # nothing to match: admitted
    assert not Admission([AdmissionConfig("e", whitelist=True)]).admits("1.2.3.4")
    assert not Admission([])


def test_unresolvable_name_matches_nothing(caplog) -> None:
    adm = Admission([AdmissionConfig("x", ("no-such-host.invalid",), whitelist=True)])
    assert not adm.admits("127.0.0.1")
    assert "no-such-host.invalid" in caplog.text


def test_yaml_admissions() -> None:
    c = load_text(
        "admissions: [{name: a, reverse: true, matchers: [127.0.0.1]}, {name: b}]\n"
        "services: [{addr: ':1', admission: a, admissions: [b]}]\n"
    )
    assert c.services[0].admission == [
        AdmissionConfig("a", ("127.0.0.1",), True),
        AdmissionConfig("b"),
    ]
    with pytest.raises(ConfigError) as e:
        load_text("services: [{addr: ':1', admission: zz}]")
    assert (e.value.path, e.value.message) == (
        "services[0].admission",
        "unknown admission 'zz' (admissions: none defined)",
    )
    with pytest.raises(ConfigError) as e:
        load_text("admissions: [{name: a, plugin: {addr: x}}]")
    assert e.value.path == "admissions[0].plugin"
