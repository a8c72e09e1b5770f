"""The one guarded way this server downloads a URL that came from outside (a gateway answer, a pasted link).

Why: a server-side GET of somebody else's URL reaches what the server can reach and the requester cannot:
services on loopback, the private network, the cloud metadata endpoint (169.254.169.254). A hostile
gateway or a pasted image link could read them (server-side request forgery), and different error words
for a closed and an open port would turn the fetch into a port scanner. So every such download goes
through `SafeFetcher`, which

- accepts only absolute http(s) URLs with a plain host (`url_problem`), on the first hop and every redirect;
- resolves the host once, refuses loopback, private, link-local, multicast, reserved/unspecified, shared
  (100.64/10) and metadata addresses, including IPv4 hidden in IPv6 (::ffff:…, 6to4, NAT64, Teredo) and odd
  IPv4 spellings (2130706433, 0x7f.1: they are judged by the address they resolve to);
- connects to the very address it checked (no second DNS lookup for a rebinding answer to slip into; TLS
  still verifies the certificate against the host name);
- follows redirects itself, at most `max_redirects`, checking each target again;
- caps the body size, the content type and the total time (a watchdog shuts the socket at the deadline, so
  neither slow headers nor a slow-drip body can hold a thread), and always closes the response.

Trust: the configured gateway's own origin (scheme, host, port) is exempt from the address check, because
the embedded local gateway and test gateways serve their files from 127.0.0.1; only that exact origin, so a
redirect from it to another port or host is checked like any other URL. `file_hosts` (PLAYGROUND_FILE_HOSTS)
narrows the other hosts to an allow-list; `allow_private` exists for tests that must fetch from loopback and
is never set by the app. Callers turn `FetchError` into their own words; `detail` is for the server log.
"""
from __future__ import annotations

import contextlib
import ipaddress
import logging
import re
import socket
import threading
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urljoin, urlsplit

import urllib3
from requests.certs import where as default_ca_bundle  # certifi's bundle, as requests uses
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.exceptions import HTTPError as Urllib3Error

log = logging.getLogger(__name__)

CHUNK = 64 * 1024
MAX_URL_LENGTH = 4096
DEFAULT_MAX_REDIRECTS = 5
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
USER_AGENT = "kling-playground-fetch/1"
_DEFAULT_PORTS = {"http": 80, "https": 443}
_HOST = re.compile(r"^[a-z0-9_](?:[a-z0-9_.-]{0,251}[a-z0-9_])?\.?$")  # a final dot: a fully qualified name
_NETLOC = re.compile(r"^(?:[A-Za-z0-9_.-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]{0,15}):")
# Cloud metadata endpoints named explicitly (most are caught by the ranges as well): AWS/GCP/Azure IPv4,
# AWS IPv6, Alibaba.
METADATA_ADDRESSES = frozenset(ipaddress.ip_address(a) for a in (
    "169.254.169.254", "fd00:ec2::254", "100.100.100.200", "169.254.170.2",
))
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_V4_COMPAT = ipaddress.ip_network("::/96")

Resolver = Callable[[str, int], Sequence[str]]


class FetchError(Exception):
    """Why a download did not happen or stopped.

    code: bad_url (not an absolute http(s) URL, on any hop), blocked (a private/local address, or a host
    outside the allow-list), status (an HTTP status other than 200; see `.status`), too_large, bad_type
    (content type or encoding refused), network (DNS, connect, reset, too many redirects), timeout (the
    total time cap). `detail` may name hosts and addresses: log it, never show it to a visitor.
    """

    def __init__(self, code: str, detail: str, *, status: int | None = None) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail
        self.status = status


# ------------------------------------------------------------------------------------------ URL shape


