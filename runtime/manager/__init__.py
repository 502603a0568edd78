"""wr-manager: the control plane (engine registry, routing table, secrets, releases, apply lock)."""
