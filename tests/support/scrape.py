"""Reading a service's /metrics as Prometheus would."""

from __future__ import annotations

import aiohttp
from prometheus_client.parser import text_string_to_metric_families


class Scrape:
    """One scrape's samples, looked up by name and labels."""

    def __init__(self, text: str) -> None:
        self._samples = [
            sample for family in text_string_to_metric_families(text) for sample in family.samples
        ]

    def value(self, name: str, **labels: str) -> float | None:
        """The sample with exactly these labels (a histogram's `le` aside); None if absent."""
        for sample in self._samples:
            if sample.name == name and sample.labels == labels:
                return sample.value
        return None


async def scrape(address: str) -> Scrape:
    url = f"http://{address}/metrics"
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        assert response.status == 200, await response.text()
        return Scrape(await response.text())
