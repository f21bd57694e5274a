"""wiserpa: prior authorization for Medicare's WISeR model, with the physicians' safeguards built in."""

__version__ = "0.1.0"
