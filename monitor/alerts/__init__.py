"""Alerting (DESIGN.md section 4): pure rules and payloads; the evaluator, channels and the outbox
sender at the edges. `rules` and `payloads` import neither aiohttp nor SQLAlchemy."""
