"""Read the numbers out of wrk's text output (wrk 4, run with ``--latency``)."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

# wrk prints durations with the unit that keeps the number short: 16.00us, 1.24ms, 1.10s, 2.00m.
_TIME_UNITS_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}
_TIME = r"([\d.]+)(us|ms|s|m|h)"
_RPS = re.compile(r"^Requests/sec:\s+([\d.]+)\s*$", re.MULTILINE)
_TOTAL = re.compile(r"^\s*(\d+) requests in " + _TIME, re.MULTILINE)
_NON_2XX = re.compile(r"^\s*Non-2xx or 3xx responses:\s+(\d+)", re.MULTILINE)
_SOCKET = re.compile(
    r"^\s*Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", re.MULTILINE
)


class WrkParseError(ValueError):
    """The text is not a complete wrk report (wrk failed, or was run without ``--latency``)."""


@dataclass(frozen=True, slots=True)
class WrkResult:
    requests_per_s: float
    requests: int
    duration_s: float
    p50_ms: float
    p75_ms: float
    p90_ms: float
    p99_ms: float
    non_2xx: int = 0
    socket_errors: int = 0

    @property
    def ok(self) -> bool:
        """Every response was 2xx/3xx and no socket failed."""
        return self.non_2xx == 0 and self.socket_errors == 0

    def as_dict(self) -> dict[str, float | int | bool]:
        return {**asdict(self), "ok": self.ok}


def to_ms(value: str, unit: str) -> float:
    """A wrk duration as milliseconds: ``to_ms("250.00", "us") == 0.25``."""
    try:
        return float(value) * _TIME_UNITS_MS[unit]
    except KeyError:
        raise WrkParseError(f"unknown time unit {unit!r}") from None


def percentile_ms(text: str, percent: int) -> float:
    """One line of the "Latency Distribution" block, e.g. ``     99%    1.24ms``."""
    match = re.search(rf"^\s*{percent}%\s+{_TIME}\s*$", text, re.MULTILINE)
    if match is None:
        raise WrkParseError(f"no {percent}% latency line (was wrk run with --latency?)")
    return to_ms(match[1], match[2])


def parse(text: str) -> WrkResult:
    """The summary of one wrk run; raises :class:`WrkParseError` if a number is missing."""
    rps, total = _RPS.search(text), _TOTAL.search(text)
    if rps is None or total is None:
        raise WrkParseError("no 'Requests/sec' or 'N requests in' line: wrk did not finish")
    non_2xx = _NON_2XX.search(text)
    sockets = _SOCKET.search(text)
    return WrkResult(
        requests_per_s=float(rps[1]),
        requests=int(total[1]),
        duration_s=to_ms(total[2], total[3]) / 1e3,
        p50_ms=percentile_ms(text, 50),
        p75_ms=percentile_ms(text, 75),
        p90_ms=percentile_ms(text, 90),
        p99_ms=percentile_ms(text, 99),
        non_2xx=int(non_2xx[1]) if non_2xx else 0,
        socket_errors=sum(int(n) for n in sockets.groups()) if sockets else 0,
    )
