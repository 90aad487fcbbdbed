"""medloom: multi-agent clinical reasoning and data synthesis."""
