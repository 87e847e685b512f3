"""BERT transformer encoder and the EBertModel (embeddings + encoder), with one weight initialiser.

Shapes: B batch, L tokens, H hidden, h heads, d = H / h head width.
With token ``positions`` (B, M) the last block is computed only at those rows (see EBertModel).
Attention uses an additive float mask (0 for real keys, the dtype's minimum for [PAD] keys) built
from ``attention_mask`` with arithmetic only, so no boolean indexing reaches the traced graph.
"""
from __future__ import annotations

import math
from typing import Mapping, Optional

import torch
import torch.nn.functional as F
from torch import nn

from ebert_modelzoo.config.model import EBertEncoderConfig
from ebert_modelzoo.models.dropout import Dropout, keep_mask
from ebert_modelzoo.models.embeddings import EBertEmbeddings

ACTIVATIONS = {
    "gelu": nn.GELU,
    "gelu_tanh": lambda: nn.GELU(approximate="tanh"),
    "relu": nn.ReLU,
}


def make_activation(name: str) -> nn.Module:
    """The activation module for an ``encoder_nonlinearity`` value."""
    return ACTIVATIONS[name]()


def init_weights(module: nn.Module, initializer_range: float) -> None:
    """BERT init for one module: truncated normal weights (+-2 std), zero biases, unit LayerNorms.

    Apply with ``model.apply(partial(init_weights, initializer_range=...))``; it touches only the
    module's own parameters, so applying it to a subtree leaves the rest of a model alone.
    """
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.trunc_normal_(
            module.weight, std=initializer_range, a=-2 * initializer_range, b=2 * initializer_range
        )
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


