-- wr-manager state, first version (PostgreSQL). Times are UNIX epoch seconds.
CREATE TABLE counters (
    name  TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);
INSERT INTO counters (name, value) VALUES ('routing_version', 0), ('serial', 0);

CREATE TABLE engines (
    engine_id      TEXT PRIMARY KEY,
    node           TEXT NOT NULL,
    registration   BYTEA NOT NULL,            -- EngineRegistration, schemas stripped
    registered_at  DOUBLE PRECISION NOT NULL,
    last_heartbeat DOUBLE PRECISION NOT NULL
);
CREATE INDEX engines_node ON engines (node);

CREATE TABLE engine_modules (
    engine_id TEXT NOT NULL,
    namespace TEXT NOT NULL,
    name      TEXT NOT NULL,
    version   TEXT NOT NULL,
    digest    TEXT NOT NULL,
    last_seen DOUBLE PRECISION,              -- last heartbeat listing it healthy; NULL = never
    PRIMARY KEY (engine_id, namespace, name, version)
);

CREATE TABLE schemas (
    namespace    TEXT NOT NULL,
    name         TEXT NOT NULL,
    version      TEXT NOT NULL,
    proto_schema BYTEA NOT NULL,
    PRIMARY KEY (namespace, name, version)
);

CREATE TABLE routing_rules (
    rule_id               TEXT PRIMARY KEY,
    kind                  TEXT NOT NULL CHECK (kind IN ('default', 'explicit')),
    engine_id             TEXT NOT NULL,
    engine_address        TEXT NOT NULL,
    peer_address          TEXT NOT NULL,
    source_namespace      TEXT NOT NULL,
    source_module         TEXT NOT NULL,
    destination_namespace TEXT NOT NULL,
    destination_module    TEXT NOT NULL,
    destination_version   TEXT NOT NULL,
    healthy               BOOLEAN NOT NULL
);
CREATE INDEX routing_rules_engine ON routing_rules (engine_id);

CREATE TABLE secrets (
    namespace  TEXT NOT NULL,
    key        TEXT NOT NULL,
    nonce      BYTEA NOT NULL,
    ciphertext BYTEA NOT NULL,               -- AES-256-GCM, (namespace, key) as associated data
    updated_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (namespace, key)
);

CREATE TABLE releases (
    target     TEXT PRIMARY KEY,             -- "manager" or a node name
    record     BYTEA NOT NULL,               -- ReleaseRecord
    applied_at DOUBLE PRECISION NOT NULL
);

CREATE TABLE apply_lock (
    slot        INTEGER PRIMARY KEY CHECK (slot = 1),   -- at most one lock
    lock_id     TEXT NOT NULL UNIQUE,
    holder      TEXT NOT NULL,
    reason      TEXT NOT NULL,
    acquired_at DOUBLE PRECISION NOT NULL,
    expires_at  DOUBLE PRECISION NOT NULL
);
