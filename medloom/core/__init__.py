"""The vocabulary every layer shares (stdlib and pydantic only, imports nothing else of medloom):
records, LLM calls, trajectory events, the output row schema, errors and text utilities."""