def gather_rows(values: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """values (B, M, H), index (B, P) int -> (B, P, H): values[b, index[b, p]] with torch.gather."""
    batch, num, hidden = index.shape[0], index.shape[1], values.shape[-1]
    return torch.gather(values, 1, index.long().unsqueeze(-1).expand(batch, num, hidden))


def additive_attention_mask(attention_mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(B, L) 1/0 mask -> (B, 1, 1, L) float mask added to attention scores."""
    keep = attention_mask.to(dtype)[:, None, None, :]
    return (1.0 - keep) * torch.finfo(dtype).min


class SelfAttention(nn.Module):
    """Multi-head self-attention through torch SDPA or explicit matmul-softmax."""

    def __init__(self, config: EBertEncoderConfig) -> None:
        super().__init__()
        self.num_heads = config.num_heads
        self.head_size = config.hidden_size // config.num_heads
        self.kernel = config.attention_kernel
        self.dropout_p = config.attention_dropout_rate
        # Query, key and value in one (3H, H) projection: one larger GEMM forward and backward
        # instead of three, and no sum of three input gradients. Rows [0, H) are the query,
        # [H, 2H) the key, [2H, 3H) the value (convert.py concatenates BERT's three in that order).
        self.qkv = nn.Linear(config.hidden_size, 3 * config.hidden_size)
        self.output = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(
        self, hidden: torch.Tensor, mask: torch.Tensor, queries: Optional[torch.Tensor] = None
    ) -> torch.Tensor:
        """hidden (B, L, H), additive mask (B, 1, 1, L) -> (B, L, H); with ``queries`` (B, M, H),
        rows of ``hidden``: only those rows attend (keys and values from every token) -> (B, M, H)."""
        batch, seq_len, width = hidden.shape
        if queries is None:
            qkv = self.qkv(hidden).view(batch, seq_len, 3, self.num_heads, self.head_size)
            q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (B, h, L, d)
        else:
            q = F.linear(queries, self.qkv.weight[:width], self.qkv.bias[:width])
            q = q.view(batch, -1, self.num_heads, self.head_size).transpose(1, 2)  # (B, h, M, d)
            kv = F.linear(hidden, self.qkv.weight[width:], self.qkv.bias[width:])
            k, v = kv.view(batch, seq_len, 2, self.num_heads, self.head_size).permute(2, 0, 3, 1, 4).unbind(0)
        mask = mask.to(q.dtype)  # under autocast q may be narrower than the residual stream
        dropout_p = self.dropout_p if self.training else 0.0
        # SDPA has no fused CPU kernel with dropout (it falls back to unfused maths with a slow
        # bernoulli mask), so CPU training with attention dropout takes the explicit path. The
        # choice depends on the device type and mode only, never on the data.
        if self.kernel == "sdpa" and not (dropout_p > 0.0 and q.device.type == "cpu"):
            context = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p)
        else:
            context = self._explicit(q, k, v, mask, dropout_p)
        context = context.transpose(1, 2).reshape(batch, q.shape[2], width)
        return self.output(context)

    def _explicit(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor, dropout_p: float
    ) -> torch.Tensor:
        """softmax(q k^T / sqrt(d) + mask), dropped out, times v: (B, h, L, d).

        The 1/sqrt(d) scale goes on q and the dropout's scale on the context, both (B, h, L, d),
        rather than on the (B, h, L, L) scores; the mask is added in place (matmul's backward
        does not need its output).
        """
        scores = torch.matmul(q * (1.0 / math.sqrt(self.head_size)), k.transpose(-1, -2))
        probs = torch.softmax(scores.add_(mask), dim=-1)
        if dropout_p == 0.0:
            return torch.matmul(probs, v)
        if q.device.type != "cpu":
            return torch.matmul(F.dropout(probs, p=dropout_p), v)
        keep, scale = keep_mask(probs, dropout_p)
        return torch.matmul(probs * keep, v) * scale


class FeedForward(nn.Module):
    """Dense -> activation -> dense."""

    def __init__(self, config: EBertEncoderConfig) -> None:
        super().__init__()
        self.dense_in = nn.Linear(config.hidden_size, config.filter_size)
        self.activation = make_activation(config.encoder_nonlinearity)
        self.dense_out = nn.Linear(config.filter_size, config.hidden_size)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.dense_out(self.activation(self.dense_in(hidden)))


class EncoderLayer(nn.Module):
    """One transformer block, post-LN (BERT) or pre-LN (``norm_first``)."""

    def __init__(self, config: EBertEncoderConfig) -> None:
        super().__init__()
        self.norm_first = config.norm_first
        self.attention = SelfAttention(config)
        self.attention_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_epsilon)
        self.feed_forward = FeedForward(config)
        self.feed_forward_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_epsilon)
        self.dropout = Dropout(config.dropout_rate)

    def forward(
        self, hidden: torch.Tensor, mask: torch.Tensor, positions: Optional[torch.Tensor] = None
    ) -> torch.Tensor:
        """hidden (B, L, H) -> (B, L, H), or with ``positions`` (B, M) the block's output at those
        rows only (B, M, H): every row-wise part (queries, attention output, feed-forward,
        LayerNorms, dropout) runs on M rows, keys and values on all L."""
        if self.norm_first:
            normed = self.attention_norm(hidden)
            queries = None
            if positions is not None:
                hidden, queries = gather_rows(hidden, positions), gather_rows(normed, positions)
            hidden = hidden + self.dropout(self.attention(normed, mask, queries))
            return hidden + self.dropout(self.feed_forward(self.feed_forward_norm(hidden)))
        queries = None if positions is None else gather_rows(hidden, positions)
        attended = self.attention(hidden, mask, queries)
        hidden = self.attention_norm((hidden if queries is None else queries) + self.dropout(attended))
        return self.feed_forward_norm(hidden + self.dropout(self.feed_forward(hidden)))


class EBertModel(nn.Module):
    """Encoder tier: batch dict -> final hidden states (B, L, H).

    With ``norm_first`` a final LayerNorm closes the stack (pre-LN blocks leave it un-normalised).
    Weights are initialised on construction, so ``torch.manual_seed(s)`` before building
    reproduces them exactly.
    """

    def __init__(self, config: EBertEncoderConfig) -> None:
        super().__init__()
        self.config = config
        self.embeddings = EBertEmbeddings(config)
        self.layers = nn.ModuleList(EncoderLayer(config) for _ in range(config.num_hidden_layers))
        self.final_norm = (
            nn.LayerNorm(config.hidden_size, eps=config.layer_norm_epsilon) if config.norm_first else None
        )
        self.apply(lambda module: init_weights(module, config.initializer_range))
        if self.embeddings.dna_stem is not None:
            self.embeddings.dna_stem.zero_projection()

    def forward(
        self, batch: Mapping[str, torch.Tensor], positions: Optional[torch.Tensor] = None
    ) -> torch.Tensor:
        """Hidden states (B, L, H) for a batch dict (only the inputs the config turned on are read),
        or with token ``positions`` (B, M) int the final states at those rows, (B, M, H).

        The heads read few rows (masked tokens, pooled bins, [CLS]); with ``sparse_final_layer`` the
        last block computes only those rows, the same values and gradients as computing all L
        rows and gathering (a row's output depends on the other rows only through keys and
        values), at a fraction of the block's FLOPs.
        """
        hidden = self.embeddings(batch)
        mask = additive_attention_mask(batch["attention_mask"], hidden.dtype)
        sparse = positions is not None and self.config.sparse_final_layer
        last = len(self.layers) - 1
        for index, layer in enumerate(self.layers):
            hidden = layer(hidden, mask, positions if sparse and index == last else None)
        if positions is not None and not sparse:
            hidden = gather_rows(hidden, positions)
        if self.final_norm is not None:
            hidden = self.final_norm(hidden)
        return hidden
