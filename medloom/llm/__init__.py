"""LLM access: a client made of thin layers (de-duplication, request cache, retries, endpoint
pool) around an injectable transport (aiohttp, or ``MockTransport`` in process); see docs/llm.md."""

from medloom.core.calls import ChatMessage, Choice, EmbeddingResponse, LLMRequest, LLMResponse, Usage
from medloom.core.usage import Price
from medloom.llm.accounting import TokenLedger
from medloom.llm.cache import RequestCache
from medloom.llm.client import LLMClient
from medloom.llm.settings import EndpointConfig, LLMSettings, RetrySettings
from medloom.llm.transport import MockTransport, Transport, TransportRequest, TransportResponse

__all__ = [
    "ChatMessage",
    "Choice",
    "EmbeddingResponse",
    "EndpointConfig",
    "LLMClient",
    "LLMRequest",
    "LLMResponse",
    "LLMSettings",
    "MockTransport",
    "Price",
    "RequestCache",
    "RetrySettings",
    "TokenLedger",
    "Transport",
    "TransportRequest",
    "TransportResponse",
    "Usage",
]
