"""The FlexiBERT encoder as ``transformers`` models: every layer has its own width, heads,
feed-forward size and similarity, and a projection joins layers of different widths.

Parameter names follow BERT's (``embeddings.*``, ``encoder.layer.{j}.attention.*``,
``...intermediate.*``, ``...output.*``) so that BERT checkpoints map by name, and each
one belongs to exactly one block of ``flexibert.model.cost.param_blocks`` (see
:func:`parameter_block`), which the weight transfer and the tests rely on.

Attention always runs through ``scaled_dot_product_attention``: relative positions
and padding enter as one additive bias, and WMA as the query ``q @ W``. This module
imports only ``torch``, ``transformers`` and ``.configuration_flexibert`` so that the pair can
be shipped beside a checkpoint as remote code.
"""

from __future__ import annotations

import math
import re

import torch
import torch.nn.functional as F
from torch import nn
from transformers import initialization as init
from transformers.modeling_outputs import (
    BaseModelOutputWithPooling,
    MaskedLMOutput,
    SequenceClassifierOutput,
)
from transformers.modeling_utils import PreTrainedModel

from .configuration_flexibert import FlexiBertConfig

_LAYER_PARAM = re.compile(r"encoder\.layer\.(\d+)\.(attention\.self\.wma$|attention|intermediate|output|projection)")


def parameter_block(name: str) -> str | None:
    """Block of ``flexibert.model.cost.param_blocks`` that a parameter belongs to (None: pooler or a head).

    ``name`` is as in ``named_parameters()`` of the base model or of a model with a head.
    """
    name = name.removeprefix(f"{FlexiBertPreTrainedModel.base_model_prefix}.")
    if name.startswith("embeddings."):
        return "embeddings"
    m = _LAYER_PARAM.match(name)
    if m is None:
        return None
    j, part = m.groups()
    kind = {"intermediate": "ffn", "output": "ffn", "attention.self.wma": "wma"}.get(part, part)
    return f"layer.{j}.{kind}"


class FlexiBertEmbeddings(nn.Module):
    """Word + token type (+ absolute position) embeddings at width h_0."""

    def __init__(self, config: FlexiBertConfig):
        super().__init__()
        h0 = config.hidden_sizes[0]
        self.word_embeddings = nn.Embedding(config.vocab_size, h0, padding_idx=config.pad_token_id)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, h0)
        self.position_embeddings = (
            nn.Embedding(config.max_position_embeddings, h0) if config.position_embedding_type == "absolute" else None
        )
        self.LayerNorm = nn.LayerNorm(h0, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None) -> torch.Tensor:
        x = self.word_embeddings(input_ids)
        if token_type_ids is None:  # all type 0: one broadcast row instead of a lookup
            x = x + self.token_type_embeddings.weight[0]
        else:
            x = x + self.token_type_embeddings(token_type_ids)
        if self.position_embeddings is not None:
            n, limit = input_ids.shape[1], self.position_embeddings.num_embeddings
            if n > limit:
                raise ValueError(f"sequence of {n} tokens is longer than max_position_embeddings = {limit}")
            x = x + self.position_embeddings.weight[:n]
        return self.dropout(self.LayerNorm(x))


class FlexiBertSelfAttention(nn.Module):
    """Multi-head attention of one layer: SDP or WMA similarity, optional Shaw relative keys.

    Relative keys (as BERT's ``relative_key``, but clipped to distance R): the score of
    query i and key j gains ``q_i . r[clip(i - j, -R, R)]``, one table of head width
    shared by the layer's heads. It is computed as ``q @ table^T`` (n x (2R+1) per head,
    fewer rows when n <= R) and gathered by the clipped index, never as an n x n x d tensor.
    WMA: the score is ``q W k^T`` with one d x d matrix W per layer shared by its heads.
    """

    def __init__(self, config: FlexiBertConfig, j: int):
        super().__init__()
        h, self.heads = config.hidden_sizes[j], config.attention_heads[j]
        self.head_dim = h // self.heads
        self.query = nn.Linear(h, h)
        self.key = nn.Linear(h, h)
        self.value = nn.Linear(h, h)
        self.distance_embedding = (
            nn.Embedding(2 * config.max_relative_position + 1, self.head_dim)
            if config.position_embedding_type == "relative_key"
            else None
        )
        self.wma = nn.Parameter(torch.empty(self.head_dim, self.head_dim)) if config.similarities[j] == "wma" else None
        self.dropout_p = config.attention_probs_dropout_prob

    def forward(
        self, x: torch.Tensor, padding_bias: torch.Tensor | None, relative_index: torch.Tensor | None
    ) -> torch.Tensor:
        b, n, h = x.shape
        q, k, v = (
            lin(x).view(b, n, self.heads, self.head_dim).transpose(1, 2) for lin in (self.query, self.key, self.value)
        )
        bias = padding_bias
        if self.distance_embedding is not None:
            # Only distances below n occur: a short sequence uses the middle 2r+1 rows of the table.
            big_r = (self.distance_embedding.num_embeddings - 1) // 2
            r = min(big_r, n - 1)
            # SDPA scales only q k^T, so the relative term takes the 1/sqrt(d) here (on the small table).
            table = self.distance_embedding.weight[big_r - r : big_r + r + 1] * (1.0 / math.sqrt(self.head_dim))
            rel = torch.matmul(q, table.t()).gather(-1, relative_index.expand(b, self.heads, n, n))
            bias = rel if bias is None else rel + bias
        if self.wma is not None:
            q = torch.matmul(q, self.wma)
        p = self.dropout_p if self.training else 0.0
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=p)
        return out.transpose(1, 2).reshape(b, n, h)


