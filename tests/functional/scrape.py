"""Reading ``/metrics`` the way Prometheus does, and comparing two readings."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from prometheus_client.parser import text_string_to_metric_families

Labels = frozenset[tuple[str, str]]


@dataclass(frozen=True)
class Reading:
    """Every sample of one scrape: (sample name, labels) -> value."""

    samples: dict[tuple[str, Labels], float]
    text: str

    def sum(self, name: str, **labels: str) -> float:
        """The sum of ``name``'s samples whose labels include ``labels``."""
        wanted = set(labels.items())
        return sum(
            value
            for (sample, have), value in self.samples.items()
            if sample == name and wanted <= have
        )

    def names(self) -> set[str]:
        return {sample for sample, _ in self.samples}


def scrape(url: str, *, token: str | None = None) -> Reading:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    # A fresh connection each time: with several workers, any of them may answer.
    response = httpx.get(url, headers=headers, timeout=10)
    response.raise_for_status()
    samples: dict[tuple[str, Labels], float] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[sample.name, frozenset(sample.labels.items())] = sample.value
    return Reading(samples, response.text)


def moved(before: Reading, after: Reading, name: str, **labels: str) -> float:
    """How far ``name`` (summed over matching labels) moved between two readings."""
    return after.sum(name, **labels) - before.sum(name, **labels)
