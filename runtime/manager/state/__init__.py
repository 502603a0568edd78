"""The manager's domain operations, each one transaction over a store backend."""
