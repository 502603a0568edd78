"""The `db` capability's side of wrctl: each namespace's Postgres role and schema, and the
modules' migrations (read, checked, planned, and run by apply)."""
