"""The vector peers of ``scale.py``: each returns ``(build, search)`` over one embeddings table.

``build()`` is timed as the peer's index build; ``search(index, part)`` answers one ``QueryBatch``
with the ``(B, K)`` corpus row numbers of its top ``K``, on one thread.
"""

from __future__ import annotations

import numpy as np

K = 10


def faiss_flat(table, dim: int):
    import faiss

    from rayir.encode.formats import dense_matrix

    vectors = dense_matrix(table)
    faiss.omp_set_num_threads(1)

    def build():
        index = faiss.IndexFlatIP(dim)
        index.add(vectors)
        return index

    return build, lambda index, part: index.search(np.ascontiguousarray(part.vectors), K)[1]


def faiss_hnsw(table, dim: int):
    import faiss

    from rayir.encode.formats import dense_matrix

    vectors = dense_matrix(table)

    def build():
        faiss.omp_set_num_threads(2)  # building on both cores; searching on one
        index = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
        index.add(vectors)
        index.hnsw.efSearch = 64
        faiss.omp_set_num_threads(1)
        return index

    return build, lambda index, part: index.search(np.ascontiguousarray(part.vectors), K)[1]


def torch_csr(table, dim: int):
    import torch

    from rayir.encode.formats import sparse_rows

    indptr, terms, weights = sparse_rows(table)
    torch.set_num_threads(1)

    def build():
        return torch.sparse_csr_tensor(
            torch.from_numpy(indptr),
            torch.from_numpy(terms.astype(np.int64)),
            torch.from_numpy(weights),
            size=(len(indptr) - 1, dim),
        )

    def search(matrix, part):
        dense = np.zeros((len(part), dim), np.float32)
        for row in range(len(part)):
            lo, hi = part.indptr[row], part.indptr[row + 1]
            dense[row, part.terms[lo:hi]] = part.weights[lo:hi]
        scores = (matrix @ torch.from_numpy(dense).T).T
        return torch.topk(scores, K, dim=1).indices.numpy()

    return build, search


def seismic_peer(table, dim: int):
    import seismic

    from rayir.encode.formats import sparse_rows

    indptr, terms, weights = sparse_rows(table)

    def build():
        dataset = seismic.SeismicDataset(dim)
        dataset.add_documents_by_id([str(i) for i in range(len(indptr) - 1)], terms.astype(np.int64), weights, indptr)
        # Seismic's documented defaults for SPLADE-size collections, built on both cores.
        return seismic.SeismicIndex.build_from_dataset(dataset, num_threads=2)

    def search(index, part):
        ids = np.array([str(i) for i in range(len(part))], dtype=seismic.get_seismic_string())
        components = [
            np.array(
                [str(t) for t in part.terms[part.indptr[r] : part.indptr[r + 1]]], dtype=seismic.get_seismic_string()
            )
            for r in range(len(part))
        ]
        values = [part.weights[part.indptr[r] : part.indptr[r + 1]].astype(np.float32) for r in range(len(part))]
        found = index.batch_search(ids, components, values, k=K, query_cut=20, heap_factor=0.7, num_threads=1)
        out = np.zeros((len(part), K), np.int64)
        for hits in found:  # lists may come in any order: each names its query
            if hits:
                ranked = [int(doc) for _, _, doc in hits][:K]
                out[int(hits[0][0]), : len(ranked)] = ranked
        return out

    return build, search


PEER_BUILDERS = {"faiss-flat": faiss_flat, "faiss-hnsw": faiss_hnsw, "torch-csr": torch_csr, "seismic": seismic_peer}