class FlexiBertOutput(nn.Module):
    """Dense, dropout, residual, LayerNorm: closes both the attention and the feed-forward sub-layer."""

    def __init__(self, config: FlexiBertConfig, width: int, inner: int):
        super().__init__()
        self.dense = nn.Linear(inner, width)
        self.LayerNorm = nn.LayerNorm(width, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dropout(self.dense(x)) + residual)


class FlexiBertAttention(nn.Module):
    def __init__(self, config: FlexiBertConfig, j: int):
        super().__init__()
        h = config.hidden_sizes[j]
        self.self = FlexiBertSelfAttention(config, j)
        self.output = FlexiBertOutput(config, h, h)

    def forward(self, x: torch.Tensor, padding_bias: torch.Tensor | None, relative_index: torch.Tensor | None):
        return self.output(self.self(x, padding_bias, relative_index), x)


class FlexiBertIntermediate(nn.Module):
    def __init__(self, config: FlexiBertConfig, j: int):
        super().__init__()
        self.dense = nn.Linear(config.hidden_sizes[j], config.intermediate_sizes[j])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(self.dense(x))


class FlexiBertLayer(nn.Module):
    """Attention, feed-forward, then a projection to the next layer's width when it differs."""

    def __init__(self, config: FlexiBertConfig, j: int):
        super().__init__()
        h = config.hidden_sizes[j]
        self.attention = FlexiBertAttention(config, j)
        self.intermediate = FlexiBertIntermediate(config, j)
        self.output = FlexiBertOutput(config, h, config.intermediate_sizes[j])
        nxt = config.hidden_sizes[j + 1] if j + 1 < len(config.hidden_sizes) else h
        self.projection = nn.Linear(h, nxt) if nxt != h else None

    def forward(self, x: torch.Tensor, padding_bias: torch.Tensor | None, relative_index: torch.Tensor | None):
        a = self.attention(x, padding_bias, relative_index)
        y = self.output(self.intermediate(a), a)
        return y if self.projection is None else self.projection(y)


class FlexiBertEncoder(nn.Module):
    def __init__(self, config: FlexiBertConfig):
        super().__init__()
        self.layer = nn.ModuleList(FlexiBertLayer(config, j) for j in range(config.num_hidden_layers))


class FlexiBertPooler(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.dense = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.dense(x))


class FlexiBertPreTrainedModel(PreTrainedModel):
    """Shared config class, base-model prefix and initialisation (BERT's, plus W = identity)."""

    config_class = FlexiBertConfig
    base_model_prefix = "flexibert"

    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        if isinstance(module, FlexiBertSelfAttention) and module.wma is not None:
            init.eye_(module.wma)  # a fresh WMA layer starts as SDP and learns from there


class FlexiBertModel(FlexiBertPreTrainedModel):
    """Embeddings, the heterogeneous encoder and (optionally) BERT's tanh pooler at width h_last."""

    def __init__(self, config: FlexiBertConfig, add_pooling_layer: bool = True):
        super().__init__(config)
        self.embeddings = FlexiBertEmbeddings(config)
        self.encoder = FlexiBertEncoder(config)
        self.pooler = FlexiBertPooler(config.hidden_sizes[-1]) if add_pooling_layer else None
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embeddings.word_embeddings

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.embeddings.word_embeddings = value

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> BaseModelOutputWithPooling | tuple:
        x = self.embeddings(input_ids, token_type_ids)
        n = input_ids.shape[1]
        padding_bias = None
        if attention_mask is not None and not bool(attention_mask.all()):
            keep = attention_mask[:, None, None, :].to(dtype=x.dtype)
            padding_bias = (1.0 - keep) * torch.finfo(x.dtype).min
        relative_index = None
        if self.config.position_embedding_type == "relative_key":
            pos = torch.arange(n, device=input_ids.device)
            r = min(self.config.max_relative_position, n - 1)  # rows of the table slice each layer uses
            relative_index = (pos[:, None] - pos[None, :]).clamp(-r, r) + r
        if output_hidden_states is None:
            output_hidden_states = self.config.output_hidden_states
        hidden = (x,) if output_hidden_states else None
        for layer in self.encoder.layer:
            x = layer(x, padding_bias, relative_index)
            if hidden is not None:
                hidden += (x,)
        pooled = None
        if self.pooler is not None:
            if self.config.classifier_pooling == "mean" and attention_mask is not None:
                keep = attention_mask[..., None].to(dtype=x.dtype)
                pooled = self.pooler((x * keep).sum(1) / keep.sum(1).clamp(min=1.0))
            else:
                pooled = self.pooler(x.mean(1) if self.config.classifier_pooling == "mean" else x[:, 0])
        out = BaseModelOutputWithPooling(last_hidden_state=x, pooler_output=pooled, hidden_states=hidden)
        return out if (return_dict if return_dict is not None else self.config.return_dict) else out.to_tuple()


