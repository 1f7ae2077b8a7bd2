"""An eager re-implementation of the ORIGINAL BrainVis networks, for equivalence tests and benchmarks.

Written from the method description (``shared/reference/brainvis.md``, sections 1-4 and 7) to
reproduce the original authors' computation and *module / state-dict key layout* exactly:
time-major input (B x T x C), hand-written softmax attention, post-norm sub-layers with a
learnable scalar, the frequency spectrum computed with NumPy on the CPU (the round trip the
original makes), float32 throughout. It is deliberately not optimised: it is the baseline.

Key layout (per layer i), as the original checkpoints have it:
``input_projection``, ``position.pe``, ``mask_token``, ``encoder.TRMs.{i}.attn.linear_layers.{0,1,2}``,
``encoder.TRMs.{i}.attn.output_linear``, ``encoder.TRMs.{i}.ffn.linear{1,2}``,
``encoder.TRMs.{i}.skipconnect{1,2}.{norm,a}``, the same under ``momentum_encoder``,
``tokenizer.center``, ``reg.layers.{i}.*``, ``predict_head``, ``channelmapping.conv{1,2}``,
``dimmapping``; frequency encoder ``lstm``, ``output``, ``classifier``; time-frequency model
``pretrained_model_time.*``, ``pretrained_model_freq.*``, ``fc01``; alignment model
``pretrained_model.*``, ``fc01`` .. ``fc05``, ``fc6``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class OriginalArgs:
    """The original's command-line hyper-parameters (paper defaults)."""

    d_model: int = 1024
    attn_heads: int = 16
    layers: int = 8
    dropout: float = 0.2
    enable_res_parameter: int = 1
    vocab_size: int = 660
    wave_length: int = 4
    mask_ratio: float = 0.75
    reg_layers: int = 4
    momentum: float = 0.99
    num_class: int = 40
    data_shape: tuple[int, int] = (440, 128)  # (time samples, channels)


