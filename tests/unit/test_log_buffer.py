"""``LineHandler``: access lines buffered into pipe-atomic writes, everything else at once."""

from __future__ import annotations

import asyncio
import io
import logging
import weakref
from collections.abc import Iterator

import orjson
import pytest

from router.logs import WRITE_BYTES, LineHandler, access_logger, logger


class Recorder(io.StringIO):
    """A stream that keeps each write apart."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[str] = []
        self.written = asyncio.Event()

    def write(self, text: str) -> int:
        self.writes.append(text)
        self.written.set()
        return super().write(text)

    def lines(self) -> list[dict[str, object]]:
        return [orjson.loads(line) for line in self.getvalue().splitlines()]


@pytest.fixture
def stream() -> Iterator[Recorder]:
    recorder = Recorder()
    handler = LineHandler(recorder, flush_seconds=0.05)
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    try:
        yield recorder
    finally:
        handler.flush()
        root.handlers[:] = handlers
        root.setLevel(level)


def access(i: int) -> None:
    access_logger.info("request", extra={"fields": {"i": i, "pad": "x" * 300}})


async def test_access_lines_wait_for_the_timer(stream: Recorder) -> None:
    access(0)
    access(1)
    assert stream.writes == []
    await asyncio.wait_for(stream.written.wait(), 10)  # due in 0.05 s; generous when loaded
    assert len(stream.writes) == 1  # both lines in one write
    assert [line["i"] for line in stream.lines()] == [0, 1]


async def test_writes_are_whole_lines_within_pipe_buf(stream: Recorder) -> None:
    for i in range(50):
        access(i)
    logging.getLogger().handlers[0].flush()
    assert len(stream.writes) > 1
    for chunk in stream.writes:
        assert len(chunk.encode()) <= WRITE_BYTES
        assert chunk.endswith("\n")
    assert [line["i"] for line in stream.lines()] == list(range(50))


async def test_an_event_writes_through_after_the_waiting_access_lines(stream: Recorder) -> None:
    access(0)
    logger.warning("backend ejected")
    assert len(stream.writes) == 1
    assert [line["msg"] for line in stream.lines()] == ["request", "backend ejected"]


def test_without_a_running_loop_nothing_waits(stream: Recorder) -> None:
    access(0)
    assert [line["i"] for line in stream.lines()] == [0]


def test_logging_shutdown_flushes_what_a_closed_loop_left(stream: Recorder) -> None:
    async def log_and_leave() -> None:
        access(7)

    asyncio.run(log_and_leave())  # the timer dies with its loop
    assert stream.writes == []
    handler = logging.getLogger().handlers[0]
    logging.shutdown([weakref.ref(handler)])  # what atexit runs, on this handler alone
    assert [line["i"] for line in stream.lines()] == [7]


def test_a_utf8_stream_gets_the_lines_in_order_after_other_text() -> None:
    wire = io.BytesIO()
    text = io.TextIOWrapper(wire, encoding="utf-8")
    handler = LineHandler(text)
    text.write("not a line yet: ")  # another writer's text, still in the text layer
    handler.access(orjson.dumps({"model": "é"}))
    handler.access(orjson.dumps({"i": 1}))
    handler.flush()
    assert wire.getvalue() == 'not a line yet: {"model":"é"}\n{"i":1}\n'.encode()


def test_another_encoding_gets_text_as_that_stream_encodes_it() -> None:
    wire = io.BytesIO()
    text = io.TextIOWrapper(wire, encoding="ascii", errors="backslashreplace")
    handler = LineHandler(text)
    handler.access(orjson.dumps({"model": "é"}))
    handler.flush()
    assert wire.getvalue() == b'{"model":"\\xe9"}\n'


def test_a_detached_stream_loses_the_lines_quietly() -> None:
    text = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    handler = LineHandler(text)
    text.detach()
    handler.access(b'{"i":1}')
    handler.flush()  # no error: the lines cannot go anywhere
