"""experience domain."""
