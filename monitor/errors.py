"""Every exception provmon raises on purpose, in one place.

Provider faults are never exceptions: they are values (`ProbeResult.outcome`). Exceptions are
for bad input (config, command line), for the database or a channel being unusable, and for our
own bugs (anything not below)::

    ProvmonError                    base: a message meant for the user, never a traceback
    ├── ConfigError                 the config file cannot be used; `problems` lists each key
    ├── UsageError                  a command line that cannot be acted on (exit 2)
    ├── DatabaseError               the database cannot be used as it is; says what to do (exit 1)
    ├── StoreUnavailable            the database could not be reached or write now: retry later
    │   └── StoreRejected           it answered but refused these values: retrying will not help
    ├── ChannelError                an alert channel did not take a notification
    ├── FetchError                  a plain HTTP GET got no usable answer (status, network, JSON)
    ├── MetricsError                the metrics endpoint could not be started (exit 1)
    └── DiscoverError               OpenRouter's endpoints API could not be read
        └── EndpointsError          its document does not have the expected shape

The CLI turns each `ProvmonError` into one line on stderr and its `exit_code` (1, or 2 for
a config or command line that cannot be used).
"""

from __future__ import annotations

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


class ProvmonError(Exception):
    """Base of provmon's own errors: its message is meant for the user."""

    exit_code = EXIT_FAIL


class ConfigError(ProvmonError):
    """The config cannot be used; `problems` lists each as `key.path: what is wrong`."""

    exit_code = EXIT_USAGE

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: " + "; ".join(problems))

    def __str__(self) -> str:
        if len(self.problems) == 1:
            return f"invalid config {self.source}: {self.problems[0]}"
        lines = [f"invalid config {self.source}:"] + [f"  {p}" for p in self.problems]
        return "\n".join(lines)


class UsageError(ProvmonError):
    """A command line that cannot be acted on; the message says why."""

    exit_code = EXIT_USAGE


class DatabaseError(ProvmonError):
    """The database cannot be used as it is; the message says what to do."""


class StoreUnavailable(ProvmonError):
    """The database could not be reached or could not write now; try again later."""


class StoreRejected(StoreUnavailable):
    """The database answered but refused these values (a constraint, a type, a range):
    retrying the same records will not help."""


class ChannelError(ProvmonError):
    """The channel did not take the notification; the message says why (secrets redacted)."""


class FetchError(ProvmonError):
    """A plain HTTP GET got no usable answer; the message says why (secrets redacted)."""


class MetricsError(ProvmonError):
    """The metrics endpoint could not be started (address in use, not permitted, ...)."""


class DiscoverError(ProvmonError):
    """OpenRouter's endpoints API could not be read; the message says why (key redacted)."""


class EndpointsError(DiscoverError, ValueError):
    """The endpoints document does not have the expected shape."""
