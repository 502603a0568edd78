-- Engines that deregistered stay (unhealthy) until the retention passes, like silent ones.
ALTER TABLE engines ADD COLUMN deregistered_at REAL;
