"""The core.http action against a real HTTP server on loopback, through the outbound guard."""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from chalicelib import __version__, outbound
from chalicelib.actions.errors import ActionError
from chalicelib.actions.http import http_request

KEY = "ex_abcdefghijklmnopqrstuvwx:fetch:1"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _answer(self, status, body=b"", content_type="text/plain; charset=utf-8", headers=()):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _route(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.server.received.append({"method": self.command, "path": self.path, "headers": dict(self.headers.items()),
                                     "body": body})
        parts = urlsplit(self.path)
        route, query = parts.path, parse_qs(parts.query)
        if route == "/json":
            self._answer(200, json.dumps({"ok": True, "items": [1, 2]}).encode(), "application/json")
        elif route == "/problem":
            self._answer(200, b'{"title": "x"}', "application/problem+json; charset=utf-8")
        elif route == "/bad-json":
            self._answer(200, b"{not json", "application/json")
        elif route == "/text":
            self._answer(200, "caf\xe9 ok".encode("latin-1"), "text/plain; charset=iso-8859-1")
        elif route.startswith("/status/"):
            status = int(route.rsplit("/", 1)[1])
            self._answer(status, json.dumps({"error": f"status {status}"}).encode(), "application/json")
        elif route == "/redirect":
            self._answer(int(query.get("status", ["302"])[0]), headers=[("Location", query["to"][0])])
        elif route == "/loop":
            self._answer(302, headers=[("Location", "/loop")])
        elif route == "/slow":
            time.sleep(1.0)
            self._answer(200, b"late")
        elif route in ("/drip-headers", "/drip-body"):
            self._drip(route == "/drip-headers")
        elif route == "/big":
            self._answer(200, b"x" * 10_000)
        else:
            self._answer(200, b"ok")

    def _drip(self, in_headers):
        """A byte every 0.1 s for 1.5 s: each read is quick, the whole answer is not."""
        head = b"HTTP/1.1 200 OK\r\nContent-Length: 15\r\nX-Padding: " + b"p" * 15 + b"\r\n\r\n"
        dripped = head if in_headers else b"d" * 15
        if not in_headers:
            self.wfile.write(head)
        for byte in dripped:
            self.wfile.write(bytes([byte]))
            self.wfile.flush()
            time.sleep(0.1)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _route


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # a client that gave up (timeout, truncation) is expected here


@pytest.fixture
def server():
    httpd = _Server(("127.0.0.1", 0), _Handler)
    httpd.received = []
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    httpd.port = httpd.server_address[1]
    httpd.url = lambda path: f"http://127.0.0.1:{httpd.port}{path}"
    yield httpd
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def connections(monkeypatch):
    """Every address a socket connects to during the test (a spy on the real connect)."""
    seen: list[str] = []
    real_connect = socket.socket.connect

    def connect(self, address):
        seen.append(address[0])
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    return seen


def run(input, *, timeout=5.0, allow_private=True):
    return http_request(input, idempotency_key=KEY, timeout=timeout, allow_private=allow_private)


def failure(input, **kwargs) -> ActionError:
    with pytest.raises(ActionError) as caught:
        run(input, **kwargs)
    return caught.value


def test_get_with_query_sends_the_idempotency_key(server):
    result = run({"url": server.url("/json"), "query": {"a": "1", "b": "x y", "on": True, "ids": [1, 2]}})
    assert result["status_code"] == 200
    assert result["body"] == {"ok": True, "items": [1, 2]}
    assert result["headers"]["content-type"] == "application/json"
    (request,) = server.received
    assert request["method"] == "GET"
    assert parse_qs(urlsplit(request["path"]).query) == {"a": ["1"], "b": ["x y"], "on": ["true"], "ids": ["1", "2"]}
    assert request["headers"]["Idempotency-Key"] == KEY
    assert request["headers"]["User-Agent"] == f"Sluice/{__version__}"
    assert request["headers"]["Host"] == f"127.0.0.1:{server.port}"


def test_user_headers_win(server):
    run({"url": server.url("/"), "headers": {"idempotency-key": "mine", "User-Agent": "custom/1"}})
    headers = server.received[0]["headers"]
    assert headers["idempotency-key"] == "mine"
    assert headers["User-Agent"] == "custom/1"


def test_post_json(server):
    run({"url": server.url("/json"), "method": "POST", "json": {"name": "caf\u00e9", "n": [1, None]}})
    (request,) = server.received
    assert request["method"] == "POST"
    assert request["headers"]["Content-Type"] == "application/json"
    assert json.loads(request["body"]) == {"name": "caf\u00e9", "n": [1, None]}


def test_string_body_is_sent_as_is(server):
    run({"url": server.url("/"), "method": "PUT", "body": "line one\nd\u00e9j\u00e0 vu"})
    (request,) = server.received
    assert request["body"] == "line one\nd\u00e9j\u00e0 vu".encode("utf-8")
    assert request["headers"]["Content-Type"] == "text/plain; charset=utf-8"


def test_object_body_is_sent_as_json(server):
    run({"url": server.url("/"), "method": "PATCH", "body": {"a": 1}})
    (request,) = server.received
    assert request["headers"]["Content-Type"] == "application/json"
    assert json.loads(request["body"]) == {"a": 1}


def test_response_bodies(server):
    assert run({"url": server.url("/problem")})["body"] == {"title": "x"}
    assert run({"url": server.url("/bad-json")})["body"] == "{not json"
    text = run({"url": server.url("/text")})
    assert text["body"] == "caf\u00e9 ok"
    assert text["headers"]["content-type"] == "text/plain; charset=iso-8859-1"
    assert run({"url": server.url("/"), "method": "HEAD"})["body"] == ""


def test_5xx_is_retryable(server):
    error = failure({"url": server.url("/status/500")})
    assert (error.code, error.retryable) == ("HTTP_5XX", True)
    assert error.details == {"status_code": 500, "body": {"error": "status 500"}}
    assert error.message == "GET to 127.0.0.1 answered 500"


def test_4xx_is_not_retryable(server):
    error = failure({"url": server.url("/status/404?token=secret")})
    assert (error.code, error.retryable) == ("HTTP_4XX", False)
    assert error.details == {"status_code": 404, "body": {"error": "status 404"}}
    assert "secret" not in error.message


@pytest.mark.parametrize("status", [408, 429])
def test_408_and_429_are_retryable(server, status):
    error = failure({"url": server.url(f"/status/{status}")})
    assert (error.code, error.retryable, error.details["status_code"]) == ("HTTP_4XX", True, status)


def test_redirect_on_loopback_is_followed(server):
    result = run({"url": server.url(f"/redirect?to={server.url('/json')}")})
    assert result["body"] == {"ok": True, "items": [1, 2]}
    assert [r["path"] for r in server.received] == [f"/redirect?to={server.url('/json')}", "/json"]


def test_303_turns_a_post_into_a_get_and_307_keeps_it(server):
    run({"url": server.url("/redirect?status=303&to=/json"), "method": "POST", "json": {"a": 1}})
    assert [(r["method"], r["body"]) for r in server.received] == [("POST", b'{"a": 1}'), ("GET", b"")]
    assert "Content-Type" not in server.received[1]["headers"]
    server.received.clear()
    run({"url": server.url("/redirect?status=307&to=/json"), "method": "POST", "json": {"a": 1}})
    assert [(r["method"], r["body"]) for r in server.received] == [("POST", b'{"a": 1}'), ("POST", b'{"a": 1}')]


def test_redirect_to_metadata_is_blocked(server, connections):
    error = failure({"url": server.url("/redirect?to=http://169.254.169.254/latest/meta-data/")})
    assert (error.code, error.retryable) == ("BLOCKED_DESTINATION", False)
    assert connections == ["127.0.0.1"]
    assert len(server.received) == 1


@pytest.mark.parametrize("url", ["http://[fe80::1]/", "http://169.254.169.254/latest/meta-data/",
                                 "http://[::ffff:169.254.169.254]/"])
def test_link_local_is_refused_at_once_even_when_private_is_allowed(url, connections):
    started = time.monotonic()
    error = failure({"url": url}, allow_private=True)
    assert time.monotonic() - started < 1.0
    assert (error.code, error.retryable) == ("BLOCKED_DESTINATION", False)
    assert connections == []


def test_loopback_is_refused_without_private_networks(server, connections):
    error = failure({"url": server.url("/")}, allow_private=False)
    assert (error.code, error.retryable) == ("BLOCKED_DESTINATION", False)
    assert connections == [] and server.received == []


def test_non_http_scheme_is_invalid_input():
    error = failure({"url": "file:///etc/passwd"})
    assert (error.code, error.retryable) == ("INVALID_INPUT", False)


def test_slow_server_times_out(server):
    started = time.monotonic()
    error = failure({"url": server.url("/slow")}, timeout=0.5)
    assert time.monotonic() - started < 0.9
    assert (error.code, error.retryable) == ("TIMEOUT", True)


@pytest.mark.parametrize("path", ["/drip-headers", "/drip-body"])
def test_timeout_bounds_the_whole_call_not_each_read(server, path):
    started = time.monotonic()
    error = failure({"url": server.url(path)}, timeout=0.5)
    assert time.monotonic() - started < 0.9
    assert (error.code, error.retryable) == ("TIMEOUT", True)


def test_input_timeout_cannot_exceed_the_step_timeout(server):
    error = failure({"url": server.url("/slow"), "timeout": 30}, timeout=0.5)
    assert error.code == "TIMEOUT"
    error = failure({"url": server.url("/slow"), "timeout": 0.3}, timeout=5)
    assert error.code == "TIMEOUT"


def test_body_over_the_cap_is_truncated(server):
    response = outbound.send("GET", server.url("/big"), allow_private=True, max_body_bytes=1000)
    assert (len(response.body), response.truncated) == (1000, True)
    exact = outbound.send("GET", server.url("/big"), allow_private=True, max_body_bytes=10_000)
    assert (len(exact.body), exact.truncated) == (10_000, False)


def test_connection_goes_to_the_checked_address_with_the_original_host(server, monkeypatch):
    lookups: list[str] = []
    real = outbound.getaddrinfo

    def resolve(host, port, *args, **kwargs):
        lookups.append(host)
        if host == "service.test":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(outbound, "getaddrinfo", resolve)
    result = run({"url": f"http://service.test:{server.port}/json"})
    assert result["body"] == {"ok": True, "items": [1, 2]}
    assert server.received[0]["headers"]["Host"] == f"service.test:{server.port}"
    # Resolved once, by the guard; the socket layer's own resolver was never asked about the name.
    assert lookups == ["service.test"]


def test_redirect_loop_is_an_error(server):
    error = failure({"url": server.url("/loop")})
    assert (error.code, error.retryable) == ("CONNECTION_ERROR", False)
    assert error.message == "more than 5 redirects"
    assert len(server.received) == 6


def test_connection_refused_is_retryable():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    error = failure({"url": f"http://127.0.0.1:{port}/"})
    assert (error.code, error.retryable) == ("CONNECTION_ERROR", True)


def test_errors_do_not_quote_the_url_or_header_values(server):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    refused = failure({"url": f"http://127.0.0.1:{port}/hooks/T0/B0/s3cr3t?token=s3cr3t"})
    assert refused.message.startswith("connection failed: ")
    assert "s3cr3t" not in refused.message
    bad_header = failure({"url": server.url("/"), "headers": {"Authorization": "Bearer s3cr3t\n"}})
    assert (bad_header.code, bad_header.message) == ("INVALID_INPUT", "a header name or value is not valid")
    bad_url = failure({"url": "http://exa mple.test:80:80/s3cr3t"})
    assert bad_url.code == "INVALID_INPUT" and "s3cr3t" not in bad_url.message


def _fake_dns(monkeypatch, answers: dict[str, list[str]]) -> None:
    real = outbound.getaddrinfo

    def resolve(host, port, *args, **kwargs):
        if host in answers:
            return [(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "",
                     (a, port, 0, 0) if ":" in a else (a, port)) for a in answers[host]]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(outbound, "getaddrinfo", resolve)


def test_next_checked_address_is_tried_when_one_refuses(server, monkeypatch, connections):
    _fake_dns(monkeypatch, {"dual.test": ["::1", "127.0.0.1"]})
    assert run({"url": f"http://dual.test:{server.port}/json"})["status_code"] == 200
    assert connections == ["::1", "127.0.0.1"]


def test_credentials_do_not_follow_a_redirect_to_another_host(server, monkeypatch):
    _fake_dns(monkeypatch, {"other.test": ["127.0.0.1"]})
    target = f"http://other.test:{server.port}/json"
    run({"url": server.url(f"/redirect?to={target}"), "headers": {"Authorization": "Bearer k", "X-Trace": "t"}})
    first, second = (r["headers"] for r in server.received)
    assert first["Authorization"] == "Bearer k"
    assert "Authorization" not in second
    assert (second["X-Trace"], second["Idempotency-Key"], second["Host"]) == ("t", KEY, f"other.test:{server.port}")
