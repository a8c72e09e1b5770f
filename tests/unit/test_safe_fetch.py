"""lib/safe_fetch under attack: real sockets on 127.0.0.1, a real TLS server, the system resolver.

What each test proves is written as "the attacker gets": the secret service (tests/fixtures/hostile.py)
counts every TCP connection, so "never connected" is measured, not assumed.
"""
from __future__ import annotations

import contextlib
import ssl
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from lib.safe_fetch import FetchError, FetchPolicy, SafeFetcher, blocked_address, origin_of, url_problem
from tests.fixtures.hostile import SECRET, HostileGateway, SecretServer


def fetch(fetcher: SafeFetcher, url: str, **kw: Any) -> bytes:
    kw.setdefault("max_bytes", 2**20)
    with fetcher.open(url, **kw) as resp:
        return resp.read()


def refused(fetcher: SafeFetcher, url: str, **kw: Any) -> FetchError:
    with pytest.raises(FetchError) as info:
        fetch(fetcher, url, **kw)
    return info.value


# ------------------------------------------------------------------ what counts as a URL at all


@pytest.mark.parametrize("url", [
    "/proc/self/environ", "file:///etc/passwd", "data:video/mp4;base64,AAAA", "javascript:alert(1)",
    "ftp://example.com/v.mp4", "gopher://127.0.0.1:6379/_INFO", "videos/v.mp4", "../v.mp4", "//example.com/v",
    "http:///v.mp4", "http://", "https:example.com/v.mp4", " https://example.com/v.mp4",
    "https://example.com/v.mp4\n", "https://exa mple.com/v.mp4", "https://example.com/\x00.mp4",
    "https://user:pw@example.com/v.mp4", "https://example.com@127.0.0.1/v.mp4", "https://example.com\\@evil/",
    "https://example.com:0/v.mp4", "https://example.com:99999/v.mp4", "https://exämple.com/v.mp4",
    "https://%65xample.com/v.mp4", "https://example.com/" + "a" * 5000, "", None, 42,
    "http://[::1/x", "http://[zzz]/", "http://[::1]x/", "http://[v1.x]/", "http://[127.0.0.1]/",
    "http://example.com:/v.mp4", "http://example.com:+80/v.mp4",
])
def test_only_absolute_http_urls_with_a_plain_host_pass(url: Any) -> None:
    assert url_problem(url) is not None
    if isinstance(url, str):
        assert refused(SafeFetcher(FetchPolicy(allow_private=True)), url).code == "bad_url"


@pytest.mark.parametrize("url", [
    "https://example.com/v.mp4", "http://files.example.com:8080/a/b.mp4?sig=abc%20def&x=1#frag",
    "HTTPS://CDN.Example.COM/V.MP4", "http://127.0.0.1:8765/files/videos/x.mp4", "http://[::1]:8765/x",
])
def test_ordinary_links_pass_the_shape_check(url: str) -> None:
    assert url_problem(url) is None


@pytest.mark.parametrize(("address", "blocked"), [
    ("127.0.0.1", True), ("127.255.255.254", True), ("10.1.2.3", True), ("172.16.0.1", True),
    ("192.168.1.1", True), ("169.254.169.254", True), ("169.254.170.2", True), ("100.64.0.1", True),
    ("100.100.100.200", True), ("0.0.0.0", True), ("255.255.255.255", True), ("224.0.0.1", True),
    ("240.0.0.1", True), ("198.18.0.1", True), ("192.0.0.170", True), ("::1", True), ("::", True),
    ("fe80::1", True), ("fd00:ec2::254", True), ("fc00::1", True), ("fec0::1", True), ("ff02::1", True),
    ("::ffff:127.0.0.1", True), ("::ffff:169.254.169.254", True), ("::127.0.0.1", True),
    ("64:ff9b::a9fe:a9fe", True), ("64:ff9b::7f00:1", True), ("2002:7f00:1::", True),
    ("2002:a9fe:a9fe::1", True), ("2001:db8::1", True), ("fe80::1%eth0", True),
    ("8.8.8.8", False), ("1.1.1.1", False), ("93.184.216.34", False), ("2606:4700:4700::1111", False),
    ("64:ff9b::808:808", False), ("::ffff:8.8.8.8", False),
])
def test_address_rules(address: str, blocked: bool) -> None:
    assert (blocked_address(address) is not None) is blocked, blocked_address(address)


