"""Which job of a sharded run owns an image id, and the name of each shard's files."""

from __future__ import annotations

import hashlib

__all__ = ["check_shard", "shard_label", "shard_of", "sharded_name"]


def check_shard(num_shards: int, shard_index: int) -> None:
    """Raises `ValueError` unless `0 <= shard_index < num_shards`."""
    if num_shards < 1 or not 0 <= shard_index < num_shards:
        raise ValueError(f"need num_shards >= 1 and 0 <= shard_index < num_shards, got {shard_index} of {num_shards}")


def shard_of(image_id: str, num_shards: int) -> int:
    """The shard (0 .. num_shards-1) that owns `image_id`: the first 8 bytes of its SHA-1, modulo `num_shards`
    (stable across machines and Python versions)."""
    return int.from_bytes(hashlib.sha1(image_id.encode("utf-8")).digest()[:8], "big") % num_shards


def sharded_name(stem: str, num_shards: int, shard_index: int) -> str:
    """`stem.jsonl` for an unsharded run, `stem-00003-of-00008.jsonl` for shard 3 of 8."""
    check_shard(num_shards, shard_index)
    return f"{stem}.jsonl" if num_shards == 1 else f"{stem}-{shard_index:05d}-of-{num_shards:05d}.jsonl"


def shard_label(step: str, num_shards: int, shard_index: int) -> str:
    """The progress bar's label: `ocr`, or `ocr shard 3/8`."""
    return step if num_shards == 1 else f"{step} shard {shard_index}/{num_shards}"
