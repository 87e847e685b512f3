"""Start EBERT from a transformers BERT masked-LM checkpoint (e.g. a DNABERT-style DNA BERT).

Three steps, each usable alone:
  ``pretrain_config_from_bert``   BertConfig (object or config.json dict) -> EBertPretrainConfig
  ``convert_bert_state_dict``     BertForMaskedLM state dict -> EBertForPreTrainingModel state dict
  ``ebert_from_bert``             both, plus building the model and loading the weights

transformers is never imported: configs are read by attribute or key (duck typing), state dicts
are plain mappings of tensors. BERT's token-type embedding row 0 is folded into the position
embeddings (EBERT has no segments and BERT adds type 0 to every token), so the converted model
computes the same logits. Epigenetic inputs can be switched on at conversion: their embeddings
keep a fresh init while every DNA weight loads exactly.
"""
from __future__ import annotations

from typing import Any, Mapping, Optional

import torch

from ebert_modelzoo.config.model import EBertPretrainConfig
from ebert_modelzoo.models.ebert import EBertForPreTrainingModel

# transformers hidden_act -> our encoder_nonlinearity
_ACTIVATIONS = {
    "gelu": "gelu",
    "gelu_python": "gelu",
    "gelu_new": "gelu_tanh",
    "gelu_pytorch_tanh": "gelu_tanh",
    "relu": "relu",
}

# (BertConfig attribute, our key); the first group is required.
_REQUIRED_KEYS = (
    ("vocab_size", "vocab_size"),
    ("hidden_size", "hidden_size"),
    ("num_hidden_layers", "num_hidden_layers"),
    ("num_attention_heads", "num_heads"),
    ("intermediate_size", "filter_size"),
    ("max_position_embeddings", "max_position_embeddings"),
)
_OPTIONAL_KEYS = (
    ("hidden_dropout_prob", "dropout_rate"),
    ("attention_probs_dropout_prob", "attention_dropout_rate"),
    ("layer_norm_eps", "layer_norm_epsilon"),
    ("initializer_range", "initializer_range"),
    ("tie_word_embeddings", "share_embedding_weights"),
)

# Per-layer names: ours -> BERT's (under bert.encoder.layer.{i}.)
# Our fused attention.qkv is BERT's query, key and value concatenated along the output axis.
_QKV_PARTS = ("attention.self.query", "attention.self.key", "attention.self.value")
_LAYER_KEYS = {
    "attention.output": "attention.output.dense",
    "attention_norm": "attention.output.LayerNorm",
    "feed_forward.dense_in": "intermediate.dense",
    "feed_forward.dense_out": "output.dense",
    "feed_forward_norm": "output.LayerNorm",
}

# BERT entries a masked-LM model does not need (pooler, next-sentence head, buffers).
_IGNORED_PREFIXES = ("bert.pooler.", "cls.seq_relationship.")
_IGNORED_KEYS = ("bert.embeddings.position_ids", "bert.embeddings.token_type_ids")


def _read(config: Any, key: str, default: Any = None) -> Any:
    if isinstance(config, Mapping):
        return config.get(key, default)
    return getattr(config, key, default)