# ------------------------------------------------------------------ spellings of loopback, for real


@pytest.mark.parametrize("host", [
    "127.0.0.1", "localhost", "2130706433", "0x7f.1", "0x7f000001", "017700000001", "127.1", "0177.0.0.1",
    "[::ffff:127.0.0.1]", "[::ffff:7f00:1]", "0.0.0.0", "0", "LOCALHOST", "127.000.000.001", "[::1]",
])
def test_every_spelling_of_loopback_is_refused_without_connecting(
    secret_server: SecretServer, host: str
) -> None:
    err = refused(SafeFetcher(), f"http://{host}:{secret_server.port}/admin")
    assert err.code == "blocked", err
    assert secret_server.connections == 0 and secret_server.hits == []


def test_a_name_that_resolves_to_public_and_private_addresses_is_refused(secret_server: SecretServer) -> None:
    mixed = SafeFetcher(resolver=lambda host, port: ["93.184.216.34", "127.0.0.1"])
    assert refused(mixed, f"http://cdn.example.test:{secret_server.port}/v.mp4").code == "blocked"
    assert secret_server.connections == 0


def test_it_connects_to_the_address_it_checked_not_to_a_second_dns_answer(
    secret_server: SecretServer,
) -> None:
    """DNS rebinding: the first answer is checked and used; a later, different answer is never asked for.

    127.0.0.2 has no server (the secret service binds 127.0.0.1 only), so a fetcher that resolved again
    before connecting would fail; allow_private stands in for "both answers are public".
    """
    answers = iter([["127.0.0.1"], ["127.0.0.2"], ["127.0.0.2"]])
    calls: list[str] = []

    def rebinding(host: str, port: int) -> list[str]:
        calls.append(host)
        return next(answers)

    fetcher = SafeFetcher(FetchPolicy(allow_private=True), resolver=rebinding)
    body = fetch(fetcher, f"http://rebind.example.test:{secret_server.port}/page")
    assert SECRET.encode() in body and calls == ["rebind.example.test"]


# ------------------------------------------------------------------ trust: exactly the gateway's origin


def test_trust_covers_the_gateway_origin_only(
    hostile_gateway: HostileGateway, secret_server: SecretServer
) -> None:
    fetcher = SafeFetcher(FetchPolicy.for_gateway(hostile_gateway.url))
    assert fetch(fetcher, hostile_gateway.url + "/files/ok.mp4")[4:8] == b"ftyp"
    assert fetch(fetcher, hostile_gateway.url + "/files/to-self")[4:8] == b"ftyp"  # same-origin redirect
    for url in (hostile_gateway.url + "/files/to-secret", hostile_gateway.url + "/files/to-secret-decimal",
                secret_server.url + "/admin", hostile_gateway.url.replace("127.0.0.1", "localhost") + "/x"):
        assert refused(fetcher, url).code == "blocked", url
    assert refused(fetcher, hostile_gateway.url + "/files/to-file").code == "bad_url"
    assert secret_server.connections == 0
    port = int(hostile_gateway.url.rsplit(":", 1)[1])
    assert origin_of(hostile_gateway.url + "/") == ("http", "127.0.0.1", port)


def test_the_allow_list_limits_every_host_but_the_gateway(secret_server: SecretServer) -> None:
    lookups: list[str] = []

    def resolver(host: str, port: int) -> list[str]:
        lookups.append(host)
        return ["127.0.0.1"]

    policy = FetchPolicy(file_hosts=("files.example.test", "*.cdn.example.test"), allow_private=True)
    fetcher = SafeFetcher(policy, resolver=resolver)
    port = secret_server.port
    assert SECRET.encode() in fetch(fetcher, f"http://files.example.test:{port}/a")
    assert SECRET.encode() in fetch(fetcher, f"http://eu.cdn.example.test:{port}/a")
    for host in ("other.example.test", "cdn.example.test", "files.example.test.evil.test",
                 "xcdn.example.test"):
        assert refused(fetcher, f"http://{host}:{port}/a").code == "blocked", host
    assert lookups == ["files.example.test", "eu.cdn.example.test"]  # refused names are not even resolved


