"""Cross-worker in-batch negatives: gather every worker's document embeddings, keeping gradients.

``torch.distributed.nn.functional.all_gather`` sends gradients back to the worker that produced each
slice, so with DDP's gradient averaging a worker's loss over the global batch trains exactly like
one process holding the whole global batch.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F

from .bi_encoder import Embeddings


def world() -> tuple[int, int]:
    """``(rank, world_size)``; ``(0, 1)`` outside a process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _pad_rows(tensor: torch.Tensor, rows: int, length: int | None) -> torch.Tensor:
    if length is not None and tensor.dim() >= 2:  # token dimension of multi-vector embeddings / masks
        pad = [0, 0] * (tensor.dim() - 2) + [0, length - tensor.shape[1]]
        tensor = F.pad(tensor, pad)
    return F.pad(tensor, [0, 0] * (tensor.dim() - 1) + [0, rows - tensor.shape[0]])


def gather_embeddings(embeddings: Embeddings) -> tuple[Embeddings, int]:
    """Every worker's embeddings in rank order, and the row offset of this worker's own."""
    rank, size = world()
    if size == 1:
        return embeddings, 0
    vectors, mask = embeddings.vectors, embeddings.mask
    header = torch.tensor([vectors.shape[0], vectors.shape[1] if mask is not None else 0], device=vectors.device)
    headers = [torch.zeros_like(header) for _ in range(size)]
    dist.all_gather(headers, header)
    rows = [int(h[0]) for h in headers]
    length = max(int(h[1]) for h in headers) if mask is not None else None
    parts = torch.distributed.nn.functional.all_gather(_pad_rows(vectors, max(rows), length))
    gathered = torch.cat([part[:n] for part, n in zip(parts, rows)])
    gathered_mask = None
    if mask is not None:
        padded = _pad_rows(mask.to(torch.int32), max(rows), length)
        masks = [torch.zeros_like(padded) for _ in range(size)]
        dist.all_gather(masks, padded)
        gathered_mask = torch.cat([m[:n] for m, n in zip(masks, rows)]).bool()
    return Embeddings(gathered, gathered_mask), sum(rows[:rank])


def gather_objects(value: object) -> list[object]:
    """Every worker's ``value`` (validation runs), in rank order."""
    rank, size = world()
    if size == 1:
        return [value]
    values: list[object] = [None] * size
    dist.all_gather_object(values, value)
    return values
