"""transformers BERT -> EBERT: numerical parity of the masked-LM logits with a real
BertForMaskedLM, config mapping, epigenetic inputs switched on at conversion, and clear errors."""
from __future__ import annotations

import subprocess
import sys

import pytest
import torch

transformers = pytest.importorskip("transformers")

from ebert_modelzoo.models.convert import (  # noqa: E402
    convert_bert_state_dict,
    ebert_from_bert,
    pretrain_config_from_bert,
)

VOCAB, SEQ, B, P = 21, 18, 3, 5


def hf_bert(seed: int = 0, **keys) -> "transformers.BertForMaskedLM":
    """A randomly initialised BertForMaskedLM of tiny size, eval mode, fp32."""
    config = transformers.BertConfig(
        vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=40, hidden_act="gelu", max_position_embeddings=40, **keys,
    )
    torch.manual_seed(seed)
    model = transformers.BertForMaskedLM(config).eval()
    with torch.no_grad():  # BERT starts LayerNorms and biases at 1/0; perturb them so they count
        for name, param in model.named_parameters():
            if "LayerNorm" in name or name.endswith("bias"):
                param.add_(torch.randn_like(param) * 0.1)
    return model


def dna_batch(seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    attention = torch.ones(B, SEQ, dtype=torch.int32)
    attention[1, 12:] = 0
    attention[2, 7:] = 0
    return {
        "input_ids": torch.randint(0, VOCAB, (B, SEQ), generator=g, dtype=torch.int32),
        "attention_mask": attention,
        "masked_lm_positions": torch.tensor(
            [[1, 5, 9, 16, 17], [0, 3, 11, 2, 2], [1, 2, 6, 4, 0]], dtype=torch.int32
        ),
        "labels": torch.randint(0, VOCAB, (B, P), generator=g, dtype=torch.int32),
        "masked_lm_mask": torch.tensor([[1.0, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 1, 1, 1, 0]]),
    }


def reference_logits(hf, batch: dict) -> torch.Tensor:
    """HF logits over the whole sequence, gathered at the masked positions: (B, P, V)."""
    with torch.no_grad():
        full = hf(input_ids=batch["input_ids"].long(), attention_mask=batch["attention_mask"].long()).logits
    index = batch["masked_lm_positions"].long().unsqueeze(-1).expand(B, P, full.shape[-1])
    return torch.gather(full, 1, index)


@pytest.mark.parametrize("kernel", ["sdpa", "explicit"])
@pytest.mark.parametrize("tied", [True, False])
def test_masked_lm_logits_match_transformers(kernel, tied):
    hf = hf_bert(tie_word_embeddings=tied)
    model = ebert_from_bert(hf, attention_kernel=kernel).eval()
    assert model.config.share_embedding_weights == tied
    batch = dna_batch()
    with torch.no_grad():
        ours = model.outputs(batch).mlm_logits
    diff = (ours - reference_logits(hf, batch)).abs().max().item()
    assert diff <= 1e-5, diff


def test_parity_from_state_dict_and_config_dict():
    hf = hf_bert(seed=3)
    model = ebert_from_bert(dict(hf.state_dict()), hf.config.to_dict()).eval()
    batch = dna_batch(1)
    with torch.no_grad():
        ours = model.outputs(batch).mlm_logits
    assert (ours - reference_logits(hf, batch)).abs().max().item() <= 1e-5


def test_config_mapping():
    hf = hf_bert(hidden_dropout_prob=0.2, attention_probs_dropout_prob=0.3, layer_norm_eps=1e-6)
    config = pretrain_config_from_bert(hf.config)
    assert (config.vocab_size, config.hidden_size, config.num_hidden_layers, config.num_heads) == (VOCAB, 32, 2, 4)
    assert (config.filter_size, config.max_position_embeddings) == (40, 40)
    assert (config.dropout_rate, config.attention_dropout_rate, config.layer_norm_epsilon) == (0.2, 0.3, 1e-6)
    assert config.encoder_nonlinearity == "gelu" and config.name == "ebert"
    assert (config.num_chromatin_states, config.num_signal_tracks, config.num_cell_types) == (0, 0, 0)
    assert config.state_mlm_loss_weight == 0
    tanh = pretrain_config_from_bert({**hf.config.to_dict(), "hidden_act": "gelu_new"})
    assert tanh.encoder_nonlinearity == "gelu_tanh"


@pytest.mark.parametrize(
    "change,message",
    [
        ({"hidden_act": "silu"}, "hidden_act"),
        ({"position_embedding_type": "relative_key"}, "position_embedding_type"),
        ({"is_decoder": True}, "decoder"),
        ({"hidden_size": None}, "hidden_size"),
    ],
)
def test_config_mapping_rejects_what_ebert_cannot_be(change, message):
    with pytest.raises(ValueError, match=message):
        pretrain_config_from_bert({**hf_bert().config.to_dict(), **change})


def test_epigenetic_inputs_on_keep_dna_weights_exactly():
    hf = hf_bert()
    epigenome = dict(
        num_chromatin_states=18, num_signal_tracks=3, num_cell_types=4, tokens_per_bin=4,
        state_mlm_loss_weight=0.5,
    )
    plain = ebert_from_bert(hf)
    torch.manual_seed(0)
    model = ebert_from_bert(hf, **epigenome)
    converted = convert_bert_state_dict(hf.state_dict(), model.config)
    state = model.state_dict()
    for key, tensor in converted.items():
        assert torch.equal(state[key], tensor), key
        assert torch.equal(plain.state_dict()[key], tensor), key
    folded = hf.bert.embeddings.position_embeddings.weight + hf.bert.embeddings.token_type_embeddings.weight[0]
    assert torch.equal(state["ebert.embeddings.position_embeddings.weight"], folded)
    fresh = set(state) - set(converted)
    assert "ebert.embeddings.state_embeddings.weight" in fresh
    assert "ebert.embeddings.signal_projection.weight" in fresh
    assert "ebert.embeddings.cell_type_embeddings.weight" in fresh
    assert any(key.startswith("state_head.") for key in fresh)
    assert 0 < state["ebert.embeddings.state_embeddings.weight"].std() < 0.05  # fresh BERT init


def test_legacy_gamma_beta_names_load():
    hf = hf_bert()
    renamed = {
        key.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta"): value
        for key, value in hf.state_dict().items()
    }
    model = ebert_from_bert(renamed, hf.config).eval()
    batch = dna_batch()
    with torch.no_grad():
        assert (model.outputs(batch).mlm_logits - reference_logits(hf, batch)).abs().max() <= 1e-5


def test_mismatches_fail_clearly():
    hf = hf_bert()
    state = dict(hf.state_dict())
    config = pretrain_config_from_bert(hf.config)
    with pytest.raises(ValueError, match="word_embeddings.*shape"):
        convert_bert_state_dict(state, config.model_copy(update={"vocab_size": VOCAB + 1}))
    missing = {k: v for k, v in state.items() if "layer.1.output.dense.weight" not in k}
    with pytest.raises(ValueError, match="layer.1.output.dense.weight"):
        convert_bert_state_dict(missing, config)
    with pytest.raises(ValueError, match="cannot hold"):
        convert_bert_state_dict(state, config.model_copy(update={"num_hidden_layers": 1}))
    untied = {**state, "cls.predictions.decoder.weight": state["cls.predictions.decoder.weight"] + 1}
    with pytest.raises(ValueError, match="share_embedding_weights"):
        convert_bert_state_dict(untied, config)
    with pytest.raises(ValueError, match="bert_config"):
        ebert_from_bert(state)


def test_package_does_not_import_transformers():
    code = (
        "import sys, ebert_modelzoo.models.convert, ebert_modelzoo.models.ebert, ebert_modelzoo.evaluation.metrics; "
        "assert 'transformers' not in sys.modules, 'transformers imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
