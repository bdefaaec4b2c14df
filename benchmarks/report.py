"""What a run measured, as ratios and pass/fail targets, in markdown and JSON.

Only ratios between targets of the same run are compared: absolute numbers move with the
machine, its clock and its neighbours; the cost of the router relative to the floor does not.
"""

from __future__ import annotations

from dataclasses import dataclass

from benchmarks.wrkparse import WrkResult

TARGETS = {
    "upstream": "nginx (upstream)",
    "floor": "floor proxy",
    "router": "router",
    "router-nometrics": "router, metrics off",
    "router-limits": "router, key limits in process",
    "router-limits-redis": "router, key limits in Redis",
}
# Variants of the router, each compared with the plain router (metrics on) of the same run.
VARIANTS = ("router-nometrics", "router-limits", "router-limits-redis")
MIN_THROUGHPUT_VS_FLOOR = 0.90  # router req/s at c=64, as a share of the floor's
MAX_P50_OVER_FLOOR = 0.25  # router p50 at c=1, above the floor's
MIN_METRICS_ON_VS_OFF = 0.95  # router req/s with metrics on, as a share of metrics off


@dataclass(frozen=True, slots=True)
class Cell:
    """One target under one scenario: what wrk saw, and what the target's CPU spent."""

    wrk: WrkResult
    cpu_us: float  # the target's user + system CPU time per request, in microseconds

    @property
    def ok(self) -> bool:
        return self.wrk.ok

    def as_dict(self) -> dict[str, float | int | bool]:
        return {**self.wrk.as_dict(), "cpu_us_per_request": round(self.cpu_us, 1)}


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


def rps_ratio(cells: dict[str, Cell], over: str, under: str) -> float:
    return cells[over].wrk.requests_per_s / cells[under].wrk.requests_per_s


def p50_overhead(cells: dict[str, Cell]) -> float:
    """Router p50 over floor p50, as a fraction: 0.12 is +12%."""
    return cells["router"].wrk.p50_ms / cells["floor"].wrk.p50_ms - 1


def ratios(results: Results) -> dict[str, dict[str, float]]:
    table: dict[str, dict[str, float]] = {}
    for key, cells in results.items():
        table[key] = {
            "router/floor rps": rps_ratio(cells, "router", "floor"),
            "router/upstream rps": rps_ratio(cells, "router", "upstream"),
            "floor/upstream rps": rps_ratio(cells, "floor", "upstream"),
            "router p50 over floor": p50_overhead(cells),
            "router extra CPU us/request": cells["router"].cpu_us - cells["floor"].cpu_us,
        }
    return table


def checks(results: Results) -> list[Check]:
    """The DESIGN.md targets; a target whose cells had errors is never met."""
    found = []
    for scenario in SCENARIOS:
        cells = results[scenario.key]
        valid = cells["router"].ok and cells["floor"].ok
        if scenario.connections > 1:
            share = rps_ratio(cells, "router", "floor")
            name = f"router req/s >= {MIN_THROUGHPUT_VS_FLOOR:.0%} of floor ({scenario.title})"
            found.append(Check(name, f"{share:.1%}", valid and share >= MIN_THROUGHPUT_VS_FLOOR))
        else:
            over = p50_overhead(cells)
            name = f"router p50 <= floor p50 +{MAX_P50_OVER_FLOOR:.0%} ({scenario.title})"
            found.append(Check(name, f"{over:+.0%}", valid and over <= MAX_P50_OVER_FLOOR))
    return found + metrics_checks(results)


def metrics_checks(results: Results) -> list[Check]:
    """Metrics on (the plain router) against metrics off, when the run measured both."""
    found = []
    for scenario in SCENARIOS:
        cells = results[scenario.key]
        if "router-nometrics" not in cells:
            continue
        valid = cells["router"].ok and cells["router-nometrics"].ok
        share = rps_ratio(cells, "router", "router-nometrics")
        name = f"metrics on >= {MIN_METRICS_ON_VS_OFF:.0%} of metrics off ({scenario.title})"
        found.append(Check(name, f"{share:.1%}", valid and share >= MIN_METRICS_ON_VS_OFF))
    return found


def failures(results: Results) -> list[str]:
    """Cells with a non-2xx answer or a socket error: such a run measured nothing valid."""
    return [
        f"{scenario} / {TARGETS[target]}: {cell.wrk.non_2xx} non-2xx, "
        f"{cell.wrk.socket_errors} socket errors"
        for scenario, cells in results.items()
        for target, cell in cells.items()
        if not cell.ok
    ]


def _ms(value: float) -> str:
    return f"{value:.3f} ms"


def results_table(results: Results) -> list[str]:
    lines = [
        "| Scenario | Target | req/s | p50 | p99 | CPU/request | errors |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for scenario in SCENARIOS:
        for target, cell in results[scenario.key].items():
            run = cell.wrk
            lines.append(
                f"| {scenario.title} | {TARGETS[target]} | {run.requests_per_s:,.0f} "
                f"| {_ms(run.p50_ms)} | {_ms(run.p99_ms)} | {cell.cpu_us:.0f} us "
                f"| {run.non_2xx + run.socket_errors} |"
            )
    return lines


def ratios_table(results: Results) -> list[str]:
    lines = [
        "| Scenario | router/floor req/s | router/upstream req/s | floor/upstream req/s "
        "| router p50 vs floor | router CPU/request over floor |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    table = ratios(results)
    for scenario in SCENARIOS:
        row = table[scenario.key]
        lines.append(
            f"| {scenario.title} | {row['router/floor rps']:.1%} "
            f"| {row['router/upstream rps']:.1%} | {row['floor/upstream rps']:.1%} "
            f"| {row['router p50 over floor']:+.0%} "
            f"| {row['router extra CPU us/request']:+.0f} us |"
        )
    return lines


def variants_table(results: Results) -> list[str]:
    """What metrics and per-key limits cost, against the plain router of the same run."""
    present = [t for t in VARIANTS if all(t in cells for cells in results.values())]
    if not present:
        return []
    lines = [
        "| Scenario | Target | req/s vs router | CPU/request over router |",
        "|---|---|---:|---:|",
    ]
    for scenario in SCENARIOS:
        cells = results[scenario.key]
        for target in present:
            share = rps_ratio(cells, target, "router")
            extra = cells[target].cpu_us - cells["router"].cpu_us
            lines.append(
                f"| {scenario.title} | {TARGETS[target]} | {share:.1%} | {extra:+.0f} us |"
            )
    return [*lines, ""]


def markdown(results: Results, header: str) -> str:
    lines = [header, "", *results_table(results), "", *ratios_table(results), ""]
    lines += variants_table(results)
    lines += [f"- {'PASS' if c.passed else 'FAIL'} {c.name}: {c.measured}" for c in checks(results)]
    failed = failures(results)
    if failed:
        lines += ["", "**FAILED RUN** (errors during measurement, numbers are not valid):"]
        lines += [f"- {line}" for line in failed]
    return "\n".join(lines) + "\n"