# ------------------------------------------------------------------ redirects, sizes, types, time


class _Odd(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    hits: ClassVar[list[str]] = []

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        type(self).hits.append(self.path)
        if self.path.startswith("/loop"):
            n = int(self.path[5:] or 0)
            self.send_response(302)
            self.send_header("Location", f"/loop{n + 1}")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif self.path == "/html":
            body = b"<html>login</html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        elif self.path == "/short":  # promises 1000 bytes, sends 10 and hangs up
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.write(b"\x89PNG\r\n\x1a\n..")
            self.close_connection = True
        else:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()


@pytest.fixture
def odd() -> Iterator[str]:
    _Odd.hits = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Odd)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_redirects_are_capped(odd: str) -> None:
    err = refused(SafeFetcher(FetchPolicy(trusted=(odd,), max_redirects=3)), odd + "/loop0")
    assert err.code == "network" and "redirects" in err.detail
    assert _Odd.hits == ["/loop0", "/loop1", "/loop2", "/loop3"]


def test_status_type_and_truncation(odd: str) -> None:
    fetcher = SafeFetcher(FetchPolicy(trusted=(odd,)))
    err = refused(fetcher, odd + "/nothing")
    assert err.code == "status" and err.status == 404
    assert refused(fetcher, odd + "/html", content_types=("image/",)).code == "bad_type"
    assert fetch(fetcher, odd + "/html", content_types=("text/html",)) == b"<html>login</html>"
    assert refused(fetcher, odd + "/short").code == "network"  # a body cut short is not a whole file


def test_slow_headers_are_cut_at_the_total_time_cap(secret_server: SecretServer) -> None:
    """A server that accepts and then sends its status line one byte a second: only the watchdog ends it."""
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    port = listener.getsockname()[1]
    stop = threading.Event()

    def drip() -> None:
        conn, _ = listener.accept()
        with conn, contextlib.suppress(OSError):
            for ch in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 100:
                if stop.is_set():
                    return
                conn.sendall(bytes([ch]))
                time.sleep(0.5)

    thread = threading.Thread(target=drip, daemon=True)
    thread.start()
    fetcher = SafeFetcher(FetchPolicy(trusted=(f"http://127.0.0.1:{port}",)), read_timeout=1.0)
    started = time.monotonic()
    err = refused(fetcher, f"http://127.0.0.1:{port}/", total_timeout=2.0)
    took = time.monotonic() - started
    stop.set()
    listener.close()
    # the 2 s total bound, not the drip's 50 s (with room for a loaded machine)
    assert err.code == "timeout" and took < 4.0, (err, took)


# ------------------------------------------------------------------ TLS to a pinned address


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[str, int, Any]]:
    """HTTPS on 127.0.0.1 with a certificate for files.example.test from a throwaway CA (trustme)."""
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("files.example.test")
    ca_path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_path))
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(ctx)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Odd)
    server.daemon_threads = True
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    _Odd.hits = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield str(ca_path), int(server.server_address[1]), server
    server.shutdown()
    server.server_close()


def test_tls_is_verified_against_the_host_name_while_connecting_to_the_checked_address(
    tls_server: tuple[str, int, Any]
) -> None:
    ca_path, port, _server = tls_server
    fetcher = SafeFetcher(FetchPolicy(allow_private=True), ca_certs=ca_path,
                          resolver=lambda host, p: ["127.0.0.1"])
    assert fetch(fetcher, f"https://files.example.test:{port}/html") == b"<html>login</html>"
    # the same address under another name: the certificate does not match, nothing is read
    err = refused(fetcher, f"https://other.example.test:{port}/html")
    assert err.code == "network"
    # and the system's CA bundle does not know the throwaway CA
    strict = SafeFetcher(FetchPolicy(allow_private=True), resolver=lambda host, p: ["127.0.0.1"])
    assert refused(strict, f"https://files.example.test:{port}/html").code == "network"
    assert _Odd.hits == ["/html"]
