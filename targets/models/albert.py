"""ALBERT-base (Lan et al., 2019): factorised embeddings (128) projected to hidden 768, 12
transformer layers sharing one set of weights, 12 heads, FFN 3,072, GELU; a pooler and a
classification head. 11,683,584 parameters without the head (Hugging Face's albert-base-v2)."""

from __future__ import annotations

import torch
from torch import nn

VOCAB = 30000
MAX_POSITIONS = 512


class AlbertLayer(nn.Module):
    def __init__(self, hidden: int, heads: int, ffn: int) -> None:
        super().__init__()
        self.heads = heads
        self.q, self.k, self.v = (nn.Linear(hidden, hidden) for _ in range(3))
        self.dense = nn.Linear(hidden, hidden)
        self.attn_norm = nn.LayerNorm(hidden, eps=1e-12)
        self.ffn = nn.Linear(hidden, ffn)
        self.ffn_out = nn.Linear(ffn, hidden)
        self.out_norm = nn.LayerNorm(hidden, eps=1e-12)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        n, t, h = x.shape
        d = h // self.heads

        def split(y: torch.Tensor) -> torch.Tensor:
            return y.view(n, t, self.heads, d).transpose(1, 2)

        scores = split(self.q(x)) @ split(self.k(x)).transpose(-1, -2) / d ** 0.5
        scores = scores + mask
        ctx = (scores.softmax(-1) @ split(self.v(x))).transpose(1, 2).reshape(n, t, h)
        x = self.attn_norm(x + self.dense(ctx))
        out: torch.Tensor = self.out_norm(x + self.ffn_out(nn.functional.gelu(self.ffn(x))))
        return out


class AlbertClassifier(nn.Module):
    def __init__(self, num_labels: int = 2, layers: int = 12, hidden: int = 768,
                 embedding: int = 128, heads: int = 12, ffn: int = 3072) -> None:
        super().__init__()
        self.word = nn.Embedding(VOCAB, embedding)
        self.position = nn.Embedding(MAX_POSITIONS, embedding)
        self.token_type = nn.Embedding(2, embedding)
        self.embed_norm = nn.LayerNorm(embedding, eps=1e-12)
        self.project = nn.Linear(embedding, hidden)
        self.layer = AlbertLayer(hidden, heads, ffn)  # one layer, applied ``layers`` times
        self.layers = layers
        self.pooler = nn.Linear(hidden, hidden)
        self.classifier = nn.Linear(hidden, num_labels)

    def encoder_parameters(self) -> int:
        """Parameters without the classification head, comparable to the published 12M."""
        head = sum(p.numel() for p in self.classifier.parameters())
        return sum(p.numel() for p in self.parameters()) - head

    def forward(self, ids: torch.Tensor, attention: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(ids.shape[1], device=ids.device).unsqueeze(0)
        x = self.word(ids) + self.position(positions) + self.token_type(torch.zeros_like(ids))
        x = self.project(self.embed_norm(x))
        mask = (1.0 - attention[:, None, None, :].to(x.dtype)) * -1e4
        for _ in range(self.layers):
            x = self.layer(x, mask)
        pooled = torch.tanh(self.pooler(x[:, 0]))
        logits: torch.Tensor = self.classifier(pooled)
        return logits
