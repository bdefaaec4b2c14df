"""benchmarks.wrkparse: the numbers of real wrk 4.1 reports, in every unit wrk prints."""

import pytest

from benchmarks.wrkparse import WrkParseError, parse, percentile_ms, to_ms

# Captured on the benchmark machine: wrk -t1 -c1 --latency against nginx (us and ms).
C1_NGINX = """\
Running 3s test @ http://127.0.0.1:18991/v1/chat/completions
  1 threads and 1 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    54.27us  263.95us   5.46ms   97.71%
    Req/Sec    47.06k    15.73k   59.87k    76.67%
  Latency Distribution
     50%   16.00us
     75%   17.00us
     90%   48.00us
     99%    1.24ms
  140305 requests in 3.00s, 123.10MB read
Requests/sec:  46761.72
Transfer/sec:     41.03MB
"""

# wrk -t1 -c64 against a path nginx answers with 404.
C64_NON_2XX = """\
Running 3s test @ http://127.0.0.1:18991/nope
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   644.11us  363.74us   7.41ms   95.76%
    Req/Sec   100.21k    19.85k  117.48k    80.00%
  Latency Distribution
     50%  567.00us
     75%  629.00us
     90%  833.00us
     99%    2.19ms
  298520 requests in 3.00s, 83.70MB read
  Non-2xx or 3xx responses: 298520
Requests/sec:  99454.22
Transfer/sec:     27.88MB
"""

# A server that answers 503 after 1.1 s: wrk prints seconds, with a trailing space.
SECONDS_NON_2XX = "\n".join(
    [
        "Running 4s test @ http://127.0.0.1:18994/v1/chat/completions",
        "  1 threads and 8 connections",
        "  Thread Stats   Avg      Stdev     Max   +/- Stdev",
        "    Latency     1.10s     1.00ms   1.10s    66.67%",
        "    Req/Sec    11.75     12.23    30.00     75.00%",
        "  Latency Distribution",
        "     50%    1.10s ",
        "     75%    1.10s ",
        "     90%    1.10s ",
        "     99%    1.10s ",
        "  24 requests in 4.01s, 4.31KB read",
        "  Non-2xx or 3xx responses: 24",
        "Requests/sec:      5.99",
        "Transfer/sec:      1.08KB",
    ]
)

# The same server with --timeout 1s: every request timed out.
TIMEOUTS = """\
Running 4s test @ http://127.0.0.1:18994/v1/chat/completions
  1 threads and 8 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     0.00us    0.00us   0.00us    -nan%
    Req/Sec     6.67      0.58     7.00     66.67%
  Latency Distribution
     50%    0.00us
     75%    0.00us
     90%    0.00us
     99%    0.00us
  24 requests in 4.01s, 4.31KB read
  Socket errors: connect 0, read 0, write 0, timeout 24
  Non-2xx or 3xx responses: 24
Requests/sec:      5.99
Transfer/sec:      1.08KB
"""


def test_microseconds_and_milliseconds():
    result = parse(C1_NGINX)
    assert result.requests_per_s == pytest.approx(46761.72)
    assert result.requests == 140305
    assert result.duration_s == pytest.approx(3.0)
    assert result.p50_ms == pytest.approx(0.016)
    assert result.p75_ms == pytest.approx(0.017)
    assert result.p90_ms == pytest.approx(0.048)
    assert result.p99_ms == pytest.approx(1.24)
    assert result.non_2xx == 0
    assert result.socket_errors == 0
    assert result.ok


def test_non_2xx_responses_fail_the_run():
    result = parse(C64_NON_2XX)
    assert result.non_2xx == 298520
    assert result.requests_per_s == pytest.approx(99454.22)
    assert result.duration_s == pytest.approx(3.0)
    assert result.p50_ms == pytest.approx(0.567)
    assert result.p99_ms == pytest.approx(2.19)
    assert not result.ok
    assert result.as_dict()["ok"] is False


def test_seconds_with_trailing_space():
    result = parse(SECONDS_NON_2XX)
    assert result.p50_ms == pytest.approx(1100.0)
    assert result.p99_ms == pytest.approx(1100.0)
    assert result.requests_per_s == pytest.approx(5.99)
    assert result.non_2xx == 24
    assert not result.ok


def test_socket_errors_fail_the_run():
    result = parse(TIMEOUTS)
    assert result.socket_errors == 24
    assert not result.ok


@pytest.mark.parametrize(
    ("value", "unit", "expected"),
    [("250.00", "us", 0.25), ("1.24", "ms", 1.24), ("1.10", "s", 1100.0), ("2.00", "m", 120e3)],
)
def test_units(value, unit, expected):
    assert to_ms(value, unit) == pytest.approx(expected)


def test_unknown_unit():
    with pytest.raises(WrkParseError, match="unit"):
        to_ms("1", "d")


def test_missing_latency_distribution():
    without = "\n".join(line for line in C1_NGINX.splitlines() if "%" not in line)
    with pytest.raises(WrkParseError, match="--latency"):
        percentile_ms(without, 50)
    with pytest.raises(WrkParseError, match="--latency"):
        parse(without)


def test_wrk_that_did_not_finish():
    with pytest.raises(WrkParseError, match="did not finish"):
        parse("unable to connect to 127.0.0.1:18993 Connection refused\n")
