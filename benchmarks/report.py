"""What a run measured, as ratios and pass/fail targets, in markdown and JSON.

Only ratios between targets of the same run are compared: absolute numbers move with the
machine, its clock and its neighbours; the cost of the router relative to the floor does not.
Every target but the two floors (and nginx) has a baseline it is compared with: the router and
the client candidates with the floor, their TLS twins with the floor over TLS, the router's
variants (metrics off, key limits, a wait queue) with the plain router.
"""

from __future__ import annotations

from dataclasses import dataclass

from benchmarks.wrkparse import WrkResult


@dataclass(frozen=True, slots=True)
class Kind:
    title: str
    baseline: str | None  # the target this one is compared with, in the same scenario


TARGETS = {
    "upstream": Kind("nginx (upstream)", None),
    "floor": Kind("floor proxy (aiohttp client)", None),
    "router": Kind("router", "floor"),
    "router-base": Kind("router of --baseline (vs this one)", "router"),
    "router-nometrics": Kind("router, metrics off", "router"),
    "router-limits": Kind("router, key limits in process", "router"),
    "router-quota-untracked": Kind("router, quota headers ignored", "router"),
    "router-quota": Kind("router, quota headers tracked", "router-quota-untracked"),
    "router-limits-redis": Kind("router, key limits in Redis", "router"),
    "router-queue": Kind("router, wait queue (no contention)", "router"),
    "cand-httptools": Kind("candidate: Protocol + httptools", "floor"),
    "cand-pyreqwest": Kind("candidate: pyreqwest", "floor"),
    "floor-tls": Kind("floor proxy, TLS upstream", None),
    "router-tls": Kind("router, TLS upstream", "floor-tls"),
    "cand-httptools-tls": Kind("candidate: httptools, TLS", "floor-tls"),
    "cand-pyreqwest-tls": Kind("candidate: pyreqwest, TLS", "floor-tls"),
}
# Issue 11's targets, against the naive aiohttp proxy (the floor) of the same run.
MIN_RPS_VS_FLOOR = 1.5  # router req/s at c=64, chat and stream
MAX_P50_VS_FLOOR = 1.0  # router p50 at c=1
MIN_TLS_RPS_VS_FLOOR = 1.3  # router over TLS, req/s at c=64
MIN_METRICS_ON_VS_OFF = 0.95  # router req/s with metrics on, as a share of metrics off
MIN_QUOTA_VS_PLAIN = 0.97  # req/s at c=64 with quota headers tracked vs ignored (issue 13)


@dataclass(frozen=True, slots=True)
class Cell:
    """One target under one scenario: what wrk saw, what the target's CPU spent, its memory."""

    wrk: WrkResult
    cpu_us: float  # the target's user + system CPU time per request, in microseconds
    rss_kib: int = 0  # the target's resident memory right after the measurement

    @property
    def ok(self) -> bool:
        return self.wrk.ok

    def as_dict(self) -> dict[str, float | int | bool]:
        return {
            **self.wrk.as_dict(),
            "cpu_us_per_request": round(self.cpu_us, 1),
            "rss_kib": self.rss_kib,
        }


Results = dict[str, dict[str, Cell]]  # scenario key -> target key -> cell


@dataclass(frozen=True, slots=True)
class Scenario:
    key: str
    title: str
    stream: bool
    connections: int


SCENARIOS = (
    Scenario("chat-c1", "chat JSON, c=1", stream=False, connections=1),
    Scenario("chat-c64", "chat JSON, c=64", stream=False, connections=64),
    Scenario("stream-c64", "chat SSE, c=64", stream=True, connections=64),
)


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    measured: str
    passed: bool


@dataclass(frozen=True, slots=True)
class Ratio:
    """One target against its baseline in one scenario."""

    rps: float  # req/s, target / baseline
    p50: float  # p50 latency, target / baseline
    cpu_us: float  # CPU per request, target - baseline
    rss: float  # resident memory, target / baseline

    def as_dict(self) -> dict[str, float]:
        return {
            "rps": round(self.rps, 3),
            "p50": round(self.p50, 3),
            "cpu_us": round(self.cpu_us, 1),
            "rss": round(self.rss, 3),
        }


def ratio(cells: dict[str, Cell], target: str, baseline: str) -> Ratio:
    over, under = cells[target], cells[baseline]
    return Ratio(
        rps=over.wrk.requests_per_s / under.wrk.requests_per_s,
        p50=over.wrk.p50_ms / under.wrk.p50_ms,
        cpu_us=over.cpu_us - under.cpu_us,
        rss=over.rss_kib / under.rss_kib if under.rss_kib else 0.0,
    )


