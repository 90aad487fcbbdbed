"""``medloom validate`` checks that every template reads only variables its node provides."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from medloom.agents.templates import TemplateLibrary
from medloom.graphs.spec import GraphSpec
from medloom.nodes.kind import NodeBuild, NodeKind


def check_template_variables(
    spec: GraphSpec, kinds: dict[str, NodeKind[Any]], templates: TemplateLibrary, file: str | Path | None
) -> None:
    """A GraphError naming the file, the node's template key and the first unknown variable
    (step ops check the templates they ask for while they are checked)."""
    for name, kind in kinds.items():
        build = NodeBuild(node=name, graph=spec, templates=templates, models={}, file=file)
        for use in kind.templates(spec.nodes[name]):
            build.need_variables(use)
