"""``medloom validate`` checks that every template reads only variables its node provides."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from medloom.agents.agent import item_variables
from medloom.agents.templates import TemplateLibrary
from medloom.core.errors import GraphError
from medloom.core.records import Item
from medloom.graphs.spec import GraphSpec
from medloom.nodes.kind import NodeKind

ITEM_VARIABLES = frozenset(item_variables(Item(id="probe", index=0, question="")))
"""What every node passes to its templates: the item's fields."""


def check_template_variables(
    spec: GraphSpec, kinds: dict[str, NodeKind[Any]], templates: TemplateLibrary, file: str | Path | None
) -> None:
    """A GraphError naming the file, the node's template key and the first unknown variable."""
    for name, kind in kinds.items():
        for use in kind.templates(spec.nodes[name]):
            mode = spec.models[use.model].mode
            if not templates.has(use.template, mode):
                continue  # the kind's own check reports a missing template
            provided = ITEM_VARIABLES | use.variables
            unknown = sorted(templates.variables(use.template, mode) - provided)
            if unknown:
                source = templates.source_path(use.template, mode)
                raise GraphError(
                    f"template '{source or use.template}' uses '{unknown[0]}', which node '{name}' "
                    f"does not provide (it provides: {', '.join(sorted(provided))}); "
                    "per-item fields are under data (e.g. data.age)",
                    file=file,
                    key=f"nodes.{name}.{use.key}",
                )
