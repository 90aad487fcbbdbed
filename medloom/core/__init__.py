"""The bottom layer: vocabulary every other layer may import (stdlib and pydantic only): records,
LLM calls, trajectory events, the output row schema, errors, text utilities, the registry."""
