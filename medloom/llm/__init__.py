"""LLM access: typed requests, an endpoint pool, retries, a request cache, accounting."""

from medloom.core.calls import ChatMessage, Choice, LLMRequest, LLMResponse, Usage
from medloom.core.usage import Price
from medloom.llm.accounting import TokenLedger
from medloom.llm.cache import RequestCache
from medloom.llm.client import LLMClient
from medloom.llm.settings import EndpointConfig, LLMSettings, RetrySettings

__all__ = [
    "ChatMessage",
    "Choice",
    "EndpointConfig",
    "LLMClient",
    "LLMRequest",
    "LLMResponse",
    "LLMSettings",
    "Price",
    "RequestCache",
    "RetrySettings",
    "TokenLedger",
    "Usage",
]
