"""Native tool calls (``medloom serve --tools PARSER``): the vLLM flags that make a server return
OpenAI ``tool_calls`` for agents in chat mode, and the parser of common model families."""

from __future__ import annotations

import re

from medloom.serving.errors import LayoutError

AUTO = "auto"
"""``--tools auto``: the parser of the model's family, from its name."""

FAMILY_PARSERS: tuple[tuple[str, str], ...] = (
    (r"qwen3-?coder", "qwen3_coder"),
    (r"qwen|qwq|hermes", "hermes"),
    (r"llama-?4", "llama4_pythonic"),
    (r"llama-?3\.[1-9]", "llama3_json"),
    (r"mistral|mixtral|ministral|codestral", "mistral"),
    (r"granite-?4", "granite4"),
    (r"granite", "granite"),
    (r"gpt-oss", "openai"),
    (r"deepseek-?v3\.1", "deepseek_v31"),
    (r"deepseek-?v3", "deepseek_v3"),
    (r"kimi-?k2", "kimi_k2"),
    (r"glm-?4\.5", "glm45"),
    (r"phi-?4-?mini", "phi4_mini_json"),
    (r"internlm", "internlm"),
    (r"xlam", "xlam"),
)
"""Model-name pattern (case-insensitive, first match wins) → vLLM ``--tool-call-parser`` name,
after vLLM's tool-calling documentation."""

TOOL_FLAGS = ("--enable-auto-tool-choice", "--tool-call-parser")


def parser_for_model(model: str, served_name: str | None = None) -> str:
    """The tool-call parser of the family of ``model`` (or of its served name), or a LayoutError
    that says how to choose one."""
    for pattern, parser in FAMILY_PARSERS:
        if any(re.search(pattern, name, re.IGNORECASE) for name in (model, served_name or "")):
            return parser
    known = ", ".join(sorted({p for _, p in FAMILY_PARSERS}))
    raise LayoutError(
        f"--tools auto does not know the tool-call format of {model!r}: give its vLLM parser, "
        f"e.g. --tools hermes ({known}, or another from vLLM's tool-calling page). A base model "
        "(such as the embedded default) has no native tool calls: its agents use mode: completion, "
        "which needs no parser"
    )


def tool_call_flags(
    parser: str, model: str, served_name: str | None, extra_args: list[str]
) -> tuple[str, list[str]]:
    """The resolved parser and ``extra_args`` without tool flags of their own (the server adds
    ``--enable-auto-tool-choice --tool-call-parser PARSER`` once). A different parser given after
    ``--`` is an error."""
    rest: list[str] = []
    given: str | None = None
    i = 0
    while i < len(extra_args):
        arg = extra_args[i]
        if arg == TOOL_FLAGS[0]:
            i += 1
            continue
        if arg == TOOL_FLAGS[1] and i + 1 < len(extra_args):
            given, i = extra_args[i + 1], i + 2
            continue
        if arg.startswith(TOOL_FLAGS[1] + "="):
            given, i = arg.split("=", 1)[1], i + 1
            continue
        rest.append(arg)
        i += 1
    resolved = parser_for_model(model, served_name) if parser == AUTO else parser
    if given is not None and given != resolved:
        raise LayoutError(
            f"--tools {parser} (parser {resolved}) and the vLLM flag --tool-call-parser {given} "
            "disagree; give one"
        )
    return resolved, rest
