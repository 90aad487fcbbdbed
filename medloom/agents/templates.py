"""Prompt templates: jinja2 files, ``<name>.chat.j2`` and ``<name>.completion.j2``.

A chat template is split into messages at lines ``--- system ---``, ``--- user ---`` and
``--- assistant ---``; a completion template renders to one prompt string.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import jinja2
import jinja2.meta

from medloom.core.calls import ChatMessage
from medloom.core.errors import ConfigError

BUILTIN_DIR = Path(__file__).parent / "templates"
Mode = Literal["chat", "completion"]
_ROLE_LINE = re.compile(r"^---\s*(system|user|assistant)\s*---\s*$", re.M)


class TemplateLibrary:
    """Finds templates in user directories first, then among the built-in ones.

    Each template file is read and compiled once per library (no check for edits on every render),
    and a template imported without context (``{% from "_x.j2" import shots %}``) is rendered once:
    few-shot blocks that depend on no item belong in such a template."""

    def __init__(self, search_paths: list[str | Path] | None = None):
        self.search_paths = [Path(p) for p in (search_paths or [])] + [BUILTIN_DIR]
        self._env = jinja2.Environment(
            loader=jinja2.FileSystemLoader([str(p) for p in self.search_paths]),
            undefined=jinja2.StrictUndefined,
            keep_trailing_newline=True,
            trim_blocks=True,
            lstrip_blocks=True,
            autoescape=False,
            auto_reload=False,  # a run renders a template thousands of times: no stat per render
        )

    def filename(self, name: str, mode: Mode) -> str:
        return f"{name}.{mode}.j2"

    def has(self, name: str, mode: Mode) -> bool:
        return any((p / self.filename(name, mode)).is_file() for p in self.search_paths)

    def available(self) -> list[str]:
        names: set[str] = set()
        for path in self.search_paths:
            if path.is_dir():
                names.update(f.name.split(".")[0] for f in path.glob("*.j2") if not f.name.startswith("_"))
        return sorted(names)

    def render(self, name: str, mode: Mode, variables: dict[str, Any]) -> str | list[ChatMessage]:
        """The prompt (completion) or the messages (chat) of template ``name``."""
        filename = self.filename(name, mode)
        try:
            template = self._env.get_template(filename)
        except jinja2.TemplateNotFound:
            other: Mode = "chat" if mode == "completion" else "completion"
            hint = f" (a {other} variant exists)" if self.has(name, other) else ""
            raise ConfigError(
                f"prompt template '{filename}' not found in "
                f"{', '.join(str(p) for p in self.search_paths)}{hint}",
                key="template",
            ) from None
        try:
            text = template.render(**variables)
        except jinja2.UndefinedError as exc:
            raise ConfigError(f"template '{filename}': {exc}", key="template") from exc
        # A completion prompt ends exactly where the model continues ("Step 1:").
        return split_chat(text) if mode == "chat" else text.rstrip()

    def variables(self, name: str, mode: Mode) -> set[str]:
        """The variables template ``name`` reads from its context, following its includes."""
        seen: set[str] = set()
        found: set[str] = set()
        todo = [self.filename(name, mode)]
        while todo:
            filename = todo.pop()
            if filename in seen:
                continue
            seen.add(filename)
            source, _, _ = self._env.loader.get_source(self._env, filename)  # type: ignore[union-attr]
            parsed = self._env.parse(source)
            found |= jinja2.meta.find_undeclared_variables(parsed)
            todo.extend(t for t in jinja2.meta.find_referenced_templates(parsed) if t)
        return found - set(self._env.globals)

    def source_path(self, name: str, mode: Mode) -> Path | None:
        for path in self.search_paths:
            candidate = path / self.filename(name, mode)
            if candidate.is_file():
                return candidate
        return None


def split_chat(text: str) -> list[ChatMessage]:
    """Messages from a rendered chat template (text before any marker is a user message)."""
    parts = _ROLE_LINE.split(text)
    messages: list[ChatMessage] = []
    head = parts[0].strip()
    if head:
        messages.append(ChatMessage(role="user", content=head))
    for role, body in zip(parts[1::2], parts[2::2], strict=False):
        content = body.strip()
        if content:
            messages.append(ChatMessage(role=role, content=content))  # type: ignore[arg-type]
    return messages
