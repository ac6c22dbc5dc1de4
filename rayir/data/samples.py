"""The records that flow between readers, datasets, models and jobs."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class DocSample:
    doc_id: str
    text: str


@dataclass(frozen=True)
class QuerySample:
    query_id: str
    text: str


@dataclass
class RankSample:
    """One query with candidate documents and optional training targets (one per document)."""

    query_id: str
    query: str
    doc_ids: list[str]
    docs: list[str]
    targets: list[float] | None = None
    qrels: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.doc_ids) != len(self.docs):
            raise ValueError(f"query {self.query_id}: {len(self.doc_ids)} ids but {len(self.docs)} texts")
        if self.targets is not None and len(self.targets) != len(self.docs):
            raise ValueError(f"query {self.query_id}: {len(self.targets)} targets for {len(self.docs)} documents")
