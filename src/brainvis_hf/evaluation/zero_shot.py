"""Zero-shot retrieval: which of K unseen concepts does an EEG recording show?

The THINGS-EEG2 protocol (Gifford et al., 2022; NICE, Song et al., 2024): the test concepts
never occur in training; for each test recording, the K candidate concepts (200 in the release)
are ranked by the cosine similarity between what the model predicts from the EEG and each
candidate's embedding, and the metric is top-1 / top-5 accuracy over all K (``200-way``) and
over random subsets of ``n`` candidates (``2``/``4``/``50``-way; the expected value over all
subsets is computed exactly, so there is no sampling noise).

With BrainVis the prediction is the alignment model's prompt embedding (``L x D``, in the
space of the CLIP text encoder's last hidden state) and the candidates are the CLIP text
encodings of the test concepts' names (or captions); both are flattened for the cosine.
When CLIP image features of the candidate images and a matching EEG-side prediction are given,
the same retrieval is reported against them.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ._utils import to_numpy
from .generation_metrics import n_way_top_k_accuracy

DEFAULT_N_WAYS = (2, 4, 50, 200)
DEFAULT_TOP_KS = (1, 5)


def cosine_scores(queries: Any, candidates: Any, *, center: bool = False) -> np.ndarray:
    """``(N, K)`` cosine similarities between flattened ``queries`` (N, ...) and ``candidates`` (K, ...).

    ``center=True`` subtracts the candidates' mean from both sides first (a label-free step that
    removes what all candidates share, e.g. CLIP's position-dependent component).
    """
    q = to_numpy(queries, "queries", dtype=np.float64)
    c = to_numpy(candidates, "candidates", dtype=np.float64)
    q, c = q.reshape(len(q), -1), c.reshape(len(c), -1)
    if q.shape[1] != c.shape[1]:
        raise ValueError(f"queries have {q.shape[1]} values each but candidates {c.shape[1]}; they must live in one embedding space")
    if not (np.isfinite(q).all() and np.isfinite(c).all()):
        raise ValueError("queries or candidates contain NaN/Inf values")
    if center:
        mean = c.mean(axis=0, keepdims=True)
        q, c = q - mean, c - mean
    qn = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
    cn = c / np.maximum(np.linalg.norm(c, axis=1, keepdims=True), 1e-12)
    return qn @ cn.T


def zero_shot_retrieval(
    scores: Any,
    labels: Any,
    *,
    n_ways: Sequence[int] = DEFAULT_N_WAYS,
    top_ks: Sequence[int] = DEFAULT_TOP_KS,
) -> dict[str, Any]:
    """n-way top-k retrieval accuracy from a ``(N, K)`` score matrix.

    Args:
        scores: similarity of each of N queries to each of K candidate concepts.
        labels: ``(N,)`` index of each query's true candidate.
        n_ways: subset sizes; ``n > K`` is skipped (listed under ``skipped_n_ways``); the full
            ranking ``n = K`` is always added. Papers: 2, 4, 50 and 200 (= all THINGS-EEG2 test concepts).
        top_ks: hit when the true concept is among the ``k`` best of the kept candidates.

    Returns:
        ``{"{n}way_top{k}": accuracy, "chance_{n}way_top{k}": min(k, n) / n, ...,
        "num_queries", "num_candidates", "skipped_n_ways"}``. Ties count against the true
        concept; subsets are averaged exactly (hypergeometric), not sampled.
    """
    s = to_numpy(scores, "scores", dtype=np.float64)
    if s.ndim != 2 or s.shape[1] < 2:
        raise ValueError(f"`scores` must be (num_queries, num_candidates >= 2); got shape {tuple(s.shape)}")
    y = np.asarray(to_numpy(labels, "labels"))
    num_candidates = s.shape[1]
    result: dict[str, Any] = {"num_queries": int(len(s)), "num_candidates": int(num_candidates)}
    skipped = []
    ways = list(dict.fromkeys(int(n) for n in n_ways))
    if num_candidates not in ways:
        ways.append(num_candidates)  # the full ranking is always reported
    for n in ways:
        if n < 2:
            raise ValueError(f"n_ways must be >= 2, got {n}")
        if n > num_candidates:
            skipped.append(int(n))
            continue
        for k in top_ks:
            result[f"{n}way_top{k}"] = n_way_top_k_accuracy(s, y, n_way=int(n), top_k=int(k), exact=True)
            result[f"chance_{n}way_top{k}"] = min(k, n) / n
    result["skipped_n_ways"] = skipped
    return result


def zero_shot_evaluation(
    query_embeds: Any,
    text_embeds: Any,
    labels: Any,
    *,
    image_query_embeds: Any | None = None,
    image_embeds: Any | None = None,
    n_ways: Sequence[int] = DEFAULT_N_WAYS,
    top_ks: Sequence[int] = DEFAULT_TOP_KS,
    center: bool = False,
) -> dict[str, Any]:
    """Zero-shot retrieval of unseen concepts against text (and optionally image) embeddings.

    Args:
        query_embeds: ``(N, ...)`` per test recording, the model's prediction in the text space
            (BrainVis: the predicted prompt embedding, ``L x D``).
        text_embeds: ``(K, ...)`` per candidate concept, its CLIP text encoding (same shape).
        labels: ``(N,)`` index of each recording's concept among the K candidates.
        image_query_embeds, image_embeds: optional ``(N, D')`` EEG-side predictions in a CLIP
            image space and ``(K, D')`` CLIP image features of the candidates' images.
        n_ways, top_ks: see :func:`zero_shot_retrieval`.
        center: subtract the candidates' mean before the cosine (see :func:`cosine_scores`).

    Returns:
        ``{"text": metrics}`` (+ ``"image": metrics``), each as :func:`zero_shot_retrieval`.
    """
    out = {"text": zero_shot_retrieval(cosine_scores(query_embeds, text_embeds, center=center), labels,
                                       n_ways=n_ways, top_ks=top_ks)}
    if (image_query_embeds is None) != (image_embeds is None):
        raise ValueError("give both image_query_embeds and image_embeds, or neither")
    if image_embeds is not None:
        out["image"] = zero_shot_retrieval(cosine_scores(image_query_embeds, image_embeds, center=center), labels,
                                           n_ways=n_ways, top_ks=top_ks)
    return out


def zero_shot_markdown(metrics: dict[str, Any]) -> str:
    """A Markdown table of :func:`zero_shot_evaluation` results (one row per space and n-way)."""
    lines = ["| candidates | n-way | top-1 | top-5 | chance top-1 | chance top-5 |", "|---|---|---|---|---|---|"]
    for space, m in metrics.items():
        if not isinstance(m, dict) or "num_candidates" not in m:
            continue
        ways = sorted({int(k.split("way")[0]) for k in m if k[0].isdigit()})
        for n in ways:
            cells = [f"{100 * m[key]:.1f}%" if key in m else "-" for key in
                     (f"{n}way_top1", f"{n}way_top5", f"chance_{n}way_top1", f"chance_{n}way_top5")]
            lines.append(f"| {space} | {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def load_clip_text_encoder(clip_model: str, *, device: Any = "cpu"):
    """``(tokenizer, text_encoder)`` of a CLIP model folder / Hub id, or of a Stable Diffusion
    folder (``tokenizer/`` and ``text_encoder/`` sub-folders)."""
    from pathlib import Path

    from transformers import CLIPTextModel, CLIPTokenizer

    sub = Path(str(clip_model))
    kwargs = {"subfolder": "text_encoder"} if (sub / "text_encoder").is_dir() else {}
    tok_kwargs = {"subfolder": "tokenizer"} if (sub / "tokenizer").is_dir() else {}
    tokenizer = CLIPTokenizer.from_pretrained(str(clip_model), **tok_kwargs)
    text_encoder = CLIPTextModel.from_pretrained(str(clip_model), **kwargs).to(device).eval()
    return tokenizer, text_encoder


def evaluate_zero_shot(
    model: Any,
    data_dir: Any,
    clip_model: Any = None,
    *,
    split: str = "test",
    tokenizer: Any = None,
    text_encoder: Any = None,
    image_features: Any = None,
    n_ways: Sequence[int] = DEFAULT_N_WAYS,
    top_ks: Sequence[int] = DEFAULT_TOP_KS,
    center: bool = False,
    batch_size: int = 64,
    device: Any = None,
) -> dict[str, Any]:
    """Zero-shot retrieval of a prepared split's concepts by a trained alignment model.

    The candidates are the split's concepts (its distinct ``label`` values, ordered by label,
    named by ``label_text``), encoded with the CLIP text encoder exactly as the alignment
    targets are (:func:`~brainvis_hf.data.clip_targets.encode_texts`). Every recording of the
    split is a query.

    Args:
        model: a ``BrainVisForCLIPAlignment`` or its folder.
        data_dir: a prepared data folder (``brainvis data prepare``).
        clip_model: CLIP folder / Hub id (or Stable Diffusion folder); not needed when
            ``tokenizer`` and ``text_encoder`` are given.
        split: the split whose concepts are retrieved (THINGS-EEG2: ``test``, 200 unseen concepts).
        image_features: optional ``{"queries": (N, D'), "candidates": (K, D')}`` (rows in split
            order / label order) for the image-space retrieval.
        n_ways, top_ks, center: see :func:`zero_shot_evaluation`.
        batch_size, device: inference batching and device (default: CUDA when available).

    Returns:
        :func:`zero_shot_evaluation`'s dict plus ``"split"``, ``"concepts"`` (the candidate
        words) and ``"train_overlap"`` (candidate concepts also present in ``train``; non-empty
        means the evaluation is not zero-shot).
    """
    import torch

    from ..data.clip_targets import encode_texts
    from ..data.prepare import load_prepared_dataset
    from ..models import BrainVisForCLIPAlignment

    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if not isinstance(model, torch.nn.Module):
        model = BrainVisForCLIPAlignment.from_pretrained(str(model))
    model = model.to(device).eval()
    dataset_dict = load_prepared_dataset(data_dir)
    if split not in dataset_dict:
        raise ValueError(f"{data_dir}: no split {split!r} (has {sorted(dataset_dict)})")
    ds = dataset_dict[split]
    labels = np.asarray(ds["label"], dtype=np.int64)
    concept_ids = sorted(set(labels.tolist()))
    words: dict[int, str] = {}
    for label, text in zip(ds["label"], ds["label_text"]):
        words.setdefault(int(label), text)
    concepts = [words[i] for i in concept_ids]
    position = {c: j for j, c in enumerate(concept_ids)}
    targets = np.array([position[int(v)] for v in labels], dtype=np.int64)
    train_overlap = []
    if "train" in dataset_dict and split != "train":
        train_overlap = sorted({words[i] for i in set(dataset_dict["train"]["label"]) & set(concept_ids)})

    if text_encoder is None or tokenizer is None:
        if clip_model is None:
            raise ValueError("evaluate_zero_shot needs clip_model=<CLIP folder> or tokenizer= and text_encoder=")
        tokenizer, text_encoder = load_clip_text_encoder(clip_model, device=device)
    with torch.no_grad():
        text = encode_texts(concepts, tokenizer, text_encoder.to(device).eval())
        expected = tuple(text.shape[1:])
        got = (int(model.config.prompt_sequence_length), int(model.config.prompt_embed_dim))
        if expected != got:
            raise ValueError(
                f"The model predicts prompts of {got[0]} x {got[1]} but the CLIP text encoder gives {expected[0]} x "
                f"{expected[1]}; use the CLIP model the alignment targets were computed with"
            )
        eeg = ds.with_format("numpy", columns=["eeg"])
        preds = []
        for start in range(0, len(ds), batch_size):
            batch = torch.from_numpy(np.asarray(eeg[start : start + batch_size]["eeg"], dtype=np.float32)).to(device)
            preds.append(model(eeg_values=batch).prompt_embeds.float().cpu())
        queries = torch.cat(preds).numpy()
    kwargs = {}
    if image_features is not None:
        kwargs = {"image_query_embeds": image_features["queries"], "image_embeds": image_features["candidates"]}
    metrics = zero_shot_evaluation(queries, text.numpy(), targets, n_ways=n_ways, top_ks=top_ks, center=center, **kwargs)
    metrics.update(split=split, concepts=concepts, train_overlap=train_overlap, center=center)
    return metrics
