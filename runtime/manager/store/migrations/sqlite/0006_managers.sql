-- Manager liveness (issue 21): one row per running manager, refreshed by its heartbeat.
-- ListManagers returns the rows whose heartbeat is within the expiry.
CREATE TABLE managers (
    manager_id   TEXT PRIMARY KEY,               -- random per start
    grpc_address TEXT NOT NULL,                  -- host:port callers dial (advertise_address)
    started_at   REAL NOT NULL,
    heartbeat_at REAL NOT NULL
);
