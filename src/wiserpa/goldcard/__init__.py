"""Gold cards (R4): providers with a record of appropriate requests skip prior authorization."""