class FlexiBertForSequenceClassification(FlexiBertPreTrainedModel):
    """Pooler + linear classifier; regression (MSE) when ``num_labels == 1``, losses as in BERT."""

    def __init__(self, config: FlexiBertConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.flexibert = FlexiBertModel(config)
        p = config.classifier_dropout if config.classifier_dropout is not None else config.hidden_dropout_prob
        self.dropout = nn.Dropout(p)
        self.classifier = nn.Linear(config.hidden_sizes[-1], config.num_labels)
        self.post_init()

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> SequenceClassifierOutput | tuple:
        base = self.flexibert(input_ids, attention_mask, token_type_ids, output_hidden_states, return_dict=True)
        logits = self.classifier(self.dropout(base.pooler_output))
        loss = None
        if labels is not None:
            if self.config.problem_type is None:
                if self.num_labels == 1:
                    self.config.problem_type = "regression"
                elif labels.dtype in (torch.long, torch.int):
                    self.config.problem_type = "single_label_classification"
                else:
                    self.config.problem_type = "multi_label_classification"
            if self.config.problem_type == "regression":
                loss = F.mse_loss(logits.squeeze(-1), labels.to(logits.dtype).view(-1))
            elif self.config.problem_type == "single_label_classification":
                loss = F.cross_entropy(logits.view(-1, self.num_labels), labels.view(-1))
            else:
                loss = F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype))
        out = SequenceClassifierOutput(loss=loss, logits=logits, hidden_states=base.hidden_states)
        return out if (return_dict if return_dict is not None else self.config.return_dict) else out.to_tuple()


class FlexiBertLMHead(nn.Module):
    """BERT's MLM transform (dense, GELU, LayerNorm) at width h_last, then, when h_last != h_0,
    a projection back to h_0 so that the decoder can share the h_0-wide word embeddings."""

    def __init__(self, config: FlexiBertConfig):
        super().__init__()
        h0, hl = config.hidden_sizes[0], config.hidden_sizes[-1]
        self.dense = nn.Linear(hl, hl)
        self.LayerNorm = nn.LayerNorm(hl, eps=config.layer_norm_eps)
        self.projection = nn.Linear(hl, h0) if hl != h0 else None
        self.decoder = nn.Linear(h0, config.vocab_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.LayerNorm(F.gelu(self.dense(x)))
        if self.projection is not None:
            x = self.projection(x)
        return self.decoder(x)


class FlexiBertForMaskedLM(FlexiBertPreTrainedModel):
    """Masked-LM head on the encoder; ``logits`` has Hugging Face's shape (batch, seq, vocab_size).

    With ``labels`` and ``config.mlm_decode_masked_only``, the vocabulary is decoded only at the
    labelled positions (``labels != -100``) and ``logits`` has shape (labelled tokens, vocab_size)
    in row-major order; the loss is the same. The loss is the mean over labelled tokens, and zero
    (still part of the graph, so ``backward`` works) when a batch has none.
    """

    _tied_weights_keys = {"lm_head.decoder.weight": "flexibert.embeddings.word_embeddings.weight"}

    def __init__(self, config: FlexiBertConfig):
        super().__init__(config)
        self.flexibert = FlexiBertModel(config, add_pooling_layer=False)
        self.lm_head = FlexiBertLMHead(config)
        self.post_init()

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head.decoder

    def set_output_embeddings(self, value: nn.Linear) -> None:
        self.lm_head.decoder = value

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> MaskedLMOutput | tuple:
        base = self.flexibert(input_ids, attention_mask, token_type_ids, output_hidden_states, return_dict=True)
        x = base.last_hidden_state
        loss = None
        if labels is None:
            logits = self.lm_head(x)
        else:
            picked = labels != -100
            if self.config.mlm_decode_masked_only:
                logits = self.lm_head(x[picked])
                loss = F.cross_entropy(logits, labels[picked], reduction="sum")
            else:
                logits = self.lm_head(x)
                loss = F.cross_entropy(logits.view(-1, self.config.vocab_size), labels.view(-1), reduction="sum")
            # The mean over labelled tokens, but 0 rather than NaN (0 / 0) when there are none.
            loss = loss / picked.sum().clamp(min=1)
        out = MaskedLMOutput(loss=loss, logits=logits, hidden_states=base.hidden_states)
        return out if (return_dict if return_dict is not None else self.config.return_dict) else out.to_tuple()


__all__ = [
    "FlexiBertForMaskedLM",
    "FlexiBertForSequenceClassification",
    "FlexiBertModel",
    "FlexiBertPreTrainedModel",
    "parameter_block",
]
