"""Deadlines (R2, R3): missed review timelines, the penalty ledger and the deemed-approval sweep."""