def url_problem(url: object) -> str | None:
    """Why `url` is not an absolute http(s) URL with a plain host, as words ("is not …"); None when it is.

    Also refuses what parsers disagree about: whitespace or control characters anywhere, non-ASCII text,
    backslashes, and a user name or password before the host (`http://good@evil/`). The words never
    repeat the value itself (it may be long, or a path on this server).
    """
    if not isinstance(url, str):
        return "is not text"
    if not url:
        return "is empty"
    if len(url) > MAX_URL_LENGTH:
        return f"is longer than {MAX_URL_LENGTH} characters"
    if any(not 0x21 <= ord(ch) <= 0x7E for ch in url):
        return "contains spaces, control characters or non-ASCII characters"
    if "\\" in url:
        return "contains a backslash"
    lower = url.lower()
    if not lower.startswith(("http://", "https://")):
        if lower.startswith("//"):
            return "has no scheme: it is not an absolute http(s) web address"
        if lower.startswith(("/", ".", "~")):
            return "is a file path, not an http(s) web address"
        scheme = _SCHEME.match(url)
        if scheme and not lower.startswith(("http:", "https:")):
            return f"is a {scheme.group(1).lower()}: address, not an http(s) web address"
        return "is not an absolute http(s) web address"
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unclosed "[" in the host
        return "is not a well-formed web address"
    if "@" in parts.netloc:
        return "carries a user name or password before the host"
    if not parts.netloc:
        return "has no host name"
    if not _NETLOC.match(parts.netloc):
        return "has a host or port that is not well formed"
    try:
        host, _port = _host_port(parts)
    except ValueError:
        return "has a port that is not a number from 1 to 65535"
    if not host:
        return "has no host name"
    if parts.netloc.startswith("["):
        if not _is_ip_literal(host) or ":" not in host:
            return "has a host in brackets that is not an IPv6 address"
    elif not _HOST.match(host):
        return "has a host name with characters a host name cannot have"
    return None


