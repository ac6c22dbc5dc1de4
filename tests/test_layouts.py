"""External checkpoint layouts load and score as a direct computation on their weights says."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from rayir import BiEncoderModule, CrossEncoderModule
from rayir.models import load_bi_encoder
from tests.conftest import tiny_bert_config

QUERY = "what makes glaciers move"
DOCS = ["Glaciers flow under their own weight, sliding on meltwater.", "Coffee contains caffeine!", "ice, snow; ice."]


@pytest.fixture(scope="module")
def colbert_dir(tmp_path_factory, bert_tokenizer):
    """The official ColBERT layout: bert.* weights + bias-free linear, HF_ColBERT, artifact.metadata."""
    from transformers import BertModel

    torch.manual_seed(3)
    path = tmp_path_factory.mktemp("colbert")
    config = tiny_bert_config(architectures=["HF_ColBERT"])
    bert = BertModel(config, add_pooling_layer=False)
    state = {f"bert.{k}": v.contiguous() for k, v in bert.state_dict().items()}
    state["linear.weight"] = torch.randn(16, config.hidden_size) * 0.1
    save_file(state, str(path / "model.safetensors"))
    config.save_pretrained(path)
    (path / "artifact.metadata").write_text(
        json.dumps(
            {
                "query_maxlen": 12,
                "doc_maxlen": 20,
                "dim": 16,
                "similarity": "cosine",
                "mask_punctuation": True,
                "attend_to_mask_tokens": False,
                "query_token_id": "[unused0]",
                "doc_token_id": "[unused1]",
            }
        )
    )
    bert_tokenizer.save_pretrained(path)
    return path, bert, state["linear.weight"]


def test_colbert_layout_scores_like_direct_computation(colbert_dir, bert_tokenizer):
    path, bert, linear = colbert_dir
    module = BiEncoderModule(path)
    cfg = module.config
    assert (cfg.mode, cfg.embedding_dim, cfg.query_max_length, cfg.doc_max_length) == ("multi_vector", 16, 12, 20)
    scores = module.score(QUERY, DOCS).scores

    tok = bert_tokenizer
    bert.eval()

    def encode(text, marker, max_len, expand):
        ids = tok(text, truncation=True, max_length=max_len - 1)["input_ids"]
        ids = [ids[0], tok.convert_tokens_to_ids(marker)] + ids[1:]
        attention = [1] * len(ids)
        if expand:
            attention += [0] * (max_len - len(ids))
            ids += [tok.mask_token_id] * (max_len - len(ids))
        with torch.no_grad():
            out = bert(input_ids=torch.tensor([ids]), attention_mask=torch.tensor([attention])).last_hidden_state[0]
        vectors = torch.nn.functional.normalize(out @ linear.T, dim=-1).numpy()
        punct = {tok.convert_tokens_to_ids(c) for c in ",.;!"}
        keep = [True] * len(ids) if expand else [i not in punct for i in ids]
        return vectors[np.array(keep)]

    q = encode(QUERY, "[unused0]", 12, expand=True)
    assert q.shape[0] == 12
    for doc, score in zip(DOCS, scores.tolist()):
        d = encode(doc, "[unused1]", 20, expand=False)
        expected = (q @ d.T).max(axis=1).sum()
        assert score == pytest.approx(float(expected), abs=1e-4)


def test_sentence_transformers_dense_module(tiny_bert_dir, tmp_path):
    from sentence_transformers import SentenceTransformer, models

    torch.manual_seed(5)
    transformer = models.Transformer(str(tiny_bert_dir), max_seq_length=24)
    pooling = models.Pooling(32, pooling_mode="max")
    dense = models.Dense(32, 8, bias=True, activation_function=torch.nn.Identity())
    reference = SentenceTransformer(modules=[transformer, pooling, dense, models.Normalize()], device="cpu")
    reference.save(str(tmp_path))
    reference = SentenceTransformer(str(tmp_path), device="cpu")
    module = BiEncoderModule(tmp_path)
    assert (module.config.pooling, module.config.embedding_dim, module.config.normalize) == ("max", 8, True)
    texts = DOCS + ["a much longer text " * 20]
    expected = reference.encode(texts, convert_to_tensor=True)
    assert (module.encode_docs(texts).vectors - expected).abs().max() <= 1e-5


def _t5_dir(tmp_path):
    """A tiny random T5 with a word-level tokenizer that knows 'true', 'false' and '<extra_id_10>'."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast, T5Config, T5ForConditionalGeneration

    words = ["<pad>", "</s>", "<unk>", "true", "false", "<extra_id_10>", "Query:", "Document:", "Relevant:"]
    words += sorted({w for text in [QUERY] + DOCS for w in text.split()})
    backend = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<pad>", eos_token="</s>", unk_token="<unk>"
    )
    torch.manual_seed(11)
    config = T5Config(
        vocab_size=len(words),
        d_model=16,
        d_ff=32,
        d_kv=8,
        num_layers=1,
        num_heads=2,
        decoder_start_token_id=0,
        pad_token_id=0,
        eos_token_id=1,
    )
    model = T5ForConditionalGeneration(config)
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    return model.eval(), tokenizer


