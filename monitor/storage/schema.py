"""The database schema (SQLAlchemy 2 typed declarative). Alembic migrations must match it."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from monitor.storage.types import UTCDateTime


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSON(),
        list[Any]: JSON(),
    }


class TargetRow(Base):
    """(model, provider, route): what is probed. Ids are shared by every vantage."""

    __tablename__ = "targets"
    __table_args__ = (UniqueConstraint("model", "provider", "route", name="uq_targets_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model: Mapped[str] = mapped_column(String(200))
    provider: Mapped[str] = mapped_column(String(200))
    route: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime]


class ProbeRow(Base):
    """One probe, all ProbeResult fields; the monitor sets `id`, so replays are idempotent."""

    __tablename__ = "probes"
    __table_args__ = (
        Index("ix_probes_target_started", "target_id", "started_at"),
        Index("ix_probes_started", "started_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    target_id: Mapped[int] = mapped_column(ForeignKey("targets.id"))
    vantage: Mapped[str] = mapped_column(String(64))
    workload: Mapped[str] = mapped_column(String(64))
    started_at: Mapped[datetime]
    outcome: Mapped[str] = mapped_column(String(20))
    error_kind: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)
    http_status: Mapped[int | None] = mapped_column(Integer)
    retry_after_s: Mapped[float | None] = mapped_column(Float)
    ttft_ms: Mapped[float | None] = mapped_column(Float)
    ttfa_ms: Mapped[float | None] = mapped_column(Float)
    latency_ms: Mapped[float | None] = mapped_column(Float)
    output_tokens: Mapped[int | None] = mapped_column(Integer)
    input_tokens: Mapped[int | None] = mapped_column(Integer)
    token_source: Mapped[str | None] = mapped_column(String(16))
    decode_tps: Mapped[float | None] = mapped_column(Float)
    e2e_tps: Mapped[float | None] = mapped_column(Float)
    chunks: Mapped[int] = mapped_column(Integer, default=0)
    buffered: Mapped[bool] = mapped_column(Boolean, default=False)
    cost_usd: Mapped[float | None] = mapped_column(Float)
    finish_reason: Mapped[str | None] = mapped_column(String(32))
    served_by: Mapped[str | None] = mapped_column(String(200))
    dns_ms: Mapped[float | None] = mapped_column(Float)
    connect_ms: Mapped[float | None] = mapped_column(Float)
    tls_ms: Mapped[float | None] = mapped_column(Float)
    ttfb_ms: Mapped[float | None] = mapped_column(Float)
    itl_p50_ms: Mapped[float | None] = mapped_column(Float)
    itl_p99_ms: Mapped[float | None] = mapped_column(Float)
    max_gap_ms: Mapped[float | None] = mapped_column(Float)
    flags: Mapped[str | None] = mapped_column(String(200))
    quality: Mapped[str | None] = mapped_column(String(24))


class RollupRow(Base):
    """Per target, vantage, workload and UTC hour: outcome counts and metric histograms."""

    __tablename__ = "rollups_hourly"
    __table_args__ = (Index("ix_rollups_hour", "hour"),)

    target_id: Mapped[int] = mapped_column(ForeignKey("targets.id"), primary_key=True)
    vantage: Mapped[str] = mapped_column(String(64), primary_key=True)
    workload: Mapped[str] = mapped_column(String(64), primary_key=True)
    hour: Mapped[datetime] = mapped_column(primary_key=True)
    n: Mapped[int] = mapped_column(Integer, default=0)
    outcomes: Mapped[dict[str, Any]]
    error_kinds: Mapped[dict[str, Any]]
    histograms: Mapped[dict[str, Any]]
    cost_usd: Mapped[float] = mapped_column(Float, default=0.0)
    qualities: Mapped[dict[str, Any] | None]  # 0005_quality; None in rows from before it


class IncidentRow(Base):
    """A DOWN (or DEGRADED, configuration, monitor) episode of one target, open until resolved."""

    __tablename__ = "incidents"
    __table_args__ = (
        Index("ix_incidents_target_started", "target_id", "started_at"),
        Index("ix_incidents_ended", "ended_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    target_id: Mapped[int | None] = mapped_column(ForeignKey("targets.id"))
    kind: Mapped[str] = mapped_column(String(20))
    started_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]
    vantages: Mapped[list[Any]]
    error_kinds: Mapped[dict[str, Any]]
    summary: Mapped[str | None] = mapped_column(Text)
    vantage: Mapped[str | None] = mapped_column(String(64))
    """The vantage of a per-vantage incident (config, vantage, monitor); NULL when cross-vantage."""
    detected_at: Mapped[datetime | None]
    """When the rules opened it (`started_at` is the first failing probe)."""


class AlertStateRow(Base):
    """The alert rules' memory per target and vantage (`*` for the quorum across vantages)."""

    __tablename__ = "alert_states"

    target_id: Mapped[int] = mapped_column(ForeignKey("targets.id"), primary_key=True)
    vantage: Mapped[str] = mapped_column(String(64), primary_key=True)
    state: Mapped[str] = mapped_column(String(20))
    since: Mapped[datetime]
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    consecutive_successes: Mapped[int] = mapped_column(Integer, default=0)
    open_incident_id: Mapped[int | None] = mapped_column(ForeignKey("incidents.id"))
    updated_at: Mapped[datetime]
    consecutive_client_errors: Mapped[int] = mapped_column(
        Integer, default=0, server_default=text("0")
    )
    failing_since: Mapped[datetime | None]
    succeeding_since: Mapped[datetime | None]
    last_seen_at: Mapped[datetime | None]
    """The last probe that was not the monitor's own fault: the vantage is active."""
    evaluated_through: Mapped[datetime | None]
    """`started_at` of the last probe the rules have applied (their high-water mark)."""
    config_incident_id: Mapped[int | None] = mapped_column(Integer)


