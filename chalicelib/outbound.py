"""The outbound guard: the one way actions, callbacks and event webhooks reach the network (SPEC §5)."""

from __future__ import annotations

import ipaddress
import json as jsonlib
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from socket import getaddrinfo
from typing import Any, Callable
from urllib.parse import urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import HTTPError as Urllib3Error
from urllib3.exceptions import NewConnectionError

from chalicelib import __version__

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

USER_AGENT = f"Sluice/{__version__}"

_DEFAULT_PORTS = {"http": 80, "https": 443}
_RETRYABLE = {"BLOCKED_DESTINATION": False, "INVALID_INPUT": False, "CONNECTION_ERROR": True, "TIMEOUT": True}
_SHARED_ADDRESS_SPACE = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
# Credentials meant for one origin are not handed to the next one a redirect names.
_ORIGIN_HEADERS = ("Authorization", "Cookie", "Proxy-Authorization")
_BODY_HEADERS = ("Content-Type", "Content-Length", "Transfer-Encoding")
_CHUNK = 64 * 1024
_UNSET: Any = object()


class OutboundError(Exception):
    """A request refused by the guard or failed before an HTTP answer; `code` is a step error code."""

    def __init__(self, code: str, message: str, *, retryable: bool | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retryable = _RETRYABLE.get(code, False) if retryable is None else retryable

    def __repr__(self) -> str:
        return f"OutboundError({self.code!r}, {self.message!r}, retryable={self.retryable})"


@dataclass(frozen=True)
class OutboundResponse:
    status_code: int
    headers: dict[str, str]
    body: bytes
    truncated: bool
    url: str


@dataclass(frozen=True)
class _Target:
    scheme: str
    host: str
    port: int


def _target(url: str) -> _Target:
    # Messages name the host at most: URLs often carry tokens (SPEC §8).
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError as exc:
        raise OutboundError("INVALID_INPUT", f"malformed URL: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise OutboundError("INVALID_INPUT", f"only http and https URLs are allowed, not {scheme or 'a URL without scheme'!r}")
    if not host:
        raise OutboundError("INVALID_INPUT", "the URL has no host")
    return _Target(scheme, host, port or _DEFAULT_PORTS[scheme])


def _embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (mapped, 6to4, NAT64, compatible), if any."""
    if address.version == 4:
        return None
    if address.ipv4_mapped or address.sixtofour:
        return address.ipv4_mapped or address.sixtofour
    if address in _NAT64 or (address in _IPV4_COMPATIBLE and int(address) > 1):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def _refusal_reason(address: IPAddress, *, allow_private: bool) -> str | None:
    ipv4 = _embedded_ipv4(address)
    if address.is_link_local or (ipv4 is not None and ipv4.is_link_local):
        return "link-local"
    if allow_private:
        return None
    # An IPv6 form of an IPv4 address sits in a special-purpose range itself: judge what it stands for.
    form = ipv4 if ipv4 is not None else address
    checks = [
        ("loopback", form.is_loopback),
        ("unspecified", form.is_unspecified),
        ("multicast", form.is_multicast),
        ("shared address space", form in _SHARED_ADDRESS_SPACE),
        ("reserved", form.is_reserved),
        ("private", form.is_private or not form.is_global),
    ]
    return next((reason for reason, applies in checks if applies), None)


def _resolve(target: _Target) -> list[IPAddress]:
    try:
        return [ipaddress.ip_address(target.host)]
    except ValueError:
        pass
    try:
        infos = getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
    except UnicodeError:
        raise OutboundError("INVALID_INPUT", f"invalid host name {target.host!r}") from None
    except OSError as exc:
        raise OutboundError("CONNECTION_ERROR", f"cannot resolve {target.host}: {exc}") from None
    addresses: list[IPAddress] = []
    for family, _, _, _, sockaddr in infos:
        if family in (socket.AF_INET, socket.AF_INET6):
            address = ipaddress.ip_address(sockaddr[0])
            if address not in addresses:
                addresses.append(address)
    if not addresses:
        raise OutboundError("CONNECTION_ERROR", f"{target.host} has no IPv4 or IPv6 address")
    return addresses


def check_destination(url: str, *, allow_private: bool) -> list[IPAddress]:
    """Resolve the URL's host; return its addresses if every one of them may be reached."""
    target = _target(url)
    addresses = _resolve(target)
    for address in addresses:
        reason = _refusal_reason(address, allow_private=allow_private)
        if reason:
            where = str(address) if target.host == str(address) else f"{target.host} ({address})"
            raise OutboundError("BLOCKED_DESTINATION", f"{where} is a {reason} address; outbound requests may not go there")
    return addresses


class _PinnedAdapter(HTTPAdapter):
    """Connects to the address the guard checked, keeping the URL's host for Host, SNI and certificate checks."""

    def __init__(self) -> None:
        super().__init__()
        self._pin: tuple[str, IPAddress] | None = None
        self._connections: list[Any] = []
        self._lock = threading.Lock()
        self.aborted = False

    def pin(self, host: str, address: IPAddress) -> None:
        self._pin = (host, address)

    def get_connection_with_tls_context(self, request, verify, proxies=None, cert=None):
        host_params, pool_kwargs = self.build_connection_pool_key_attributes(request, verify, cert)
        if self._pin is None or host_params["host"] != self._pin[0]:
            raise OutboundError("BLOCKED_DESTINATION", "refusing to connect to a host the guard did not check")
        if host_params["scheme"] == "https":
            # SNI, and the certificate is verified against this name by ssl's check_hostname.
            pool_kwargs["server_hostname"] = host_params["host"]
        host_params["host"] = str(self._pin[1])
        pool = self.poolmanager.connection_from_host(**host_params, pool_kwargs=pool_kwargs)
        pool.ConnectionCls = self._tracked(type(pool).ConnectionCls)
        return pool

    def add_headers(self, request, **kwargs) -> None:
        # The pool's host is the IP; http.client would put that in Host.
        parts = urlsplit(request.url)
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        port = parts.port
        request.headers["Host"] = host if port in (None, _DEFAULT_PORTS[parts.scheme]) else f"{host}:{port}"

    def _tracked(self, connection_cls: type) -> Callable[..., Any]:
        def build(**kwargs: Any) -> Any:
            connection = connection_cls(**kwargs)
            with self._lock:
                self._connections.append(connection)
            return connection

        return build

    def abort(self) -> None:
        """Cut every connection this adapter opened: the whole call is past its deadline."""
        self.aborted = True
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            sock = getattr(connection, "sock", None)
            if sock is not None:
                try:
                    # The plain socket's shutdown, even under TLS: a reader blocked in another
                    # thread wakes up, and the SSL object is left alone.
                    socket.socket.shutdown(sock, socket.SHUT_RDWR)
                except OSError:
                    pass


def _caused_by(exc: BaseException, kinds: tuple[type[BaseException], ...]) -> bool:
    seen: set[int] = set()
    stack: list[Any] = [exc]
    while stack:
        current = stack.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, kinds):
            return True
        if isinstance(current, BaseException):
            stack.extend([current.__cause__, current.__context__, getattr(current, "reason", None), *current.args])
    return False


def _describe(exc: BaseException) -> str:
    """The innermost cause's text: the outer layers repeat the URL, path and query included."""
    current = exc
    for _ in range(8):
        inner = getattr(current, "reason", None)
        if not isinstance(inner, BaseException):
            inner = next((arg for arg in current.args if isinstance(arg, BaseException)), None)
        if inner is None:
            break
        current = inner
    return str(current) or type(current).__name__


def _failure(exc: BaseException, adapter: _PinnedAdapter, deadline: float) -> OutboundError:
    if adapter.aborted or time.monotonic() >= deadline or isinstance(exc, requests.Timeout):
        return OutboundError("TIMEOUT", "no complete answer within the timeout")
    if isinstance(exc, (requests.exceptions.InvalidURL, requests.exceptions.InvalidHeader, ValueError)):
        return _invalid_request(exc)
    if isinstance(exc, requests.exceptions.SSLError):
        # A certificate that does not verify will not verify on the next attempt either.
        verify_failed = _caused_by(exc, (ssl.SSLCertVerificationError, ssl.CertificateError))
        return OutboundError("CONNECTION_ERROR", f"TLS error: {_describe(exc)}", retryable=not verify_failed)
    return OutboundError("CONNECTION_ERROR", f"connection failed: {_describe(exc)}")


def _invalid_request(exc: BaseException) -> OutboundError:
    # Not the exception's text: it quotes the URL or the offending header value, a secret maybe.
    if isinstance(exc, requests.exceptions.InvalidHeader):
        return OutboundError("INVALID_INPUT", "a header name or value is not valid")
    return OutboundError("INVALID_INPUT", "the URL is not valid")


def _read_capped(raw: Any, cap: int, deadline: float) -> tuple[bytes, bool]:
    chunks: list[bytes] = []
    size = 0
    while size <= cap:  # one byte past the cap tells a body of exactly `cap` from a longer one
        if time.monotonic() >= deadline:
            raise TimeoutError
        chunk = raw.read(min(_CHUNK, cap + 1 - size), decode_content=True)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    body = b"".join(chunks)
    return body[:cap], size > cap


def _request_body(json: Any, data: Any, headers: dict[str, str]) -> Any:
    if json is _UNSET:
        return data.encode("utf-8") if isinstance(data, str) else data
    if data is not None:
        raise OutboundError("INVALID_INPUT", "give either a JSON body or a raw body, not both")
    try:
        encoded = jsonlib.dumps(json, allow_nan=False).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise OutboundError("INVALID_INPUT", f"the JSON body cannot be encoded: {exc}") from None
    if not any(name.lower() == "content-type" for name in headers):
        headers["Content-Type"] = "application/json"
    return encoded


def _next_hop(status: int, method: str, body: Any, headers: dict[str, str]) -> tuple[str, Any]:
    """The method and body after a redirect, as browsers do: 303 (and 301/302 after POST) become a GET."""
    if (status == 303 and method != "HEAD") or (status in (301, 302) and method == "POST"):
        for name in [n for n in headers if n.title() in _BODY_HEADERS]:
            del headers[name]
        return "GET", None
    return method, body


def _send_pinned(session: requests.Session, adapter: _PinnedAdapter, prepared: requests.PreparedRequest,
                 allow_private: bool, deadline: float) -> requests.Response:
    addresses = check_destination(prepared.url, allow_private=allow_private)
    host = _target(prepared.url).host
    for index, address in enumerate(addresses):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise OutboundError("TIMEOUT", "no complete answer within the timeout")
        adapter.pin(host, address)
        try:
            return session.send(prepared, stream=True, timeout=(remaining, remaining), allow_redirects=False,
                                verify=True, proxies={})
        except OutboundError:
            raise
        except (requests.RequestException, Urllib3Error, OSError, ValueError) as exc:
            refused = isinstance(exc, requests.ConnectionError) and _caused_by(exc, (NewConnectionError,))
            if refused and not adapter.aborted and index + 1 < len(addresses):
                continue  # nothing was sent: the host's next checked address may answer
            raise _failure(exc, adapter, deadline) from None
    raise AssertionError("check_destination returns at least one address")


def send(method: str, url: str, *, headers: dict[str, str] | None = None, params: Any = None, json: Any = _UNSET,
         data: Any = None, timeout: float = 30.0, allow_private: bool = False, max_body_bytes: int = 1_000_000,
         max_redirects: int = 5) -> OutboundResponse:
    """Send one request through the guard, following redirects; the whole call takes at most `timeout` s."""
    if timeout <= 0 or max_body_bytes < 0 or max_redirects < 0:
        raise OutboundError("INVALID_INPUT", "timeout must be positive, body cap and redirect limit not negative")
    _target(url)
    method = method.upper()
    headers = dict(headers or {})
    body = _request_body(json, data, headers)
    deadline = time.monotonic() + timeout
    adapter = _PinnedAdapter()
    session = requests.Session()
    session.trust_env = False  # no proxies, .netrc or CA bundles from the environment
    session.headers["User-Agent"] = USER_AGENT
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    watchdog = threading.Timer(timeout, adapter.abort)
    watchdog.daemon = True
    watchdog.start()
    try:
        for hop in range(max_redirects + 1):
            try:
                prepared = session.prepare_request(
                    requests.Request(method, url, headers=headers, params=params if hop == 0 else None, data=body))
            except (requests.RequestException, ValueError) as exc:
                raise _invalid_request(exc) from None
            response = _send_pinned(session, adapter, prepared, allow_private, deadline)
            location = session.get_redirect_target(response)
            if not location:
                try:
                    content, truncated = _read_capped(response.raw, max_body_bytes, deadline)
                except (requests.RequestException, Urllib3Error, OSError) as exc:
                    raise _failure(exc, adapter, deadline) from None
                finally:
                    response.close()
                return OutboundResponse(response.status_code, dict(response.headers), content, truncated,
                                        prepared.url)
            response.close()
            if hop == max_redirects:
                raise OutboundError("CONNECTION_ERROR", f"more than {max_redirects} redirects", retryable=False)
            next_url = urljoin(prepared.url, location)
            try:
                _target(next_url)
            except OutboundError as exc:
                raise OutboundError("BLOCKED_DESTINATION", f"redirect refused: {exc.message}") from None
            if session.should_strip_auth(prepared.url, next_url):
                for name in [n for n in headers if n.title() in _ORIGIN_HEADERS]:
                    del headers[name]
            method, body = _next_hop(response.status_code, method, body, headers)
            url = next_url
        raise AssertionError("the loop returns or raises")
    finally:
        watchdog.cancel()
        session.close()
