"""The bottom layer: vocabulary every other layer may import (stdlib and pydantic only)."""
