"""`ShardWriter`: the Parquet shards of one config and split, in row groups of ~100 figures, closed at a size."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

__all__ = ["ROW_GROUP_BYTES", "ROW_GROUP_MAX_ROWS", "ShardWriter"]

# A row group closes at 8 MiB or 1,000 rows: ~100 real figures (the `datasets` default for image data, which keeps
# streaming and the Hub viewer light), but not thousands of tiny groups, whose metadata would grow without bound.
ROW_GROUP_BYTES = 8 * 1024**2
ROW_GROUP_MAX_ROWS = 1000
STATISTICS_COLUMNS = ("image_id", "patent_id", "figure")


class ShardWriter:
    """The Parquet shards of one config and split: row groups of `ROW_GROUP_BYTES` or `ROW_GROUP_MAX_ROWS`, a new
    shard once the current one holds `max_bytes`; `close` names them `<split>-<i>-of-<n>.parquet`."""

    def __init__(self, folder: Path, split: str, schema: pa.Schema, max_bytes: int):
        self.folder, self.split, self.schema, self.max_bytes = folder, split, schema, max_bytes
        self.paths: list[Path] = []
        self.num_examples = 0
        self._rows: list[dict[str, Any]] = []
        self._writer: pq.ParquetWriter | None = None
        self._shard_bytes = 0
        self._group_bytes = 0

    def add(self, row: dict[str, Any]) -> None:
        self._rows.append(row)
        self.num_examples += 1
        size = len(row["image"]["bytes"]) + len(row.get("description") or "") + 16 * len(row["ocr_words"] or ())
        self._group_bytes += size
        self._shard_bytes += size
        if self._group_bytes >= ROW_GROUP_BYTES or len(self._rows) >= ROW_GROUP_MAX_ROWS:
            self._flush()
        if self._shard_bytes >= self.max_bytes:
            self._close_shard()

    def _flush(self) -> None:
        if not self._rows:
            return
        if self._writer is None:
            self.folder.mkdir(exist_ok=True)
            self.paths.append(self.folder / f"{self.split}-{len(self.paths):05d}.parquet")
            # Statistics only for the short id columns: min/max of descriptions and images would bloat the footer.
            self._writer = pq.ParquetWriter(self.paths[-1], self.schema, write_statistics=list(STATISTICS_COLUMNS))
        self._writer.write_table(pa.Table.from_pylist(self._rows, schema=self.schema))
        self._rows = []
        self._group_bytes = 0

    def _close_shard(self) -> None:
        self._flush()
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        self._shard_bytes = 0

    def close(self) -> list[Path]:
        """Closes the last shard and renames all; no file when no rows (datasets 5.2 cannot read empty shards)."""
        self._close_shard()
        total = len(self.paths)
        final = [path.with_name(f"{self.split}-{i:05d}-of-{total:05d}.parquet") for i, path in enumerate(self.paths)]
        for path, target in zip(self.paths, final):
            path.rename(target)
        return final
