"""The reliability suite's secret scan finds secrets whole, cut short and embedded."""

from __future__ import annotations

import pytest

from tests.reliability.scan import assert_clean, leaks

SECRET = "sk-sy-abc123-0123456789abcdefghij"


def test_whole_cut_and_embedded_secrets_are_found() -> None:
    texts = [SECRET, SECRET[:14], f'{{"h":"Bearer {SECRET[5:20]}..."}}', "clean"]
    assert leaks(texts, [SECRET]) == texts[:3]


def test_clean_texts_pass_and_tracebacks_fail() -> None:
    assert_clean(["ok", "sk-other"], [SECRET])
    with pytest.raises(AssertionError, match="traceback"):
        assert_clean(["Traceback (most recent call last):\n  File"], [SECRET])
