"""Real checkpoints score exactly as the libraries they come from."""

from __future__ import annotations

import torch

from rayir import BiEncoderModule, CrossEncoderModule
from tests.conftest import shared_path

WORDS = "retrieval protein folding neural ranking cells vaccine marathon glacier compiler index".split()


def varied_texts(n: int = 60) -> list[str]:
    """Texts from one word to several hundred tokens (longer than the 256-token limit)."""
    texts = []
    for i in range(n):
        length = 1 + (i * 37) % 400
        texts.append(" ".join(WORDS[(i + j) % len(WORDS)] for j in range(length)) + f" #{i}.")
    texts[0] = "a"
    texts[1] = "Émile's café — naïve façade; 東京 and ß!"
    return texts


def test_minilm_matches_sentence_transformers(minilm_path):
    from sentence_transformers import SentenceTransformer

    texts = varied_texts()
    ours = BiEncoderModule(minilm_path, batch_size=16)
    reference = SentenceTransformer(minilm_path, device="cpu")
    ours_docs = ours.encode_docs(texts).vectors
    ref_docs = reference.encode(texts, convert_to_tensor=True, batch_size=7)
    assert ours_docs.shape == (len(texts), 384)
    assert (ours_docs - ref_docs).abs().max().item() <= 1e-5

    query = "how do proteins fold"
    scores = ours.score(query, texts).scores
    ref_scores = reference.similarity(reference.encode([query], convert_to_tensor=True), ref_docs)[0]
    assert (scores - ref_scores).abs().max().item() <= 1e-5


def test_splade_tiny_matches_sparse_encoder():
    from sentence_transformers import SparseEncoder

    path = str(shared_path("models", "splade-tiny"))
    texts = varied_texts(50)
    ours = BiEncoderModule(path, batch_size=8)
    assert ours.config.mode == "sparse"
    reference = SparseEncoder(path, device="cpu")
    ours_vectors = ours.encode_docs(texts).vectors
    ref_vectors = reference.encode(texts, convert_to_tensor=True, batch_size=5).to_dense()
    assert (ours_vectors - ref_vectors).abs().max().item() <= 1e-4
    assert (ours_vectors > 0).sum(dim=1).min() > 0  # genuinely sparse but not empty

    query = "protein folding"
    ref_query = reference.encode([query], convert_to_tensor=True).to_dense()
    expected = (ref_query @ ref_vectors.T)[0]
    assert (ours.score(query, texts).scores - expected).abs().max().item() <= 1e-3


def test_sequence_classification_cross_encoder_matches_predict(minilm_path, tmp_path):
    from sentence_transformers import CrossEncoder

    torch.manual_seed(7)
    reference = CrossEncoder(minilm_path, num_labels=1, device="cpu")
    torch.nn.init.normal_(reference.model.classifier.weight, std=0.5)
    reference.save(str(tmp_path))
    reference = CrossEncoder(str(tmp_path), device="cpu")

    ours = CrossEncoderModule(tmp_path, batch_size=8)
    assert ours.config.mode == "sequence_classification"
    query, docs = "what do proteins do", varied_texts(50)
    expected = torch.tensor(reference.predict([(query, d) for d in docs], activation_fn=torch.nn.Identity()))
    scores = ours.score(query, docs).scores
    assert scores.shape == (50,)
    assert scores.std() > 0
    assert (scores - expected).abs().max().item() <= 1e-5
