"""What the upstream HTTP client raises: one small tree, mapped to router errors in one place.

::

    HttpClientError
     ├── ConnectError          no connection: DNS, refused, TLS handshake, proxy CONNECT refused
     │    └── ConnectTimeout   (also a TimeoutError) no connection in time, pool wait included
     ├── DisconnectedError     the peer closed or reset before the response head was complete
     ├── ProtocolError         the peer's bytes are not HTTP/1.1 (a malformed head)
     ├── BrokenBodyError       the body was cut (mid-chunk, before Content-Length) or malformed
     └── ReadTimeout           (also a TimeoutError) first byte, idle gap or total time passed

``router/upstream/errors.py::from_exception`` turns these into the router's upstream error tree;
nothing else in the router looks at them. Messages never carry a credential or a proxy URL.
"""

from __future__ import annotations


class HttpClientError(Exception):
    """Any failure of an upstream HTTP exchange."""


class ConnectError(HttpClientError):
    """No connection could be made (DNS, TCP, TLS, or the egress proxy refused)."""


class ConnectTimeout(ConnectError, TimeoutError):
    """No connection within the connect timeout (waiting for a pool slot included)."""


class DisconnectedError(HttpClientError):
    """The peer closed the connection before the response head was complete.

    ``received`` says whether any response byte had arrived: with none, on a reused
    connection, the request may be sent again on a fresh one (Go net/http's rule)."""

    def __init__(self, message: str, *, received: bool) -> None:
        super().__init__(message)
        self.received = received


class ProtocolError(HttpClientError):
    """The response head is not valid HTTP/1.1."""


class BrokenBodyError(HttpClientError):
    """The response body ended early or is malformed."""


class ReadTimeout(HttpClientError, TimeoutError):
    """The upstream was silent too long (first byte, between stream events) or took too long
    in total."""