@pytest.mark.parametrize("mode", ["mono_t5", "rank_t5"])
def test_t5_rankers(tmp_path, mode):
    t5, tokenizer = _t5_dir(tmp_path)
    module = CrossEncoderModule(tmp_path, mode=mode) if mode == "rank_t5" else CrossEncoderModule(tmp_path)
    assert module.config.mode == mode
    scores = module.score(QUERY, DOCS).scores
    for doc, score in zip(DOCS, scores.tolist()):
        ids = tokenizer(f"Query: {QUERY} Document: {doc} Relevant:", return_tensors="pt")
        with torch.no_grad():
            logits = t5(**ids, decoder_input_ids=torch.zeros((1, 1), dtype=torch.long)).logits[0, 0]
        vocab = tokenizer.get_vocab()
        if mode == "mono_t5":
            pair = torch.stack([logits[vocab["true"]], logits[vocab["false"]]])
            expected = torch.log_softmax(pair, dim=0)[0]
        else:
            expected = logits[vocab["<extra_id_10>"]]
        assert score == pytest.approx(float(expected), abs=1e-5)


@pytest.mark.parametrize(
    "settings",
    [
        {"mode": "dense", "pooling": "first", "embedding_dim": 12, "normalize": True, "similarity": "cosine"},
        {
            "mode": "multi_vector",
            "embedding_dim": 8,
            "query_expansion": True,
            "mask_punctuation": True,
            "query_marker": "[unused0]",
            "doc_marker": "[unused1]",
            "query_max_length": 10,
        },
    ],
)
def test_bi_encoder_round_trips_through_save_pretrained(tiny_bert_dir, tmp_path, settings):
    module = BiEncoderModule(tiny_bert_dir, **settings)
    module.model.save_pretrained(tmp_path)
    module.tokenizer.tokenizer.save_pretrained(tmp_path)
    again = BiEncoderModule(tmp_path)

    def comparable(config):
        return {k: v for k, v in config.to_dict().items() if k != "_name_or_path"}

    assert comparable(again.config) == comparable(module.config)
    assert torch.allclose(again.score(QUERY, DOCS).scores, module.score(QUERY, DOCS).scores, atol=1e-6)


def test_sparse_inference_free_queries_are_bags_of_tokens(tiny_mlm_dir, bert_tokenizer):
    module = BiEncoderModule(tiny_mlm_dir, query_inference_free=True)
    query = module.encode_queries(["glacier ice ice"]).vectors[0]
    ids = bert_tokenizer("glacier ice ice", add_special_tokens=False)["input_ids"]
    assert set(torch.nonzero(query).flatten().tolist()) == set(ids)
    assert set(query[query > 0].tolist()) == {1.0}
    docs = module.encode_docs(DOCS).vectors
    assert torch.allclose(module.score("glacier ice ice", DOCS).scores, docs @ query, atol=1e-5)


def test_cross_encoder_pointwise_and_listwise_round_trip(tiny_bert_dir, tmp_path):
    for mode in ("pointwise", "listwise"):
        module = CrossEncoderModule(tiny_bert_dir, mode=mode, listwise_heads=2)
        target = tmp_path / mode
        module.model.save_pretrained(target)
        module.tokenizer.tokenizer.save_pretrained(target)
        again = CrossEncoderModule(target)
        assert again.config.mode == mode
        assert torch.allclose(again.score(QUERY, DOCS).scores, module.score(QUERY, DOCS).scores, atol=1e-6)


def test_cross_encoder_starts_from_a_fine_tuned_bi_encoder_backbone(tiny_bert_dir, tmp_path):
    bi = BiEncoderModule(tiny_bert_dir, pooling="first")
    with torch.no_grad():  # "fine-tune": the backbone now differs from tiny_bert_dir's
        bi.model.encoder.embeddings.word_embeddings.weight.mul_(1.5)
    bi.model.save_pretrained(tmp_path / "bi")
    bi.tokenizer.tokenizer.save_pretrained(tmp_path / "bi")
    cross = CrossEncoderModule(tmp_path / "bi")
    assert cross.config.mode == "pointwise"
    for name, tensor in bi.model.encoder.state_dict().items():
        assert torch.equal(cross.model.encoder.state_dict()[name], tensor), name
    assert cross.score(QUERY, DOCS).scores.shape == (len(DOCS),)
    with pytest.raises(ValueError, match="dense or multi-vector"):
        CrossEncoderModule(tmp_path / "bi", mode="mono_t5")


def test_listwise_scores_depend_on_the_list_and_permute_with_it(tiny_bert_dir):
    module = CrossEncoderModule(tiny_bert_dir, mode="listwise", listwise_heads=2)
    torch.nn.init.normal_(module.model.head.weight, std=1.0)
    full = module.score(QUERY, DOCS).scores
    reordered = module.score(QUERY, DOCS[::-1]).scores
    assert torch.allclose(full, reordered.flip(0), atol=1e-5)
    alone = module.score(QUERY, DOCS[:1]).scores
    assert not torch.allclose(alone, full[:1], atol=1e-6)
    two_queries = module.score([QUERY, "coffee"], [DOCS, DOCS[:2]])
    assert torch.allclose(two_queries.per_query()[0], full, atol=1e-5)


def test_plain_backbone_defaults_to_mean_pooled_dense(tiny_bert_dir):
    from transformers import AutoModel, AutoTokenizer

    model, _ = load_bi_encoder(tiny_bert_dir)
    assert (model.config.mode, model.config.pooling) == ("dense", "mean")
    bert = AutoModel.from_pretrained(tiny_bert_dir).eval()
    tok = AutoTokenizer.from_pretrained(tiny_bert_dir)
    with torch.no_grad():
        hidden = bert(**tok(DOCS[0], return_tensors="pt")).last_hidden_state[0]
    module = BiEncoderModule(tiny_bert_dir)
    assert torch.allclose(module.encode_docs(DOCS[:1]).vectors[0], hidden.mean(0), atol=1e-5)
