"""claims domain."""
