"""Base of the checks that read a knowledge graph: which KG, and loading it once."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Self

from pydantic import ValidationError

from medloom.kg.spec import KGSpec
from medloom.kg.store import LoadedKG, load_kg
from medloom.verifiers.base import Check, CheckResources


class KGCheck(Check):
    """A check over a KG: its own ``source``/``format`` params, else the recipe's ``resources.kg``,
    else the bundled demo KG; loaded on first use."""

    def __init__(
        self,
        *,
        source: str | None = None,
        format: str = "auto",
        kg: KGSpec | None = None,
        base_dir: Path | None = None,
    ):
        try:
            self.spec = KGSpec(source=source, format=format) if source else (kg or KGSpec())  # type: ignore[arg-type]
        except ValidationError as exc:
            raise TypeError(f"{self.name}: {exc.errors()[0]['msg']}") from None
        self.base_dir = base_dir
        self._loaded: LoadedKG | None = None

    @classmethod
    def from_params(cls, params: dict[str, Any], resources: CheckResources | None = None) -> Self:
        return cls(**params, kg=resources.kg if resources is not None else None)

    @property
    def loaded(self) -> LoadedKG:
        if self._loaded is None:
            self._loaded = load_kg(self.spec, self.base_dir)
        return self._loaded
