"""The `[workloads.NAME]` sections: the shape of a probe and, for quality probes, its kind."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict

from monitor.config.checks import count

WorkloadKind = Literal["plain", "tool_call", "structured"]
"""plain: text; tool_call: a small tool set the answer must call; structured: a JSON Schema
`response_format` the answer must follow (the two quality kinds record `quality`)."""


class Workload(BaseModel):
    """A probe shape: about `input_tokens` of prompt, at most `max_tokens` of answer."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = ""
    input_tokens: Annotated[int, count(1, 1_000_000)]
    max_tokens: Annotated[int, count(1, 1_000_000)]
    kind: WorkloadKind = "plain"
    tool_choice: Literal["required", "auto"] = "required"  # tool_call only

    @property
    def quality(self) -> bool:
        """A quality probe: its answer is checked, not only timed."""
        return self.kind != "plain"


DEFAULT_WORKLOADS: dict[str, Workload] = {
    "heartbeat": Workload(name="heartbeat", input_tokens=10, max_tokens=1),
    "short": Workload(name="short", input_tokens=100, max_tokens=300),
    "long": Workload(name="long", input_tokens=1000, max_tokens=1000),
}
