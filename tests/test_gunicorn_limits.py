"""Requests gunicorn refuses before the app sees them are answered in Lago's error shape."""

from __future__ import annotations

import json
import socket
from urllib.parse import urlsplit

import pytest

pytestmark = pytest.mark.slow


def _exchange(server: str, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send raw bytes, read until the server closes; the status, headers and body."""
    address = urlsplit(server)
    with socket.create_connection((address.hostname, address.port), timeout=10) as sock:
        sock.sendall(request)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
    return int(status_line.split()[1]), headers, body


@pytest.mark.parametrize(
    ("request_bytes", "status", "error", "code"),
    [
        (b"GET /health?" + b"a" * 10_000 + b" HTTP/1.1\r\nHost: tally\r\n\r\n",
         414, "Request-URI Too Long", "request_line_too_long"),
        (b"GET /health HTTP/1.1\r\nHost: tally\r\n" + b"".join(b"X-Header-%d: v\r\n" % n for n in range(200)) + b"\r\n",
         431, "Request Header Fields Too Large", "headers_too_large"),
        (b"GET /health HTTP/1.1\r\nHost: tally\r\nX-Big: " + b"v" * 10_000 + b"\r\n\r\n",
         431, "Request Header Fields Too Large", "headers_too_large"),
        (b"GET /health HTTP/1.1 extra\r\n\r\n", 400, "Bad Request", "bad_request"),
    ],
    ids=["request-line-10kB", "200-headers", "header-10kB", "malformed-request-line"],
)
def test_requests_over_gunicorns_limits_get_a_lago_error_body(
        shared_server: str, request_bytes: bytes, status: int, error: str, code: str) -> None:
    """A too-long request line, too many or too large headers, a malformed line: JSON, gunicorn's status."""
    answered, headers, body = _exchange(shared_server, request_bytes)

    assert answered == status
    assert headers["content-type"] == "application/json"
    assert int(headers["content-length"]) == len(body)
    assert json.loads(body) == {"status": status, "error": error, "code": code}


def test_a_request_within_the_limits_is_served(shared_server: str) -> None:
    """Long but allowed request lines and many headers still reach the app."""
    request = (b"GET /health?" + b"a" * 7_000 + b" HTTP/1.1\r\nHost: tally\r\nConnection: close\r\n"
               + b"".join(b"X-Header-%d: v\r\n" % n for n in range(90)) + b"\r\n")

    answered, headers, body = _exchange(shared_server, request)

    assert answered == 200 and json.loads(body)["message"] == "Success"