class OutboxRow(Base):
    """A notification to send: written with the state change, sent after, never twice."""

    __tablename__ = "outbox"
    __table_args__ = (
        UniqueConstraint("incident_id", "transition", "channel", name="uq_outbox_once"),
        Index("ix_outbox_pending", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    incident_id: Mapped[int | None] = mapped_column(ForeignKey("incidents.id"))
    transition: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]]
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime]
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    claimed_at: Mapped[datetime | None]


class FrozenReportRow(Base):
    """The numbers of a finished period's report, kept after raw probes are pruned."""

    __tablename__ = "frozen_reports"
    __table_args__ = (UniqueConstraint("period", "model", name="uq_frozen_reports_period_model"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    period: Mapped[str] = mapped_column(String(32))
    model: Mapped[str] = mapped_column(String(200))
    generated_at: Mapped[datetime]
    data: Mapped[dict[str, Any]]


class JobRunRow(Base):
    """A run of a job that must happen once per period across all monitors sharing the database."""

    __tablename__ = "job_runs"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    period: Mapped[str] = mapped_column(String(64), primary_key=True)
    vantage: Mapped[str] = mapped_column(String(64))
    ran_at: Mapped[datetime]


class CatalogueSnapshotRow(Base):
    """One reading of OpenRouter's endpoints of a model: every endpoint with what OpenRouter
    published of it. At most one per model and `slot` (observed_at // every_s): the monitor
    that writes a slot's snapshot first records its changes, others skip it."""

    __tablename__ = "catalogue_snapshots"
    __table_args__ = (
        UniqueConstraint("model", "slot", name="uq_catalogue_snapshots_slot"),
        Index("ix_catalogue_snapshots_model_observed", "model", "observed_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model: Mapped[str] = mapped_column(String(200))
    slot: Mapped[int] = mapped_column(BigInteger)
    observed_at: Mapped[datetime]
    vantage: Mapped[str] = mapped_column(String(64))
    authenticated: Mapped[bool] = mapped_column(Boolean)
    endpoints: Mapped[list[Any]]


class CatalogueEventRow(Base):
    """A change between two snapshots of a model (monitor.catalogue.diff.CatalogueEvent); kept
    when old snapshots are pruned."""

    __tablename__ = "catalogue_events"
    __table_args__ = (
        Index("ix_catalogue_events_observed", "observed_at"),
        Index("ix_catalogue_events_model_observed", "model", "observed_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model: Mapped[str] = mapped_column(String(200))
    endpoint: Mapped[str] = mapped_column(String(200))
    provider: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(32))
    before: Mapped[Any] = mapped_column(JSON, nullable=True)
    after: Mapped[Any] = mapped_column(JSON, nullable=True)
    observed_at: Mapped[datetime]