def compared(results: Results) -> list[tuple[Scenario, str, str, Ratio]]:
    """(scenario, target, baseline, ratio) for every target with a baseline in the run."""
    rows = []
    for scenario in SCENARIOS:
        cells = results.get(scenario.key, {})
        for target in cells:
            baseline = TARGETS[target].baseline
            if baseline is not None and baseline in cells:
                rows.append((scenario, target, baseline, ratio(cells, target, baseline)))
    return rows


def ratios(results: Results) -> dict[str, dict[str, dict[str, float]]]:
    table: dict[str, dict[str, dict[str, float]]] = {}
    for scenario, target, _, row in compared(results):
        table.setdefault(scenario.key, {})[target] = row.as_dict()
    return table


def checks(results: Results) -> list[Check]:
    """Issue 11's targets; a target whose cells had errors is never met."""
    found = []
    for scenario, target, baseline, row in compared(results):
        cells = results[scenario.key]
        valid = cells[target].ok and cells[baseline].ok
        where = f"({scenario.title})"
        if target == "router" and scenario.connections > 1:
            name = f"router req/s >= {MIN_RPS_VS_FLOOR}x floor {where}"
            found.append(Check(name, f"{row.rps:.2f}x", valid and row.rps >= MIN_RPS_VS_FLOOR))
        elif target == "router":
            name = f"router p50 <= {MAX_P50_VS_FLOOR}x floor {where}"
            found.append(Check(name, f"{row.p50:.2f}x", valid and row.p50 <= MAX_P50_VS_FLOOR))
        elif target == "router-tls" and scenario.connections > 1:
            name = f"router req/s >= {MIN_TLS_RPS_VS_FLOOR}x floor over TLS {where}"
            passed = valid and row.rps >= MIN_TLS_RPS_VS_FLOOR
            found.append(Check(name, f"{row.rps:.2f}x", passed))
        elif target == "router-quota" and scenario.connections > 1:
            name = f"quota tracked >= {MIN_QUOTA_VS_PLAIN:.0%} of untracked req/s {where}"
            found.append(Check(name, f"{row.rps:.1%}", valid and row.rps >= MIN_QUOTA_VS_PLAIN))
        elif target == "router-nometrics":
            share = 1 / row.rps  # metrics on (the router) over off
            name = f"metrics on >= {MIN_METRICS_ON_VS_OFF:.0%} of metrics off {where}"
            found.append(Check(name, f"{share:.1%}", valid and share >= MIN_METRICS_ON_VS_OFF))
    return found


def failures(results: Results) -> list[str]:
    """Cells with a non-2xx answer or a socket error: such a run measured nothing valid."""
    return [
        f"{scenario} / {TARGETS[target].title}: {cell.wrk.non_2xx} non-2xx, "
        f"{cell.wrk.socket_errors} socket errors"
        for scenario, cells in results.items()
        for target, cell in cells.items()
        if not cell.ok
    ]


def _ms(value: float) -> str:
    return f"{value:.3f} ms"


def results_table(results: Results) -> list[str]:
    lines = [
        "| Scenario | Target | req/s | p50 | p99 | CPU/request | RSS | errors |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for scenario in SCENARIOS:
        for target, cell in results.get(scenario.key, {}).items():
            run = cell.wrk
            lines.append(
                f"| {scenario.title} | {TARGETS[target].title} | {run.requests_per_s:,.0f} "
                f"| {_ms(run.p50_ms)} | {_ms(run.p99_ms)} | {cell.cpu_us:.0f} us "
                f"| {cell.rss_kib / 1024:.1f} MiB | {run.non_2xx + run.socket_errors} |"
            )
    return lines


def ratios_table(results: Results) -> list[str]:
    lines = [
        "| Scenario | Target | vs | req/s | p50 | CPU/request | RSS |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for scenario, target, baseline, row in compared(results):
        lines.append(
            f"| {scenario.title} | {TARGETS[target].title} | {TARGETS[baseline].title} "
            f"| {row.rps:.2f}x | {row.p50:.2f}x | {row.cpu_us:+.0f} us | {row.rss:.2f}x |"
        )
    return lines


def markdown(results: Results, header: str) -> str:
    lines = [header, "", *results_table(results), "", *ratios_table(results), ""]
    lines += [f"- {'PASS' if c.passed else 'FAIL'} {c.name}: {c.measured}" for c in checks(results)]
    failed = failures(results)
    if failed:
        lines += ["", "**FAILED RUN** (errors during measurement, numbers are not valid):"]
        lines += [f"- {line}" for line in failed]
    return "\n".join(lines) + "\n"