class PositionTable(nn.Module):
    def __init__(self, length: int, width: int):
        super().__init__()
        self.pe = nn.Embedding(length, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # the whole table, repeated for every element of the batch
        return self.pe.weight.unsqueeze(0).expand(x.shape[0], -1, -1).clone()


class HandAttention(nn.Module):
    """Softmax attention written out: (QK^T / sqrt(d_head)) -> softmax -> dropout -> @ V."""

    def __init__(self, heads: int, width: int, dropout: float):
        super().__init__()
        self.heads = heads
        self.head_width = width // heads
        self.linear_layers = nn.ModuleList([nn.Linear(width, width) for _ in range(3)])
        self.output_linear = nn.Linear(width, width)
        self.dropout = nn.Dropout(dropout)

    def forward(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
        batch = query.shape[0]
        projected = []
        for layer, states in zip(self.linear_layers, (query, key, value)):
            projected.append(layer(states).view(batch, -1, self.heads, self.head_width).transpose(1, 2))
        q, k, v = projected
        scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
        weights = self.dropout(torch.softmax(scores, dim=-1))
        mixed = (weights @ v).transpose(1, 2).contiguous().view(batch, -1, self.heads * self.head_width)
        return self.output_linear(mixed)


class ScaledSublayer(nn.Module):
    """``LayerNorm(x + Dropout(a * f(x)))`` with ``a`` a learnable 0-d scalar (1e-8 at start)."""

    def __init__(self, width: int, learnable: bool, dropout: float):
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.dropout = nn.Dropout(dropout)
        self.learnable = bool(learnable)
        if learnable:
            self.a = nn.Parameter(torch.tensor(1e-8))

    def forward(self, residual: torch.Tensor, update: torch.Tensor) -> torch.Tensor:
        if self.learnable:
            update = self.a * update
        return self.norm(residual + self.dropout(update))


class TwoLayerFFN(nn.Module):
    def __init__(self, width: int, inner: int, dropout: float):
        super().__init__()
        self.linear1 = nn.Linear(width, inner)
        self.linear2 = nn.Linear(inner, width)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.linear2(F.gelu(self.linear1(x))))


class SelfBlock(nn.Module):
    def __init__(self, width: int, heads: int, inner: int, learnable: bool, dropout: float):
        super().__init__()
        self.attn = HandAttention(heads, width, dropout)
        self.ffn = TwoLayerFFN(width, inner, dropout)
        self.skipconnect1 = ScaledSublayer(width, learnable, dropout)
        self.skipconnect2 = ScaledSublayer(width, learnable, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.skipconnect1(x, self.attn(x, x, x))
        return self.skipconnect2(x, self.ffn(x))


class CrossBlock(nn.Module):
    """Regressor block: the mask queries attend to the visible representation (dropout 0.1)."""

    def __init__(self, width: int, heads: int, inner: int, dropout: float = 0.1):
        super().__init__()
        self.attn = HandAttention(heads, width, dropout)
        self.ffn = TwoLayerFFN(width, inner, dropout)
        self.skipconnect1 = ScaledSublayer(width, True, dropout)
        self.skipconnect2 = ScaledSublayer(width, True, dropout)

    def forward(self, visible: torch.Tensor, queries: torch.Tensor) -> torch.Tensor:
        x = self.skipconnect1(queries, self.attn(queries, visible, visible))
        return self.skipconnect2(x, self.ffn(x))


class BlockStack(nn.Module):
    def __init__(self, args: OriginalArgs):
        super().__init__()
        self.TRMs = nn.ModuleList(
            [
                SelfBlock(args.d_model, args.attn_heads, 4 * args.d_model, args.enable_res_parameter, args.dropout)
                for _ in range(args.layers)
            ]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.TRMs:
            x = block(x)
        return x


class CodebookTokenizer(nn.Module):
    def __init__(self, width: int, vocab: int):
        super().__init__()
        self.center = nn.Linear(width, vocab)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, width = x.shape
        logits = self.center(x.reshape(-1, width))
        return F.gumbel_softmax(logits).argmax(dim=-1).view(batch, length)


class RegressorStack(nn.Module):
    def __init__(self, width: int, heads: int, inner: int, count: int):
        super().__init__()
        self.layers = nn.ModuleList([CrossBlock(width, heads, inner) for _ in range(count)])

    def forward(self, visible: torch.Tensor, queries: torch.Tensor) -> torch.Tensor:
        for block in self.layers:
            queries = block(visible, queries)
        return queries


class UnusedChannelMapping(nn.Module):
    """Present in the original checkpoints, never on a path to an output."""

    def __init__(self, units: int, tokens: int):
        super().__init__()
        middle = (units + tokens) // 2
        self.conv1 = nn.Conv1d(units, middle, 1)
        self.conv2 = nn.Conv1d(middle, tokens, 1)


class TimeEncoder(nn.Module):
    """The original time encoder (time-major input B x T x C)."""

    def __init__(self, args: OriginalArgs):
        super().__init__()
        self.args = args
        width = args.d_model
        self.units = int(args.data_shape[0] / args.wave_length)
        self.mask_len = int(args.mask_ratio * self.units)
        self.position = PositionTable(self.units, width)
        self.mask_token = nn.Parameter(torch.randn(width))
        self.input_projection = nn.Conv1d(
            args.data_shape[1], width, kernel_size=args.wave_length, stride=args.wave_length
        )
        self.encoder = BlockStack(args)
        self.momentum_encoder = BlockStack(args)
        self.tokenizer = CodebookTokenizer(width, args.vocab_size)
        self.reg = RegressorStack(width, args.attn_heads, 4 * width, args.reg_layers)
        self.predict_head = nn.Linear(width, args.num_class)
        self.channelmapping = UnusedChannelMapping(self.units, 77)
        self.dimmapping = nn.Linear(width, 768)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_normal_(module.weight)
                nn.init.constant_(module.bias, 0.1)

    def _units(self, x: torch.Tensor) -> torch.Tensor:
        return self.input_projection(x.transpose(1, 2)).transpose(1, 2).contiguous()

    def forward(self, x: torch.Tensor):
        """(token states, pooled feature, class scores) — the original's fine-tuning mode."""
        units = self._units(x)
        units = units + self.position(units)
        states = self.encoder(units)
        pooled = states.mean(dim=1)
        return states, pooled, self.predict_head(pooled)

    def pretrain_forward(self, x: torch.Tensor, permutation: np.ndarray | None = None):
        """One LMM pass; ``permutation`` of the units (one per batch), drawn at random if not given."""
        units = self._units(x)
        tokens = self.tokenizer(units)
        units = units + self.position(units)
        queries = self.mask_token.expand(units.shape[0], units.shape[1], -1) + self.position(units)
        order = np.random.permutation(units.shape[1]) if permutation is None else np.asarray(permutation)
        visible_idx, masked_idx = order[: -self.mask_len], order[-self.mask_len :]
        rep_visible = self.encoder(units[:, visible_idx, :])
        with torch.no_grad():
            rep_masked = self.momentum_encoder(units[:, masked_idx, :])
        prediction = self.reg(rep_visible, queries[:, masked_idx, :])
        return [rep_masked, prediction], [self.tokenizer.center(prediction), tokens[:, masked_idx]]

    def copy_weight(self) -> None:
        with torch.no_grad():
            for online, momentum in zip(self.encoder.parameters(), self.momentum_encoder.parameters()):
                momentum.copy_(online)

    def momentum_update(self) -> None:
        m = self.args.momentum
        with torch.no_grad():
            for online, momentum in zip(self.encoder.parameters(), self.momentum_encoder.parameters()):
                momentum.mul_(m).add_(online, alpha=1 - m)


class FreqEncoder(nn.Module):
    """The original frequency encoder: NumPy |FFT| on the CPU, LSTM, Linear + ReLU, class head."""

    def __init__(self, input_size: int = 128, lstm_size: int = 128, lstm_layers: int = 1, output_size: int = 128,
                 num_samples: int = 440):  # fmt: skip
        super().__init__()
        self.lstm_size = lstm_size
        self.lstm_layers = lstm_layers
        self.num_samples = num_samples
        self.lstm = nn.LSTM(input_size, lstm_size, num_layers=lstm_layers, batch_first=True)
        self.output = nn.Linear(lstm_size, output_size)
        self.classifier = nn.Linear(output_size, 40)

    def forward(self, x: torch.Tensor):
        """(class scores, 128-d feature) of time-major ``x`` (B x T x C)."""
        device = x.device
        channels_first = x.permute(0, 2, 1).detach().cpu().numpy()
        spectrum = np.abs(np.fft.fft(channels_first, axis=2)[:, :, 1 : self.num_samples // 2 + 1])
        steps = torch.tensor(spectrum).float().permute(0, 2, 1).to(device)
        zeros = torch.zeros(self.lstm_layers, x.shape[0], self.lstm_size, device=device)
        last = self.lstm(steps, (zeros, zeros))[0][:, -1, :]
        feature = F.relu(self.output(last))
        return self.classifier(feature), feature


class TimeFreqEncoder(nn.Module):
    def __init__(self, time_model: TimeEncoder, freq_model: FreqEncoder, num_class: int = 40):
        super().__init__()
        self.pretrained_model_time = time_model
        self.pretrained_model_freq = freq_model
        self.fc01 = nn.Linear(time_model.args.d_model + freq_model.output.out_features, num_class)

    def forward(self, x: torch.Tensor):
        _, time_feature, _ = self.pretrained_model_time(x)
        _, freq_feature = self.pretrained_model_freq(x)
        joint = torch.cat((time_feature, freq_feature), dim=1)
        return joint, joint, self.fc01(joint)


class AlignNet(nn.Module):
    def __init__(self, input_size: int, freq_size: int, output_size: int, pretrained_model: TimeFreqEncoder,
                 num_class: int = 40):  # fmt: skip
        super().__init__()
        self.pretrained_model = pretrained_model
        wide = 4 * input_size
        self.fc01 = nn.Linear(input_size + freq_size + num_class, wide)
        self.fc02 = nn.Linear(wide, input_size)
        self.fc03 = nn.Linear(input_size, wide)
        self.fc04 = nn.Linear(wide, input_size)
        self.fc05 = nn.Linear(input_size, wide)
        self.fc6 = nn.Linear(wide, output_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, joint, scores = self.pretrained_model(x)
        h1 = torch.tanh(self.fc01(torch.cat((joint, scores), dim=1)))
        h2 = torch.tanh(self.fc02(h1))
        h3 = torch.tanh(self.fc03(h2) + h1)
        h4 = torch.tanh(self.fc04(h3) + h2)
        h5 = torch.tanh(self.fc05(h4) + h3)
        return self.fc6(h5)


def build_original_align(args: OriginalArgs, lstm_size: int = 128, output_size: int = 128,
                         prompt_size: int = 77 * 768) -> AlignNet:  # fmt: skip
    """The full original stack: AlignNet(TimeFreqEncoder(TimeEncoder, FreqEncoder))."""
    time_model = TimeEncoder(args)
    freq_model = FreqEncoder(args.data_shape[1], lstm_size, 1, output_size, num_samples=args.data_shape[0])
    timefreq = TimeFreqEncoder(time_model, freq_model, args.num_class)
    return AlignNet(args.d_model, output_size, prompt_size, timefreq, args.num_class)
