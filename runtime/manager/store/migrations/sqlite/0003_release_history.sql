-- Every release record, failed attempts and rollbacks included; `releases` keeps only the one
-- running now per target.
CREATE TABLE release_history (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    target     TEXT NOT NULL,
    status     TEXT NOT NULL,
    record     BLOB NOT NULL,                -- ReleaseRecord
    applied_at REAL NOT NULL
);
CREATE INDEX release_history_target ON release_history (target, id);
INSERT INTO release_history (target, status, record, applied_at)
    SELECT target, 'applied', record, applied_at FROM releases ORDER BY applied_at;
