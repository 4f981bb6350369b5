"""Storage: the only package that imports SQLAlchemy. Schema and migrations, the probe store and
its rollups, alerting state and the outbox, report reads. Callers get `Engine` handles and plain
values back; database faults surface as `monitor.errors.StoreUnavailable`."""
