"""Storage: the only package that imports SQLAlchemy. Schema and migrations, the probe store and
its rollups, alerting state (`alert_state`), incidents and the outbox behind `alerts.AlertStore`,
report reads. Callers get `Engine` handles and plain values back; database faults surface as
`monitor.errors.StoreUnavailable` (`faults.unavailable`). It imports no other provmon package
but value and helper modules (`results`, `rollup`, `alert_model`, `errors`, `redact`)."""
