"""bf16 inference on CPU: weights cast once, linears on oneDNN's prepacked kernels, score heads in
float32; checked against the float32 model and sentence-transformers."""

import pytest
import torch

from rayir import BiEncoderModule, CrossEncoderModule
from rayir.data import read_docs
from rayir.models.precision import Float32Linear, PrepackedLinear, onednn_available, prepare_for_inference

pytestmark = pytest.mark.skipif(not onednn_available(), reason="this torch build or CPU has no oneDNN bf16 linear")


def test_prepared_minilm_matches_sentence_transformers(minilm_path, sample_collection):
    from sentence_transformers import SentenceTransformer

    texts = [d.text for d in read_docs(sample_collection)]
    reference = torch.from_numpy(SentenceTransformer(minilm_path, device="cpu").encode(texts, batch_size=8))
    module = BiEncoderModule(minilm_path).eval()
    context = prepare_for_inference(module.model, "bfloat16", "cpu")
    kinds = [type(m) for m in module.model.modules()]
    assert PrepackedLinear in kinds and torch.nn.Linear not in kinds
    fused = [m for m in module.model.modules() if isinstance(m, PrepackedLinear) and m.activation == "gelu"]
    assert len(fused) == module.model.encoder.config.num_hidden_layers
    with context():
        vectors = module.encode_docs(texts).vectors
    assert vectors.dtype == torch.bfloat16  # really ran in bf16
    cosine = torch.nn.functional.cosine_similarity(vectors.float(), reference)
    assert cosine.min() > 0.9995


@pytest.mark.filterwarnings("ignore:CUDA is not available")
def test_float32_and_gpu_precisions_leave_the_model_alone(tiny_bert_dir):
    module = BiEncoderModule(str(tiny_bert_dir)).eval()
    before = {k: v.clone() for k, v in module.model.state_dict().items()}
    prepare_for_inference(module.model, "float32", "cpu")
    autocast = prepare_for_inference(module.model, "bfloat16", "cuda")
    assert isinstance(autocast(), torch.autocast)
    after = module.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    with pytest.raises(ValueError, match="precision"):
        prepare_for_inference(module.model, "float16", "cpu")


def test_cross_encoder_score_head_stays_float32(tiny_bert_dir):
    queries = ["first query"] * 6 + ["second query"] * 6
    docs = [f"document number {i} about topic {i % 3}" for i in range(12)]
    module = CrossEncoderModule(str(tiny_bert_dir)).eval()
    with torch.inference_mode():
        reference = module.model(module.tokenizer.pairs(queries, docs))
    context = prepare_for_inference(module.model, "bfloat16", "cpu")
    assert isinstance(module.model.head, Float32Linear)
    with torch.inference_mode(), context():
        scores = module.model(module.tokenizer.pairs(queries, docs))
    assert scores.dtype == torch.float32
    assert torch.allclose(scores, reference, atol=0.05) and not torch.equal(scores, reference)
    # float32 scores: no two candidates tie because of bf16's 3 significant digits
    assert len(set(scores.tolist())) == len(docs)
