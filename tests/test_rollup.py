"""The monitor-fault result and what it does to the hourly rollups. Pure."""

from __future__ import annotations

from datetime import timedelta

from monitor.results import Outcome, monitor_fault
from monitor.rollup import fold, hour_of, monitor_fault_deltas, recounted
from tests.factories import T0, result

KIND = "monitor.mass_failure"


def test_monitor_fault_keeps_the_providers_error_in_the_message() -> None:
    r = result(outcome=Outcome.SERVER_ERROR, error_kind="http.503", error_message="busy")
    fault = monitor_fault(r, KIND)
    assert (fault.outcome, fault.error_kind, fault.error_message) == (
        Outcome.MONITOR_ERROR,
        KIND,
        "http.503: busy",
    )
    assert fault.started_at == r.started_at and fault.provider == r.provider
    bare = monitor_fault(result(outcome=Outcome.TIMEOUT), KIND)
    assert bare.error_message == "timeout:"  # no kind, no message: the outcome, stripped


def test_deltas_move_counts_to_monitor_error_per_rollup() -> None:
    failed = [
        result(outcome=Outcome.SERVER_ERROR, error_kind="http.503"),
        result(
            outcome=Outcome.SERVER_ERROR, error_kind="http.503", started_at=T0.replace(minute=5)
        ),
        result(outcome=Outcome.TIMEOUT, error_kind=None),
        result(outcome=Outcome.TIMEOUT, provider="Beta", started_at=T0 + timedelta(hours=1)),
    ]
    deltas = monitor_fault_deltas(failed, KIND)
    alpha = (("acme/model-1", "Alpha", "direct"), "here", "short", hour_of(T0))
    beta = (("acme/model-1", "Beta", "direct"), "here", "short", hour_of(T0) + timedelta(hours=1))
    assert set(deltas) == {alpha, beta}
    assert deltas[alpha].n == 0  # the probes stay counted
    assert dict(deltas[alpha].outcomes) == {"server_error": -2, "timeout": -1, "monitor_error": 3}
    assert dict(deltas[alpha].error_kinds) == {"http.503": -2, KIND: 3}
    assert dict(deltas[beta].outcomes) == {"timeout": -1, "monitor_error": 1}


def test_recounted_rollup_equals_folding_the_faulted_probes() -> None:
    ok = [result(started_at=T0 + timedelta(minutes=m)) for m in range(3)]
    failed = [
        result(outcome=Outcome.SERVER_ERROR, error_kind="http.503", started_at=T0),
        result(outcome=Outcome.TIMEOUT, error_kind="timeout.ttft", started_at=T0),
    ]
    ((key, stored),) = fold(ok + failed).items()
    changed = recounted(stored, monitor_fault_deltas(failed, KIND)[key])
    ((_, expected),) = fold(ok + [monitor_fault(r, KIND) for r in failed]).items()
    assert changed.n == expected.n == 5
    assert changed.outcomes == expected.outcomes == {"ok": 3, "monitor_error": 2}
    assert changed.error_kinds == expected.error_kinds == {KIND: 2}  # emptied kinds dropped
    assert changed.histograms["ttft_ms"].n == 3
    assert changed.cost_usd == stored.cost_usd
