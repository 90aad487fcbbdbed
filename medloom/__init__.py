"""medloom: multi-agent clinical reasoning and data synthesis."""

__version__ = "0.1.0"
