"""Input datasets: readers for JSONL, CSV, Parquet, `datasets` on disk and the Hub."""

from medloom.data.items import iter_items, row_to_item
from medloom.data.readers import BadRow, DatasetSpec, FieldMap, count_rows, iter_rows

__all__ = [
    "BadRow",
    "DatasetSpec",
    "FieldMap",
    "count_rows",
    "iter_items",
    "iter_rows",
    "row_to_item",
]
