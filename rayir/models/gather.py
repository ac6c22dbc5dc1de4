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
    gathered_mask = gathered_ids = gathered_first = None
    if mask is not None:
        gathered_mask = _gather_plain(mask.to(torch.int32), rows, length, size).bool()
    if embeddings.token_ids is not None:  # COIL: the token ids (no gradient) and first-token vectors
        gathered_ids = _gather_plain(embeddings.token_ids, rows, length, size)
        firsts = torch.distributed.nn.functional.all_gather(_pad_rows(embeddings.first, max(rows), None))
        gathered_first = torch.cat([part[:n] for part, n in zip(firsts, rows)])
    return Embeddings(gathered, gathered_mask, gathered_ids, gathered_first), sum(rows[:rank])


def _gather_plain(tensor: torch.Tensor, rows: list[int], length: int | None, size: int) -> torch.Tensor:
    """Every worker's rows of a tensor that carries no gradient (masks, token ids)."""
    padded = _pad_rows(tensor, max(rows), length)
    parts = [torch.zeros_like(padded) for _ in range(size)]
    dist.all_gather(parts, padded)
    return torch.cat([part[:n] for part, n in zip(parts, rows)])


def gather_objects(value: object) -> list[object]:
    """Every worker's ``value`` (validation runs), in rank order."""
    rank, size = world()
    if size == 1:
        return [value]
    values: list[object] = [None] * size
    dist.all_gather_object(values, value)
    return values