def _host_port(parts: Any) -> tuple[str, int]:
    """(lower-case host without brackets, port with the scheme's default); ValueError on a bad port."""
    port = parts.port  # raises ValueError when out of range or not a number
    if port == 0:
        raise ValueError("port 0")
    host = (parts.hostname or "").lower()
    return host, port if port is not None else _DEFAULT_PORTS[parts.scheme.lower()]


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def origin_of(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of an http(s) URL: what "the same origin" compares."""
    problem = url_problem(url)
    if problem:
        raise ValueError(f"not an absolute http(s) URL: it {problem}")
    parts = urlsplit(url)
    host, port = _host_port(parts)
    return parts.scheme.lower(), host, port


# ------------------------------------------------------------------------------------------ addresses


def _embedded_v4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries (mapped, compatible, 6to4, NAT64, Teredo client), if any."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if any(ip in net for net in _NAT64):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip in _V4_COMPAT and int(ip) > 1:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def blocked_address(address: str) -> str | None:
    """Why the server must not connect to this IP address (words for the log); None for a public address."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return "is not an IP address"
    if ip in METADATA_ADDRESSES:
        return "is a cloud metadata address"
    if isinstance(ip, ipaddress.IPv6Address):
        inner = _embedded_v4(ip)
        if inner is not None:  # the packets end up at the IPv4 address: judge that one
            why = blocked_address(str(inner))
            return f"carries the IPv4 address {inner}, which {why}" if why else None
        if ip.is_site_local:
            return "is a site-local address"
    for attr, words in (
        ("is_loopback", "is a loopback address"),
        ("is_unspecified", "is the unspecified address"),
        ("is_link_local", "is a link-local address"),
        ("is_multicast", "is a multicast address"),
        ("is_private", "is a private-network address"),
        ("is_reserved", "is a reserved address"),
    ):
        if getattr(ip, attr):
            return words
    if not ip.is_global:
        return "is not a public internet address"
    return None


def system_resolver(host: str, port: int) -> list[str]:
    """Every address the system resolver gives for host (IPv4 spellings like 0x7f.1 become 127.0.0.1)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    out: list[str] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        address = str(sockaddr[0])
        if address not in out:
            out.append(address)
    return out


# ------------------------------------------------------------------------------------------ policy


@dataclass(frozen=True)
class FetchPolicy:
    """What may be fetched. `trusted` are URLs whose origins skip the address check (the gateway's own)."""

    trusted: tuple[str, ...] = ()
    file_hosts: tuple[str, ...] = ()   # empty: any public host; else only these (`*.x.com`: subdomains)
    allow_private: bool = False        # tests only; the app never sets it
    max_redirects: int = DEFAULT_MAX_REDIRECTS
    _origins: frozenset[tuple[str, str, int]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_origins", frozenset(origin_of(u) for u in self.trusted))
        object.__setattr__(self, "file_hosts", tuple(h.lower() for h in self.file_hosts))

    @classmethod
    def for_gateway(cls, base_url: str | None, file_hosts: Sequence[str] = ()) -> FetchPolicy:
        """The archive's policy: the configured gateway's origin is trusted, everything else is checked."""
        return cls(trusted=(base_url,) if base_url else (), file_hosts=tuple(file_hosts))

    def trusts(self, origin: tuple[str, str, int]) -> bool:
        return origin in self._origins

    def host_listed(self, host: str) -> bool:
        """True when there is no allow-list, or host is on it."""
        if not self.file_hosts:
            return True
        for entry in self.file_hosts:
            if entry.startswith("*."):
                if host.endswith(entry[1:]) and len(host) > len(entry) - 1:
                    return True
            elif host == entry:
                return True
        return False


# ------------------------------------------------------------------------------------------ transport


class _Watchdog:
    """Shuts down every socket a fetch opened once its deadline passes (slow headers, slow-drip bodies)."""

    def __init__(self, seconds: float) -> None:
        self.deadline = time.monotonic() + seconds
        self.fired = False
        self._socks: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(max(0.0, seconds), self._fire)
        self._timer.daemon = True
        self._timer.start()

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def watch(self, sock: socket.socket) -> None:
        with self._lock:
            self._socks.append(sock)
            fired = self.fired
        if fired:
            self._shut(sock)

    def _fire(self) -> None:
        with self._lock:
            self.fired = True
            socks = list(self._socks)
        for sock in socks:
            self._shut(sock)

    @staticmethod
    def _shut(sock: socket.socket) -> None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)

    def cancel(self) -> None:
        self._timer.cancel()


_Conn = TypeVar("_Conn", bound=HTTPConnection)


def _watched(base: type[_Conn], watchdog: _Watchdog) -> type[_Conn]:
    """A connection class that hands its raw socket to the watchdog as soon as it exists (before TLS)."""

    class Watched(base):  # type: ignore[valid-type, misc]
        def _new_conn(self) -> socket.socket:
            sock = super()._new_conn()
            watchdog.watch(sock)
            return sock

    return Watched


@dataclass
class Fetched:
    """An open 200 response whose body can be read once, within the caps."""

    url: str                      # the final URL (after redirects)
    status: int
    headers: Any                  # urllib3 HTTPHeaderDict (case-insensitive .get)
    _resp: Any = field(repr=False)
    _max_bytes: int = field(repr=False)
    _watchdog: _Watchdog = field(repr=False)

    @property
    def content_type(self) -> str:
        return _media_type(self.headers)

    def chunks(self, size: int = CHUNK) -> Iterator[bytes]:
        """The body in pieces of `size` bytes (the last may be shorter), gathered from small socket reads so
        the deadline is checked between them; FetchError too_large past the cap, timeout past the deadline."""
        total = 0
        buf = bytearray()
        while True:
            piece = self._read1(size - len(buf))
            if piece:
                total += len(piece)
                if total > self._max_bytes:
                    raise FetchError("too_large", f"the body is larger than {self._max_bytes} bytes")
                buf += piece
                if len(buf) >= size:
                    yield bytes(buf)
                    buf.clear()
                continue
            expected = self.headers.get("Content-Length")
            if expected and expected.strip().isdigit() and int(expected) != total:
                raise FetchError("network", f"the body ended after {total} of {expected} bytes")
            if buf:
                yield bytes(buf)
            return

    def _read1(self, size: int) -> bytes:
        """Whatever one socket read gives (b"" at the end), within the deadline."""
        if self._watchdog.left() <= 0:
            raise FetchError("timeout", "the download took longer than its time cap")
        try:
            piece = self._resp.read1(size)
        except (Urllib3Error, OSError) as exc:
            if self._watchdog.fired:
                raise FetchError("timeout", "the download took longer than its time cap") from None
            raise FetchError("network", f"the download broke off ({type(exc).__name__})") from None
        if not piece and self._watchdog.fired:  # a shut socket reads as a clean end: it was not one
            raise FetchError("timeout", "the download took longer than its time cap")
        return piece

    def read(self) -> bytes:
        """The whole body (at most the cap) as bytes."""
        return b"".join(self.chunks())


def _media_type(headers: Any) -> str:
    return (headers.get("Content-Type") or "").split(";")[0].strip().lower()


def _type_allowed(kind: str, allowed: Collection[str]) -> bool:
    return any(kind.startswith(a) if a.endswith("/") else kind == a for a in allowed)


class SafeFetcher:
    """GETs outside URLs under a FetchPolicy; one instance can serve many threads (it keeps no pool)."""

    def __init__(
        self,
        policy: FetchPolicy | None = None,
        *,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
        total_timeout: float = 300.0,
        resolver: Resolver = system_resolver,
        ca_certs: str | None = None,
    ) -> None:
        self.policy = policy or FetchPolicy()
        self.ca_certs = ca_certs or default_ca_bundle()  # another bundle: a company CA, or a test's own
        self.connect_timeout = float(connect_timeout)
        self.read_timeout = float(read_timeout)
        self.total_timeout = float(total_timeout)
        self.resolver = resolver

    def __repr__(self) -> str:
        return (f"SafeFetcher(policy={self.policy!r}, total_timeout={self.total_timeout:g}, "
                f"read_timeout={self.read_timeout:g})")

    @contextlib.contextmanager
    def open(
        self,
        url: str,
        *,
        max_bytes: int,
        content_types: Collection[str] | None = None,
        total_timeout: float | None = None,
    ) -> Iterator[Fetched]:
        """An open 200 response for `url` (redirects followed and checked); always closed on exit.

        `content_types`: allowed media types; an entry ending in "/" allows a family ("image/"). None
        leaves the check to the caller. A Content-Length over `max_bytes` is refused before the body.
        """
        watchdog = _Watchdog(self.total_timeout if total_timeout is None else float(total_timeout))
        resp: Any = None
        pool: Any = None
        try:
            current = url
            for hop in range(self.policy.max_redirects + 1):
                resp, pool = self._request(current, watchdog)
                if resp.status not in REDIRECT_STATUSES:
                    break
                location = resp.headers.get("Location")
                _close(resp, pool)
                resp = pool = None
                if not location:
                    raise FetchError("network", f"a redirect from {current} named no target")
                current = urljoin(current, location.strip())
                log.info("fetch: redirect %d to %s", hop + 1, _for_log(current))
            else:
                raise FetchError("network", f"more than {self.policy.max_redirects} redirects")
            if resp.status != 200:
                raise FetchError("status", f"HTTP {resp.status} from {_for_log(current)}", status=resp.status)
            encoding = (resp.headers.get("Content-Encoding") or "identity").strip().lower()
            if encoding not in ("", "identity"):
                raise FetchError("bad_type", f"the body is {encoding}-encoded")
            length = resp.headers.get("Content-Length")
            if length and length.strip().isdigit() and int(length) > max_bytes:
                raise FetchError("too_large", f"Content-Length {length} is over {max_bytes}")
            kind = _media_type(resp.headers)
            if content_types is not None and not _type_allowed(kind, content_types):
                raise FetchError("bad_type", f"content type {kind or 'none'!r} is not allowed here")
            yield Fetched(current, resp.status, resp.headers, resp, int(max_bytes), watchdog)
        finally:
            watchdog.cancel()
            _close(resp, pool)

    def _request(self, url: str, watchdog: _Watchdog) -> tuple[Any, Any]:
        """One GET without redirects to an address that passed the policy; returns (response, pool)."""
        problem = url_problem(url)
        if problem:
            raise FetchError("bad_url", f"the URL {problem}")
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        host, port = _host_port(parts)
        trusted = self.policy.trusts((scheme, host, port))
        if not trusted and not self.policy.host_listed(host):
            raise FetchError("blocked", f"{host} is not in the allowed file hosts")
        if watchdog.left() <= 0:
            raise FetchError("timeout", "the time cap ran out before connecting")
        try:
            addresses = list(self.resolver(host, port))
        except (OSError, UnicodeError) as exc:
            raise FetchError("network", f"could not resolve {host} ({type(exc).__name__})") from None
        if not addresses:
            raise FetchError("network", f"{host} resolved to no address")
        if not trusted and not self.policy.allow_private:
            for address in addresses:
                why = blocked_address(address)
                if why:
                    raise FetchError("blocked", f"{host} resolves to {address}, which {why}")
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        default_port = _DEFAULT_PORTS[scheme]
        headers = {
            "Host": host if port == default_port else f"{_bracket(host)}:{port}",
            "User-Agent": USER_AGENT,
            "Accept-Encoding": "identity",
            "Accept": "*/*",
        }
        last: BaseException | None = None
        for address in addresses:
            left = watchdog.left()
            if left <= 0:
                break
            pool = self._pool(scheme, host, address, port, watchdog, left)
            try:
                resp = pool.urlopen("GET", path, headers=headers, redirect=False, retries=False,
                                    preload_content=False, decode_content=False, assert_same_host=False)
            except (Urllib3Error, OSError) as exc:
                pool.close()
                if watchdog.fired:
                    raise FetchError("timeout", "the time cap ran out while connecting") from None
                last = exc
                continue
            return resp, pool
        if watchdog.left() <= 0:
            raise FetchError("timeout", "the time cap ran out while connecting")
        raise FetchError("network", f"could not connect to {host} ({type(last).__name__})")

    def _pool(self, scheme: str, host: str, address: str, port: int, watchdog: _Watchdog,
              left: float) -> Any:
        timeout = urllib3.Timeout(connect=min(self.connect_timeout, left), read=min(self.read_timeout, left))
        pool: urllib3.HTTPConnectionPool
        if scheme == "https":
            pool = urllib3.HTTPSConnectionPool(
                address, port, timeout=timeout, maxsize=1, retries=False,
                cert_reqs="CERT_REQUIRED", ca_certs=self.ca_certs,
                server_hostname=host, assert_hostname=host,
            )
            pool.ConnectionCls = _watched(HTTPSConnection, watchdog)
        else:
            pool = urllib3.HTTPConnectionPool(address, port, timeout=timeout, maxsize=1, retries=False)
            pool.ConnectionCls = _watched(HTTPConnection, watchdog)
        return pool


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _close(resp: Any, pool: Any) -> None:
    if resp is not None:
        with contextlib.suppress(Exception):
            resp.close()
        with contextlib.suppress(Exception):
            resp.release_conn()
    if pool is not None:
        with contextlib.suppress(Exception):
            pool.close()


def _for_log(url: str) -> str:
    """Scheme, host and port only: paths and queries may carry signed tokens."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}/…"


__all__ = [
    "FetchError",
    "FetchPolicy",
    "Fetched",
    "SafeFetcher",
    "blocked_address",
    "origin_of",
    "system_resolver",
    "url_problem",
]
