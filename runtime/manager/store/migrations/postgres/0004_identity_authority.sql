-- Control-plane identities (issue 16).
-- The identity URI (wruntime://cluster/node/name) of the node that registered each engine:
-- only it may heartbeat or deregister the engine. '' for rows stored before identities, which
-- belong to the node named in their `node` column.
ALTER TABLE engines ADD COLUMN registered_by TEXT NOT NULL DEFAULT '';

-- A node's rollout in flight (RecordRelease status "pending"): it authorises that release's
-- modules and secret grants on the node until the next record of the target. Not history.
CREATE TABLE pending_releases (
    target      TEXT PRIMARY KEY,            -- a node name
    record      BYTEA NOT NULL,               -- ReleaseRecord
    recorded_at DOUBLE PRECISION NOT NULL
);

-- Secret versions: 1 on first set, +1 on every set; rows that exist now are version 1.
ALTER TABLE secrets ADD COLUMN version BIGINT NOT NULL DEFAULT 1;
