"""What quality probes ask for: the tool set of `tool_call` workloads and the JSON Schema of
`structured` ones, with the instruction that goes with each. Pure data; `prompts` puts them in the
request body and `quality` checks the answer against them."""

from __future__ import annotations

from typing import Any

WEATHER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "city": {"type": "string"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
    },
    "required": ["city", "unit"],
    "additionalProperties": False,
}
TIME_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"timezone": {"type": "string"}},
    "required": ["timezone"],
    "additionalProperties": False,
}
TOOL_SCHEMAS: dict[str, dict[str, Any]] = {
    "get_weather": WEATHER_SCHEMA,
    "get_time": TIME_SCHEMA,
}
"""Each tool's name and the JSON Schema its arguments must match."""

_DESCRIPTIONS = {
    "get_weather": "Current weather in a city.",
    "get_time": "Current local time in an IANA timezone.",
}
TOOLS: list[dict[str, Any]] = [
    {
        "type": "function",
        "function": {"name": name, "description": _DESCRIPTIONS[name], "parameters": schema},
    }
    for name, schema in TOOL_SCHEMAS.items()
]
TOOL_ASK = (
    "Call the get_weather tool for the city of Lisbon in celsius. Answer only with the tool call."
)

STRUCTURED_NAME = "city_report"
STRUCTURED_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "city": {"type": "string"},
        "country": {"type": "string"},
        "population": {"type": "integer"},
        "coastal": {"type": "boolean"},
    },
    "required": ["city", "country", "population", "coastal"],
    "additionalProperties": False,
}
STRUCTURED_ASK = "Describe the city of Lisbon as a JSON object following the given schema."


def response_format() -> dict[str, Any]:
    """The `response_format` of a structured probe (strict JSON Schema, as OpenAI and
    OpenRouter document it)."""
    return {
        "type": "json_schema",
        "json_schema": {"name": STRUCTURED_NAME, "schema": STRUCTURED_SCHEMA, "strict": True},
    }
