"""Batches of training / validation samples and the Lightning datamodule that feeds a module.

Datasets are built in ``setup`` (on each Ray Train worker, after the process group exists), and
Lightning's distributed sampler gives each worker its share of samples.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import lightning
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset

from .samples import RankSample


@dataclass
class RankBatch:
    """``B`` queries with ``n`` candidates each (flattened in ``docs``) and ``(B, n)`` targets."""

    query_ids: list[str]
    queries: list[str]
    doc_ids: list[list[str]]
    docs: list[str]
    num_docs: list[int]
    targets: torch.Tensor | None
    qrels: list[dict[str, int]]

    def __len__(self) -> int:
        return len(self.queries)


def collate_rank_samples(samples: Sequence[RankSample]) -> RankBatch:
    has_targets = [s.targets is not None for s in samples]
    if any(has_targets) and not all(has_targets):
        raise ValueError("a batch mixes samples with and without targets")
    return RankBatch(
        query_ids=[s.query_id for s in samples],
        queries=[s.query for s in samples],
        doc_ids=[list(s.doc_ids) for s in samples],
        docs=[text for s in samples for text in s.docs],
        num_docs=[len(s.docs) for s in samples],
        targets=_stack_targets(samples) if all(has_targets) else None,
        qrels=[s.qrels for s in samples],
    )


def _stack_targets(samples: Sequence[RankSample]) -> torch.Tensor:
    sizes = {len(s.targets) for s in samples}
    if len(sizes) != 1:
        raise ValueError(f"training samples in one batch need the same number of documents; found {sorted(sizes)}")
    return torch.tensor([s.targets for s in samples], dtype=torch.float32)


class RankDataModule(lightning.LightningDataModule):
    """Training tuples (``train``) and re-ranking samples for validation (``val``), built lazily."""

    def __init__(
        self,
        train: Callable[[], Dataset],
        batch_size: int,
        val: Callable[[], Dataset] | None = None,
        val_batch_size: int = 4,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self._build_train, self._build_val = train, val
        self.batch_size, self.val_batch_size, self.seed = batch_size, val_batch_size, seed
        self.train_dataset: Dataset | None = None
        self.val_dataset: Dataset | None = None

    def setup(self, stage: str) -> None:
        if self.train_dataset is None:
            self.train_dataset = self._build_train()
            if not isinstance(self.train_dataset, IterableDataset) and len(self.train_dataset) == 0:
                raise ValueError("the training data produced no samples")
        if self._build_val is not None and self.val_dataset is None:
            self.val_dataset = self._build_val()

    def train_dataloader(self) -> DataLoader:
        if isinstance(self.train_dataset, IterableDataset):
            # Streamed tuples keep their order; a job resumed mid-epoch passes over what it trained on.
            self.train_dataset.skip = self._batches_done_this_epoch() * self.batch_size
            return DataLoader(self.train_dataset, batch_size=self.batch_size, collate_fn=collate_rank_samples)
        generator = torch.Generator().manual_seed(self.seed)
        return DataLoader(
            self.train_dataset,
            batch_size=self.batch_size,
            shuffle=True,
            generator=generator,
            collate_fn=collate_rank_samples,
            drop_last=False,
        )

    def _batches_done_this_epoch(self) -> int:
        """Training batches of the current epoch already done (non-zero when resuming mid-epoch)."""
        trainer = getattr(self, "trainer", None)
        if trainer is None:
            return 0
        return int(trainer.fit_loop.epoch_loop.batch_progress.current.processed)

    def val_dataloader(self) -> DataLoader | list:
        if self.val_dataset is None:
            return []
        return DataLoader(
            self.val_dataset, batch_size=self.val_batch_size, shuffle=False, collate_fn=collate_rank_samples
        )
