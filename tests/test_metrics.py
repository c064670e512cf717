"""Metrics are batched: a scrape still reads every sample (read by prometheus_client's parser)."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from verify_api.metrics import LATENCY_BUCKETS, Metrics


def samples(metrics: Metrics, name: str) -> dict[tuple, float]:
    """The exposition's samples of metric family ``name``: (sample name, labels) -> value."""
    text = metrics.render().decode()
    found = {}
    for family in text_string_to_metric_families(text):
        if family.name == name:
            for s in family.samples:
                found[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return found


def value(metrics: Metrics, result: str) -> float | None:
    """The results counter as prometheus_client holds it (before any flush a scrape makes)."""
    return metrics.registry.get_sample_value("itemseal_verify_results_total", {"result": result})


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(min_value=0, max_value=10, allow_nan=False), max_size=40))
def test_the_histogram_holds_every_sample_in_its_bucket_and_sum(seconds):
    metrics = Metrics()
    for s in seconds:
        metrics.observe("/v1/ping", "GET", 200, s)
    found = samples(metrics, "itemseal_http_request_seconds")
    route = ("route", "/v1/ping")
    if not seconds:
        assert found == {}
        return
    for bound in (*LATENCY_BUCKETS, float("inf")):
        le = "+Inf" if bound == float("inf") else repr(bound)
        key = ("itemseal_http_request_seconds_bucket", tuple(sorted([("le", le), route])))
        assert found[key] == sum(1 for s in seconds if s <= bound), le
    assert found[("itemseal_http_request_seconds_count", (route,))] == len(seconds)
    assert found[("itemseal_http_request_seconds_sum", (route,))] == pytest.approx(sum(seconds))
    requests = samples(metrics, "itemseal_http_requests")
    key = (("method", "GET"), route, ("status", "200"))
    assert requests[("itemseal_http_requests_total", key)] == len(seconds)


def test_samples_reach_prometheus_within_the_flush_interval_without_a_scrape():
    metrics = Metrics()
    metrics.FLUSH_SECONDS = 0.05

    async def run() -> None:
        metrics.count_result("genuine")
        metrics.count_result("genuine", 2)
        assert value(metrics, "genuine") is None  # gathered, not handed over yet
        await asyncio.sleep(0.2)

    asyncio.run(run())
    assert value(metrics, "genuine") == 3
    found = samples(metrics, "itemseal_verify_results")
    assert found[("itemseal_verify_results_total", (("result", "genuine"),))] == 3


def test_without_an_event_loop_a_sample_is_handed_over_at_once():
    metrics = Metrics()
    metrics.count_result("counterfeit")
    assert value(metrics, "counterfeit") == 1
