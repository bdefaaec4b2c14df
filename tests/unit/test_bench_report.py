"""benchmarks.report and benchmarks.profile: ratios to each target's baseline, issue 11's
targets, the --streams verdicts, and charging profile samples to router steps."""

from __future__ import annotations

from benchmarks import profile, report, streams
from benchmarks.report import Cell, Results
from benchmarks.wrkparse import WrkResult


def cell(rps: float, p50: float, cpu: float, rss: int = 40_000, non_2xx: int = 0) -> Cell:
    run = WrkResult(rps, int(rps * 10), 10.0, p50, p50, p50, p50 * 3, non_2xx=non_2xx)
    return Cell(run, cpu_us=cpu, rss_kib=rss)


def results(router_rps: float, router_p50: float, tls_rps: float, errors: int = 0) -> Results:
    def scenario(c1: bool) -> dict[str, Cell]:
        return {
            "upstream": cell(80_000, 0.02, 6),
            "floor": cell(5_000, 0.30, 180),
            "router": cell(router_rps, router_p50 if c1 else 10.0, 100, 60_000, errors),
            "router-nometrics": cell(router_rps * 1.02, 0.3, 98),
            "floor-tls": cell(4_000, 0.40, 230),
            "router-tls": cell(tls_rps, 0.40, 150),
        }

    return {"chat-c1": scenario(True), "chat-c64": scenario(False), "stream-c64": scenario(False)}


def verdicts(found: Results) -> dict[str, bool]:
    return {check.name: check.passed for check in report.checks(found)}


def test_ratios_are_to_each_targets_baseline() -> None:
    table = report.ratios(results(8_000, 0.27, 6_000))["chat-c64"]
    assert table["router"] == {"rps": 1.6, "p50": 33.333, "cpu_us": -80.0, "rss": 1.5}
    assert table["router-tls"]["rps"] == 1.5  # against the floor over TLS, not the plain floor
    assert round(table["router-nometrics"]["rps"], 2) == 1.02  # against the router
    assert "upstream" not in table
    assert "floor" not in table


def test_issue_11_targets_pass_and_fail_at_their_thresholds() -> None:
    passing = verdicts(results(7_500, 0.30, 5_200))
    assert passing == {
        "router p50 <= 1.0x floor (chat JSON, c=1)": True,
        "router req/s >= 1.5x floor (chat JSON, c=64)": True,
        "router req/s >= 1.3x floor over TLS (chat JSON, c=64)": True,
        "router req/s >= 1.5x floor (chat SSE, c=64)": True,
        "router req/s >= 1.3x floor over TLS (chat SSE, c=64)": True,
        "metrics on >= 95% of metrics off (chat JSON, c=1)": True,
        "metrics on >= 95% of metrics off (chat JSON, c=64)": True,
        "metrics on >= 95% of metrics off (chat SSE, c=64)": True,
    }
    failing = verdicts(results(7_400, 0.31, 5_100))
    assert not any(passed for name, passed in failing.items() if "router" in name)


def test_a_cell_with_errors_meets_no_target_and_fails_the_run() -> None:
    found = results(9_000, 0.2, 9_000, errors=3)  # the plain router's cells had errors
    plain = {name: passed for name, passed in verdicts(found).items() if "floor (" in name}
    assert len(plain) == 3
    assert not any(plain.values())
    assert len(report.failures(found)) == 3
    assert "FAILED RUN" in report.markdown(found, "header")


def test_markdown_lists_every_target_and_ratio() -> None:
    text = report.markdown(results(8_000, 0.27, 6_000), "header")
    assert "| chat SSE, c=64 | router, TLS upstream | floor proxy, TLS upstream | 1.50x |" in text
    assert "58.6 MiB" in text  # the router's RSS (60,000 KiB)


def test_streams_per_open_stream_and_verdicts() -> None:
    idle = 50 * 1024
    result = streams.StreamsResult(10_000, idle, idle + 250_000, 20.0, 10_000, 10_000, [])
    assert result.per_stream_kib == 25.0
    assert result.ok
    text = streams.markdown(result, "header")
    assert "- PASS RSS per open stream <= 30 KiB: 25.0 KiB" in text
    assert "- PASS idle RSS <= 60 MiB: 50.0 MiB" in text
    broken = streams.StreamsResult(10, 70 * 1024, 71 * 1024, 1.0, 10, 9, ["connection lost"])
    assert not broken.ok
    assert "- FAIL idle RSS" in streams.markdown(broken, "header")


# Collapsed stacks as py-spy's --format raw writes them (paths shortened).
LOOP = "_run_once (uvloop/loop.pyx:1);handle (/r/router/edge.py:70)"
RAW = "\n".join(
    [
        f"{LOOP};proxy (/r/router/handlers/proxy.py:50)"
        ";authenticate (/r/router/handlers/common.py:36)"
        ";principal (/r/router/auth/principals.py:33) 7",
        f"{LOOP};_forward (/r/router/handlers/proxy.py:99)"
        ";forward (/r/router/upstream/forward.py:110);_request (/v/aiohttp/client.py:500) 20",
        f"{LOOP};_done (/r/router/edge.py:95);log_access (/r/router/logs.py:150)"
        ";dumps (<built-in>:0) 3",
        "_run_once (uvloop/loop.pyx:1);data_received (/v/aiohttp/web_protocol.py:300) 10",
    ]
)


def test_profile_charges_each_sample_to_its_innermost_step() -> None:
    counts = profile.tally(RAW)
    assert counts == {
        "auth (key lookup)": 7,
        "upstream client": 20,
        "access log": 3,
        profile.OUTSIDE: 10,
    }
    table = profile.markdown({"chat JSON, c=64": (counts, 200.0)})
    assert "| upstream client | 50.0% | 100.0 |" in table