def pretrain_config_from_bert(bert_config: Any, **overrides: Any) -> EBertPretrainConfig:
    """Build the EBERT pre-training config equivalent to a BERT config.

    Args:
        bert_config: a transformers ``BertConfig`` or its ``config.json`` as a dict.
        overrides: any EBertPretrainConfig key, e.g. ``num_chromatin_states=18``,
            ``num_signal_tracks=5``, ``tokens_per_bin=200`` to switch epigenetic inputs on
            (they are off unless given), or ``dropout_rate=0.0``.

    Raises:
        ValueError: a required BERT key is missing, or the BERT variant has no EBERT equivalent
            (relative positions, decoder, unknown activation).
    """
    values: dict[str, Any] = {"name": "ebert", "position_embedding_type": "learned"}
    for bert_key, key in _REQUIRED_KEYS:
        value = _read(bert_config, bert_key)
        if value is None:
            raise ValueError(f"BERT config has no {bert_key!r}; is it a BertConfig?")
        values[key] = value
    for bert_key, key in _OPTIONAL_KEYS:
        value = _read(bert_config, bert_key)
        if value is not None:
            values[key] = value
    act = _read(bert_config, "hidden_act", "gelu")
    if act not in _ACTIVATIONS:
        raise ValueError(f"BERT hidden_act {act!r} has no EBERT equivalent; known: {sorted(_ACTIVATIONS)}")
    values["encoder_nonlinearity"] = _ACTIVATIONS[act]
    position_type = _read(bert_config, "position_embedding_type", "absolute")
    if position_type != "absolute":
        raise ValueError(f"BERT position_embedding_type {position_type!r} is not supported (only 'absolute')")
    if _read(bert_config, "is_decoder", False) or _read(bert_config, "add_cross_attention", False):
        raise ValueError("BERT config is a decoder / has cross-attention; EBERT is an encoder only")
    values.update(overrides)
    return EBertPretrainConfig(**values)


def _legacy_name(key: str) -> str:
    """TensorFlow-converted checkpoints may still call LayerNorm parameters gamma/beta."""
    return key.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta")


def convert_bert_state_dict(
    state_dict: Mapping[str, torch.Tensor], config: EBertPretrainConfig
) -> dict[str, torch.Tensor]:
    """Map a BertForMaskedLM state dict onto EBertForPreTrainingModel names.

    Returns only the DNA-BERT entries; epigenetic embeddings (if ``config`` turns them on) and
    the masked-state head are not in BERT and keep their init when loaded with ``strict=False``
    (``ebert_from_bert`` checks exactly that). Every shape is checked against ``config``.

    Raises:
        ValueError: a key is missing, a shape does not match the config, an entry is left over
            that EBERT cannot hold, or ``config`` asks for something BERT cannot give (fixed
            positions, pre-LN, a tied decoder whose weights differ from the embeddings).
    """
    if config.position_embedding_type != "learned" or config.norm_first:
        raise ValueError("a BERT checkpoint needs position_embedding_type 'learned' and norm_first false")
    used: set[str] = set()

    def take(key: str) -> torch.Tensor:
        for name in (key, _legacy_name(key)):
            if name in state_dict:
                used.add(name)
                return state_dict[name]
        raise ValueError(f"BERT state dict has no {key!r}; expected a BertForMaskedLM state dict")

    out: dict[str, torch.Tensor] = {}
    emb = "bert.embeddings."
    out["ebert.embeddings.word_embeddings.weight"] = take(emb + "word_embeddings.weight")
    positions = take(emb + "position_embeddings.weight")
    type_key = emb + "token_type_embeddings.weight"
    if type_key in state_dict:
        positions = positions + take(type_key)[0]
    out["ebert.embeddings.position_embeddings.weight"] = positions
    for part in ("weight", "bias"):
        out[f"ebert.embeddings.LayerNorm.{part}"] = take(f"{emb}LayerNorm.{part}")
    for layer in range(config.num_hidden_layers):
        theirs_prefix = f"bert.encoder.layer.{layer}."
        for part in ("weight", "bias"):
            out[f"ebert.layers.{layer}.attention.qkv.{part}"] = torch.cat(
                [take(f"{theirs_prefix}{name}.{part}") for name in _QKV_PARTS]
            )
        for ours, theirs in _LAYER_KEYS.items():
            for part in ("weight", "bias"):
                out[f"ebert.layers.{layer}.{ours}.{part}"] = take(f"{theirs_prefix}{theirs}.{part}")
    head = "cls.predictions."
    for part in ("weight", "bias"):
        out[f"mlm_head.transform.dense.{part}"] = take(f"{head}transform.dense.{part}")
        out[f"mlm_head.transform.LayerNorm.{part}"] = take(f"{head}transform.LayerNorm.{part}")
    # The decoder's own bias is the one BERT's forward adds; cls.predictions.bias is tied to it
    # in most checkpoints but not in untied transformers-5 models, and some files keep only it.
    bias_keys = [head + "decoder.bias", head + "bias"]
    present = [key for key in bias_keys if key in state_dict]
    out["mlm_head.bias"] = take(present[0] if present else bias_keys[0])
    used.update(present)
    decoder_key = head + "decoder.weight"
    if config.share_embedding_weights:
        if decoder_key in state_dict:
            if not torch.equal(take(decoder_key), out["ebert.embeddings.word_embeddings.weight"]):
                raise ValueError(
                    f"{decoder_key} differs from the word embeddings; convert with "
                    "share_embedding_weights=False to keep an untied decoder"
                )
    else:
        out["mlm_head.decoder.weight"] = take(decoder_key)

    left = sorted(
        key for key in state_dict
        if key not in used and key not in _IGNORED_KEYS and not key.startswith(_IGNORED_PREFIXES)
    )
    if left:
        raise ValueError(
            f"BERT state dict has {len(left)} entries EBERT cannot hold, e.g. {left[:3]} "
            f"(num_hidden_layers is {config.num_hidden_layers})"
        )
    _check_shapes(out, config)
    return out


