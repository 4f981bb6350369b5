"""provmon: LLM provider benchmarking and uptime monitor."""

__version__ = "0.1.0"
