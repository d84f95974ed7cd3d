"""The outbound guard's destination rules: which addresses and URLs are refused, before any connection."""

from __future__ import annotations

import ipaddress
import socket

import pytest

from chalicelib import outbound
from chalicelib.outbound import OutboundError, check_destination

NEVER = "never"      # refused whatever allow_private says
PRIVATE = "private"  # refused unless allow_private
PUBLIC = "public"    # always allowed

ADDRESSES = [
    ("169.254.169.254", NEVER),           # the cloud metadata endpoint
    ("169.254.0.1", NEVER),
    ("fe80::1", NEVER),
    ("fe80::1%25eth0", NEVER),            # with a zone id
    ("::ffff:169.254.169.254", NEVER),    # IPv4-mapped
    ("64:ff9b::a9fe:a9fe", NEVER),        # NAT64 form of 169.254.169.254
    ("2002:a9fe:a9fe::1", NEVER),         # 6to4 form of 169.254.169.254
    ("127.0.0.1", PRIVATE),
    ("127.8.9.10", PRIVATE),
    ("::1", PRIVATE),
    ("::ffff:127.0.0.1", PRIVATE),
    ("10.1.2.3", PRIVATE),
    ("172.16.0.1", PRIVATE),
    ("172.31.255.254", PRIVATE),
    ("192.168.1.1", PRIVATE),
    ("::ffff:10.0.0.1", PRIVATE),
    ("fc00::1", PRIVATE),
    ("fd12:3456::1", PRIVATE),
    ("100.64.0.1", PRIVATE),              # shared address space (carrier-grade NAT)
    ("100.127.255.254", PRIVATE),
    ("0.0.0.0", PRIVATE),
    ("::", PRIVATE),
    ("224.0.0.1", PRIVATE),
    ("ff02::1", PRIVATE),
    ("240.0.0.1", PRIVATE),               # reserved
    ("255.255.255.255", PRIVATE),
    ("192.0.2.10", PRIVATE),              # documentation range
    ("93.184.216.34", PUBLIC),
    ("8.8.8.8", PUBLIC),
    ("172.32.0.1", PUBLIC),               # just past 172.16.0.0/12
    ("100.128.0.1", PUBLIC),              # just past 100.64.0.0/10
    ("2606:4700:4700::1111", PUBLIC),
    ("::ffff:93.184.216.34", PUBLIC),
]


def _url(address: str) -> str:
    return f"http://[{address}]/" if ":" in address else f"http://{address}/"


def _blocked(address: str, allow_private: bool) -> bool:
    try:
        check_destination(_url(address), allow_private=allow_private)
    except OutboundError as exc:
        assert exc.code == "BLOCKED_DESTINATION"
        assert exc.retryable is False
        return True
    return False


@pytest.mark.parametrize("address,kind", ADDRESSES)
def test_address_classification(address, kind):
    assert _blocked(address, allow_private=False) is (kind != PUBLIC)
    assert _blocked(address, allow_private=True) is (kind == NEVER)


def test_allowed_destination_returns_its_address():
    assert check_destination("https://93.184.216.34:8443/x?y=1", allow_private=False) == [
        ipaddress.ip_address("93.184.216.34")]
    assert check_destination("http://[::1]:8080/", allow_private=True) == [ipaddress.ip_address("::1")]


def test_blocked_message_names_the_address_and_why():
    with pytest.raises(OutboundError) as caught:
        check_destination("http://169.254.169.254/latest/meta-data/", allow_private=True)
    assert caught.value.message == "169.254.169.254 is a link-local address; outbound requests may not go there"


@pytest.mark.parametrize("url", [
    "ftp://93.184.216.34/file",
    "file:///etc/passwd",
    "gopher://93.184.216.34/",
    "93.184.216.34/no-scheme",
    "http://",
    "http:///path-only",
    "https://:443/",
    "http://93.184.216.34:notaport/",
])
def test_bad_urls_are_invalid_input(url):
    with pytest.raises(OutboundError) as caught:
        check_destination(url, allow_private=True)
    assert caught.value.code == "INVALID_INPUT"
    assert caught.value.retryable is False


def _resolver(answers: dict[str, list[str]], calls: list[str]):
    def fake_getaddrinfo(host, port, *args, **kwargs):
        calls.append(host)
        if host not in answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "",
                 (a, port, 0, 0) if ":" in a else (a, port)) for a in answers[host]]
    return fake_getaddrinfo


def test_hostname_resolving_to_metadata_is_blocked(monkeypatch):
    calls: list[str] = []
    monkeypatch.setattr(outbound, "getaddrinfo", _resolver({"rebind.test": ["169.254.169.254"]}, calls))
    for allow_private in (False, True):
        with pytest.raises(OutboundError) as caught:
            check_destination("http://rebind.test/latest/meta-data/", allow_private=allow_private)
        assert caught.value.code == "BLOCKED_DESTINATION"
        assert "rebind.test (169.254.169.254)" in caught.value.message
    assert calls == ["rebind.test", "rebind.test"]


def test_every_resolved_address_must_be_allowed(monkeypatch):
    monkeypatch.setattr(outbound, "getaddrinfo", _resolver({"mixed.test": ["93.184.216.34", "10.0.0.5"],
                                                            "v6.test": ["2606:4700:4700::1111", "fe80::1"]}, []))
    with pytest.raises(OutboundError) as caught:
        check_destination("https://mixed.test/", allow_private=False)
    assert caught.value.code == "BLOCKED_DESTINATION"
    assert check_destination("https://mixed.test/", allow_private=True) == [
        ipaddress.ip_address("93.184.216.34"), ipaddress.ip_address("10.0.0.5")]
    with pytest.raises(OutboundError):
        check_destination("https://v6.test/", allow_private=True)


def test_unresolvable_host_is_a_retryable_connection_error(monkeypatch):
    monkeypatch.setattr(outbound, "getaddrinfo", _resolver({}, []))
    with pytest.raises(OutboundError) as caught:
        check_destination("https://nowhere.test/", allow_private=False)
    assert (caught.value.code, caught.value.retryable) == ("CONNECTION_ERROR", True)


def test_error_retryability_follows_the_code():
    assert OutboundError("BLOCKED_DESTINATION", "x").retryable is False
    assert OutboundError("INVALID_INPUT", "x").retryable is False
    assert OutboundError("CONNECTION_ERROR", "x").retryable is True
    assert OutboundError("TIMEOUT", "x").retryable is True
    assert OutboundError("CONNECTION_ERROR", "x", retryable=False).retryable is False
