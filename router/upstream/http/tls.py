"""TLS for upstream connections: verified by default, SNI always, sessions resumed.

The context verifies against the system store (what ``ssl.create_default_context()`` loads),
or against ``ca_file``; ``verify=False`` turns verification off (the caller warns at start).

Neither asyncio's nor uvloop's ``create_connection``/``start_tls`` takes a TLS session to
resume, but both build the connection's ``SSLObject`` through ``context.wrap_bio(...)``. So
:class:`ResumingContext` overrides ``wrap_bio`` to offer the last session seen for that server
name, and the connection hands its session back when it is done with a response (after the
first answer, when a TLS 1.3 server's tickets have surely arrived). A resumed handshake skips
the certificate exchange and verification: less CPU on both ends, one round trip less with
TLS 1.2. curl and Go's ``tls.ClientSessionCache`` do the same.
"""

from __future__ import annotations

import ssl
from typing import Any


class ResumingContext(ssl.SSLContext):
    """A client context that resumes the last TLS session of each server name."""

    _sessions: dict[str, ssl.SSLSession]

    def wrap_bio(
        self,
        incoming: ssl.MemoryBIO,
        outgoing: ssl.MemoryBIO,
        server_side: bool = False,
        server_hostname: str | bytes | None = None,
        session: ssl.SSLSession | None = None,
    ) -> ssl.SSLObject:
        if session is None and isinstance(server_hostname, str):
            session = self.sessions.get(server_hostname)
        return super().wrap_bio(incoming, outgoing, server_side, server_hostname, session)

    @property
    def sessions(self) -> dict[str, ssl.SSLSession]:
        try:
            return self._sessions
        except AttributeError:  # SSLContext is built by __new__; no __init__ to hook
            self._sessions = {}
            return self._sessions

    def keep_session(self, server_hostname: str, ssl_object: Any) -> None:
        """Remember ``ssl_object``'s session (a ``transport.get_extra_info('ssl_object')``)."""
        session = getattr(ssl_object, "session", None)
        if session is not None:
            self.sessions[server_hostname] = session


def client_context(*, ca_file: str | None = None, verify: bool = True) -> ResumingContext:
    """The TLS context of one backend (what ``ssl.create_default_context()`` builds, plus
    session resumption)."""
    context = ResumingContext(ssl.PROTOCOL_TLS_CLIENT)  # check_hostname and CERT_REQUIRED
    if ca_file is not None:
        context.load_verify_locations(cafile=ca_file)
    else:
        context.load_default_certs(ssl.Purpose.SERVER_AUTH)
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["http/1.1"])
    return context