def _check_shapes(converted: Mapping[str, torch.Tensor], config: EBertPretrainConfig) -> None:
    """Compare every converted tensor with the shape a model built from ``config`` expects."""
    with torch.device("meta"):
        expected = EBertForPreTrainingModel(config).state_dict()
    for key, tensor in converted.items():
        if tuple(tensor.shape) != tuple(expected[key].shape):
            raise ValueError(
                f"BERT weight for {key!r} has shape {tuple(tensor.shape)}, but the config "
                f"(hidden_size {config.hidden_size}, vocab_size {config.vocab_size}, filter_size "
                f"{config.filter_size}, max_position_embeddings {config.max_position_embeddings}) "
                f"needs {tuple(expected[key].shape)}"
            )


def ebert_from_bert(
    bert: Any, bert_config: Optional[Any] = None, **overrides: Any
) -> EBertForPreTrainingModel:
    """Build an EBertForPreTrainingModel holding a BERT masked-LM's weights.

    Args:
        bert: a transformers BertForMaskedLM (anything with ``state_dict()`` and ``config``),
            or a state dict of one.
        bert_config: its BertConfig (object or dict); required when ``bert`` is a state dict.
        overrides: EBertPretrainConfig keys, as in ``pretrain_config_from_bert`` (e.g. switch
            on chromatin states: their embeddings get a fresh init, seeded by torch's RNG).

    Raises:
        ValueError: as ``pretrain_config_from_bert`` and ``convert_bert_state_dict``.
    """
    if isinstance(bert, Mapping):
        state_dict = bert
        if bert_config is None:
            raise ValueError("ebert_from_bert: pass bert_config when bert is a state dict")
    else:
        state_dict = bert.state_dict()
        bert_config = bert.config if bert_config is None else bert_config
    config = pretrain_config_from_bert(bert_config, **overrides)
    converted = convert_bert_state_dict(state_dict, config)
    model = EBertForPreTrainingModel(config)
    result = model.load_state_dict(converted, strict=False)
    # Only what BERT lacks may stay at its init: epigenetic embeddings and the state head.
    fresh = ("ebert.embeddings.state_", "ebert.embeddings.signal_", "ebert.embeddings.cell_type_", "state_head.")
    unexpected_missing = [key for key in result.missing_keys if not key.startswith(fresh)]
    if unexpected_missing or result.unexpected_keys:
        raise ValueError(
            f"converted BERT weights do not fit EBERT: missing {unexpected_missing}, "
            f"unexpected {result.unexpected_keys}"
        )
    return model
