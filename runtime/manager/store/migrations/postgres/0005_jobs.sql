-- Worker jobs and schedules (issue 20).
-- A module version's configured default for max_attempts (engine.toml worker_max_attempts).
ALTER TABLE engine_modules ADD COLUMN worker_max_attempts INTEGER NOT NULL DEFAULT 0;

-- One row per job. state: pending -> running (claim_id, lease_until) -> complete | pending
-- (a retry at run_at) | dead. A finalize names its claim_id: a stale holder's matches nothing.
CREATE TABLE jobs (
    job_id           TEXT PRIMARY KEY,
    namespace        TEXT NOT NULL,
    module           TEXT NOT NULL,
    version          TEXT NOT NULL,             -- '' = any version of the module
    job_type         TEXT NOT NULL,
    payload          BYTEA NOT NULL,
    result           BYTEA,
    state            TEXT NOT NULL CHECK (state IN ('pending', 'running', 'complete', 'dead')),
    attempt          INTEGER NOT NULL,          -- attempts started
    max_attempts     INTEGER NOT NULL,
    timeout_secs     INTEGER NOT NULL,
    last_error       TEXT NOT NULL,
    idempotency_key  TEXT,                      -- NULL = none (NULLs never collide)
    traceparent      TEXT NOT NULL,
    submitted_by     TEXT NOT NULL,
    schedule         TEXT NOT NULL,
    run_at           DOUBLE PRECISION NOT NULL, -- pending: due from then on
    claim_id         TEXT,
    claimed_by       TEXT,
    lease_until      DOUBLE PRECISION,          -- running: reclaimable after this
    created_at       DOUBLE PRECISION NOT NULL,
    updated_at       DOUBLE PRECISION NOT NULL,
    UNIQUE (namespace, module, idempotency_key)
);
CREATE INDEX jobs_due ON jobs (state, run_at);
CREATE INDEX jobs_lease ON jobs (state, lease_until);
CREATE INDEX jobs_module ON jobs (namespace, module, created_at);

CREATE TABLE schedules (
    name                 TEXT PRIMARY KEY,
    namespace            TEXT NOT NULL,
    module               TEXT NOT NULL,
    version              TEXT NOT NULL,
    job_type             TEXT NOT NULL,
    interval_secs        INTEGER NOT NULL,      -- 0 when cron is set
    cron                 TEXT NOT NULL,
    payload              BYTEA NOT NULL,
    timeout_secs         INTEGER NOT NULL,
    max_attempts         INTEGER NOT NULL,
    next_fire_at         DOUBLE PRECISION NOT NULL,
    last_fired_at        DOUBLE PRECISION,
    last_error           TEXT NOT NULL,
    consecutive_failures INTEGER NOT NULL,
    created_at           DOUBLE PRECISION NOT NULL,
    updated_at           DOUBLE PRECISION NOT NULL
);
CREATE INDEX schedules_due ON schedules (next_fire_at);
