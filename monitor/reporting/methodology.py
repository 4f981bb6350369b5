"""The methodology section of a report: definitions, how percentiles point, the accounting."""

from __future__ import annotations

from monitor.reporting.model import UPPER_CONVENTION, ModelReport
from monitor.stats import PERCENTILE_CONVENTION

DEFINITIONS = (
    (
        "network",
        "TCP connect + TLS handshake of the probe's fresh connection (DNS apart): distance and "
        "accept queue, kept out of TTFT",
    ),
    (
        "TTFT",
        "request written on the established connection → arrival of the first streamed token "
        "(answer, reasoning or tool call; the kernel's receive stamp where there is one)",
    ),
    ("TTFA", "request written → first answer token"),
    ("latency", "request written → end of stream"),
    ("decode", "(output tokens − 1) / (last token − first token): speed after the first token"),
    ("e2e", "output tokens / latency"),
    ("uptime", "ok / (ok + failures), per the accounting below"),
)

_PERCENTILES = {
    PERCENTILE_CONVENTION: "percentiles point at the bad side, as OpenRouter's do: pN is the value "
    "N % of ok probes match or beat, the high tail for TTFT, TTFA and latency and the low tail "
    "for decode and e2e tokens/s (so p90 ≤ p50), from log histograms within 1 %",
    UPPER_CONVENTION: "percentiles are ordinary upper quantiles of ok probes for every metric "
    "(this report was frozen before provmon pointed tails at the bad side): decode and e2e p90 "
    "are speeds that only 10 % of probes reached",
}


def methodology_lines(report: ModelReport) -> list[str]:
    lines = [f"{name}: {text}" for name, text in DEFINITIONS]
    lines.append(_PERCENTILES.get(report.percentile_convention, _PERCENTILES[UPPER_CONVENTION]))
    lines.append(
        "each probe opens a fresh connection; its phases (DNS, connect, TLS, request written → "
        "headers) are measured apart, so TTFT holds the provider's queueing and prefill only"
    )
    lines.append(
        "tokens: the provider's usage when reported and believable, else counted with the "
        "model's tokenizer (tiktoken cl100k_base by default); usage beyond 10 × max_tokens "
        "and costs beyond 100 × the price are not believed"
    )
    lines += report.accounting
    lines.append("vantages: " + (", ".join(report.vantages) or "–"))
    for name, shape in sorted(report.workloads.items()):
        lines.append(f"workload {name}: {shape}")
    if report.catalogue_polls:
        lines.append(
            f"OpenRouter's endpoints listing was read {report.catalogue_polls} times in the "
            "period; its uptime, latency (time to first token at OpenRouter) and throughput "
            "are OpenRouter's own, over everyone's requests and measured from OpenRouter's "
            "side, so they leave out the network between this vantage and OpenRouter"
        )
    lines.append(f"cost of probing this model in the period: ${report.cost_usd:.4f}")
    return lines
