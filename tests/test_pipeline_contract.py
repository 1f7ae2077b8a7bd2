"""Contract tests: BrainVisPipeline behaves like a diffusers pipeline (issue 14).

The checks a diffusers user relies on, written for this pipeline: seeding with one generator or
a list, ``num_images_per_prompt``, list input, precomputed embeddings, ``encode_prompt`` with only
the text encoder loaded, optional components, callbacks across both stages, output types and
determinism. Tiny random components (fixtures in _fixtures_diffusion.py); every call < 1 s.
"""

from __future__ import annotations

import copy
import json
import warnings

import numpy as np
import PIL.Image
import pytest
import torch
from diffusers.utils.torch_utils import randn_tensor

from brainvis_hf.pipelines import BrainVisPipeline

# 2 stage-1 steps (3 PLMS evaluations), 2 refinement steps (int(3 * 0.85)) with guidance 7.5
FAST = dict(num_inference_steps=2, refine_num_inference_steps=3)


def make_eeg(batch: int = 2, length: int = 440, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, 128, length, generator=torch.Generator().manual_seed(seed))


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture
def pipe(tiny_brainvis_pipeline):
    return tiny_brainvis_pipeline


# ---------------------------------------------------------------------------------------------
# generator
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("num_images_per_prompt", [1, 2])
def test_image_j_of_a_generator_list_is_the_single_call_with_generator_j(pipe, num_images_per_prompt):
    eeg = make_eeg(3)
    seeds = [10 + j for j in range(3 * num_images_per_prompt)]
    batched = pipe(eeg, num_images_per_prompt=num_images_per_prompt, generator=[gen(s) for s in seeds],
                   output_type="np", return_stage1_images=True, **FAST)  # fmt: skip
    assert batched.images.shape == (3 * num_images_per_prompt, 32, 32, 3)
    for j, seed in enumerate(seeds):
        # a plain generator (not a one-element list), as in StableDiffusionPipeline
        single = pipe(eeg[j // num_images_per_prompt], generator=gen(seed), output_type="np", return_stage1_images=True, **FAST)
        np.testing.assert_allclose(single.images[0], batched.images[j], atol=1e-5)
        np.testing.assert_allclose(single.stage1_images[0], batched.stage1_images[j], atol=1e-5)


def test_a_single_generator_draws_the_batch_noise_like_randn_tensor(pipe):
    eeg = make_eeg(2)
    got = pipe(eeg, num_images_per_prompt=2, generator=gen(4), refine=False, output_type="latent", **FAST).images
    # diffusers' recipe: one randn_tensor of the whole batch from the generator, passed as `latents`
    noise = randn_tensor((4, 4, 16, 16), generator=gen(4))
    expected = pipe(eeg, num_images_per_prompt=2, latents=noise, refine=False, output_type="latent", **FAST).images
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=0)
    # which is not the per-image draw of a list of generators: seeded alike, those give equal images
    listed = pipe(eeg[:1], num_images_per_prompt=4, generator=[gen(4) for _ in range(4)], refine=False, output_type="latent", **FAST).images
    torch.testing.assert_close(listed[1:], listed[:1].expand(3, -1, -1, -1))
    batch = pipe(eeg[:1], num_images_per_prompt=4, generator=gen(4), refine=False, output_type="latent", **FAST).images
    assert not torch.allclose(batch[1], batch[0], atol=1e-3)
    torch.testing.assert_close(batch[0], listed[0])


def test_determinism_and_max_batch_size_independence(pipe):
    eeg = make_eeg(3)
    for generator in (lambda: gen(7), lambda: [gen(s) for s in range(6)]):
        first = pipe(eeg, num_images_per_prompt=2, generator=generator(), output_type="np", **FAST).images
        again = pipe(eeg, num_images_per_prompt=2, generator=generator(), output_type="np", **FAST).images
        np.testing.assert_array_equal(first, again)
        # UNet / VAE chunks of one row: same images (the VAE posterior noise is drawn once)
        chunked = pipe(eeg, num_images_per_prompt=2, generator=generator(), max_batch_size=1, output_type="np", **FAST).images
        np.testing.assert_allclose(chunked, first, atol=1e-5)
    other = pipe(eeg, num_images_per_prompt=2, generator=gen(8), output_type="np", **FAST).images
    assert not np.allclose(other, first, atol=1e-3)


# ---------------------------------------------------------------------------------------------
# num_images_per_prompt and its deprecated alias
# ---------------------------------------------------------------------------------------------


def test_num_images_per_prompt_default_and_order(pipe):
    eeg = make_eeg(2)
    assert len(pipe(eeg, generator=gen(), **FAST).images) == 2  # default 1, like diffusers
    seeds = [1, 2, 3, 4, 5, 6]
    three = pipe(eeg, num_images_per_prompt=3, generator=[gen(s) for s in seeds], output_type="np", **FAST).images
    assert three.shape == (6, 32, 32, 3)
    # EEG-major: images 0..2 belong to EEG 0, images 3..5 to EEG 1
    second = pipe(eeg[1], num_images_per_prompt=3, generator=[gen(s) for s in seeds[3:]], output_type="np", **FAST).images
    np.testing.assert_allclose(second, three[3:], atol=1e-5)


def test_num_images_per_eeg_is_a_deprecated_alias(pipe):
    eeg = make_eeg(1)
    with pytest.warns(FutureWarning, match=r"`num_images_per_eeg` is deprecated .* use `num_images_per_prompt`") as record:
        old = pipe(eeg, num_images_per_eeg=2, generator=gen(3), output_type="np", **FAST).images
    assert record[0].filename == __file__  # points at the caller's line
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        new = pipe(eeg, num_images_per_prompt=2, generator=gen(3), output_type="np", **FAST).images
    np.testing.assert_array_equal(old, new)
    with pytest.warns(FutureWarning), pytest.raises(ValueError, match=r"`num_images_per_prompt=3` and the deprecated `num_images_per_eeg=2`"):
        pipe(eeg, num_images_per_prompt=3, num_images_per_eeg=2, **FAST)
    with pytest.raises(TypeError, match=r"unexpected keyword argument\(s\): num_image_per_prompt"):
        pipe(eeg, num_image_per_prompt=2, **FAST)


# ---------------------------------------------------------------------------------------------
# inputs
# ---------------------------------------------------------------------------------------------


def test_a_list_of_recordings_equals_the_stacked_batch(pipe):
    eeg = make_eeg(2, length=480)  # raw recordings, cut to samples 20..460 by the pipeline
    stacked = pipe(eeg, generator=[gen(1), gen(2)], output_type="np", **FAST)
    as_list = pipe([eeg[0].numpy().astype(np.float64), eeg[1, :, 20:460]], generator=[gen(1), gen(2)], output_type="np", **FAST)
    np.testing.assert_allclose(as_list.images, stacked.images, atol=1e-5)
    assert as_list.predicted_labels == stacked.predicted_labels
    with pytest.raises(ValueError, match=r"`eeg_values\[1\]` must be one recording of shape \(C, T\), got shape \(1, 128, 440\)"):
        pipe([eeg[0], eeg[:1, :, :440]], **FAST)
    with pytest.raises(ValueError, match=r"`eeg_values\[1\]`: `eeg_values` must have 128 channels"):
        pipe([eeg[0], torch.zeros(64, 440)], **FAST)
    with pytest.raises(ValueError, match=r"empty list"):
        pipe([], **FAST)


def test_precomputed_embeddings_skip_the_encoders(pipe, tiny_alignment_model):
    eeg = make_eeg(2)
    reference = pipe(eeg, generator=gen(5), guidance_scale=2.0, output_type="np", **FAST)
    with torch.no_grad():
        prompt_embeds = tiny_alignment_model(eeg_values=eeg).prompt_embeds
    refine_embeds, empty = pipe.encode_prompt(reference.predicted_labels, "cpu", do_classifier_free_guidance=True)

    text_calls, eeg_calls = [], []
    hooks = [pipe.text_encoder.register_forward_hook(lambda *a: text_calls.append(1)),
             pipe.eeg_encoder.register_forward_hook(lambda *a: eeg_calls.append(1))]  # fmt: skip
    try:
        out = pipe(prompt_embeds=prompt_embeds, negative_prompt_embeds=empty[:1], refine_prompt_embeds=refine_embeds,
                   guidance_scale=2.0, generator=gen(5), output_type="np", **FAST)  # fmt: skip
    finally:
        for hook in hooks:
            hook.remove()
    assert not text_calls and not eeg_calls
    np.testing.assert_allclose(out.images, reference.images, atol=1e-5)
    assert out.predicted_labels is None and out.predicted_label_ids is None and out.predicted_probs is None
    # a separate negative embedding for the refinement stage is used there
    other = pipe(prompt_embeds=prompt_embeds, negative_prompt_embeds=empty[:1], refine_prompt_embeds=refine_embeds,
                 refine_negative_prompt_embeds=refine_embeds.flip(0), guidance_scale=2.0, generator=gen(5), output_type="np", **FAST)  # fmt: skip
    assert not np.allclose(other.images, reference.images, atol=1e-3)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(eeg_values=make_eeg(1), prompt_embeds=torch.zeros(1, 77, 32)), r"exactly one of `eeg_values` .* and `prompt_embeds`"),
        (dict(), r"exactly one of `eeg_values`"),
        (dict(prompt_embeds=torch.zeros(1, 77, 32)), r"with `prompt_embeds`, pass `refine_prompt` or `refine_prompt_embeds`"),
        (dict(prompt_embeds=torch.zeros(1, 77, 16), refine=False), r"`prompt_embeds` must be a tensor \(batch, sequence, 32\) .* got \(1, 77, 16\)"),
        (dict(prompt_embeds=torch.zeros(2, 77, 32), refine_prompt_embeds=torch.zeros(3, 77, 32)),
         r"`refine_prompt_embeds` has batch size 3; expected 1 \(shared\) or one per recording \(2\)"),
        (dict(eeg_values=make_eeg(1), refine_prompt="cat", refine_prompt_embeds=torch.zeros(1, 77, 32)),
         r"either `refine_prompt` or `refine_prompt_embeds`, not both"),
        (dict(prompt_embeds=torch.zeros(1, 77, 32), negative_prompt_embeds=torch.zeros(1, 10, 32), guidance_scale=2.0, refine=False),
         r"`negative_prompt_embeds` \(10, 32\) and `prompt_embeds` \(77, 32\) must have the same"),
        (dict(eeg_values=make_eeg(1), negative_prompt_embeds=torch.zeros(1, 10, 32), guidance_scale=2.0, refine=False),
         r"`negative_prompt_embeds` \(10, 32\) and the EEG prompt embedding \(77, 32\) must have the same"),
    ],
)
def test_bad_embedding_arguments_are_refused(pipe, kwargs, message):
    with pytest.raises(ValueError, match=message):
        pipe(**kwargs, **FAST)


def test_encode_prompt_works_with_only_the_text_encoder_and_tokenizer(tiny_sd_components):
    text_only = BrainVisPipeline(
        eeg_encoder=None, vae=None, unet=None, scheduler=None,
        text_encoder=tiny_sd_components["text_encoder"], tokenizer=tiny_sd_components["tokenizer"],
    )  # fmt: skip
    embeds, negative = text_only.encode_prompt(["canoe", "daisy"], "cpu", num_images_per_prompt=2, do_classifier_free_guidance=True)
    tokenizer, text_encoder = tiny_sd_components["tokenizer"], tiny_sd_components["text_encoder"]
    with torch.no_grad():
        ids = tokenizer(["canoe", "daisy", ""], padding="max_length", max_length=77, return_tensors="pt").input_ids
        direct = text_encoder(ids)[0]
    assert embeds.shape == negative.shape == (4, 77, 32)
    torch.testing.assert_close(embeds, direct[[0, 0, 1, 1]])
    torch.testing.assert_close(negative, direct[[2, 2, 2, 2]])
    # no guidance: no negative embeddings; precomputed embeddings are passed through (repeated)
    assert text_only.encode_prompt("canoe", "cpu")[1] is None
    again, _ = text_only.encode_prompt(None, "cpu", num_images_per_prompt=3, prompt_embeds=direct[:1])
    torch.testing.assert_close(again, direct[[0, 0, 0]])
    # the embeddings come in the text encoder's dtype (a copy: the fixture's weights are shared)
    half = BrainVisPipeline(eeg_encoder=None, vae=None, unet=None, scheduler=None,
                            text_encoder=copy.deepcopy(text_encoder).to(torch.bfloat16), tokenizer=tokenizer)  # fmt: skip
    assert half.encode_prompt("canoe", "cpu")[0].dtype == torch.bfloat16


# ---------------------------------------------------------------------------------------------
# optional components
# ---------------------------------------------------------------------------------------------


def test_optional_text_components_save_and_load(pipe, tiny_alignment_model, tiny_sd_components, tmp_path):
    assert set(BrainVisPipeline._optional_components) == {"text_encoder", "tokenizer"}
    parts = {k: v for k, v in tiny_sd_components.items() if k not in ("text_encoder", "tokenizer")}
    parts["scheduler"] = type(parts["scheduler"]).from_config(parts["scheduler"].config)
    lean = BrainVisPipeline(eeg_encoder=tiny_alignment_model, text_encoder=None, tokenizer=None, **parts)
    lean.set_progress_bar_config(disable=True)
    eeg = make_eeg(2)
    reference = pipe(eeg, generator=gen(2), refine=False, output_type="np", **FAST).images
    np.testing.assert_allclose(lean(eeg, generator=gen(2), refine=False, output_type="np", **FAST).images, reference, atol=1e-6)

    lean.save_pretrained(tmp_path / "lean")
    index = json.loads((tmp_path / "lean" / "model_index.json").read_text())
    assert index["text_encoder"] == [None, None] and index["tokenizer"] == [None, None]
    assert not (tmp_path / "lean" / "text_encoder").exists()
    loaded = BrainVisPipeline.from_pretrained(tmp_path / "lean")
    loaded.set_progress_bar_config(disable=True)
    assert loaded.text_encoder is None and loaded.tokenizer is None
    np.testing.assert_allclose(loaded(eeg, generator=gen(2), refine=False, output_type="np", **FAST).images, reference, atol=1e-6)
    # what needs the text encoder says so, before any denoising
    with pytest.raises(ValueError, match=r"needs the text encoder and tokenizer .* loaded without them"):
        loaded(eeg, **FAST)
    with pytest.raises(ValueError, match=r"needs the text encoder and tokenizer"):
        loaded(eeg, refine=False, guidance_scale=2.0, **FAST)

    # a full folder loads without them when asked
    pipe.save_pretrained(tmp_path / "full")
    skipped = BrainVisPipeline.from_pretrained(tmp_path / "full", text_encoder=None, tokenizer=None)
    assert skipped.text_encoder is None and skipped.tokenizer is None and skipped.unet is not None


# ---------------------------------------------------------------------------------------------
# callbacks across both stages
# ---------------------------------------------------------------------------------------------


def test_callback_sees_one_step_counter_across_both_stages(pipe):
    seen = []

    def record(p, step, timestep, kwargs):
        seen.append((p.stage, step, p.stage_start_step, p.num_timesteps, p.guidance_scale, int(timestep)))
        return {}

    pipe(make_eeg(1), generator=gen(), guidance_scale=1.5, refine_guidance_scale=6.0, callback_on_step_end=record,
         output_type="latent", **FAST)  # fmt: skip
    # PLMS: 2 steps -> 3 timesteps in stage 1; refinement: the last 2 of 3 steps -> 3 timesteps
    stage1 = type(pipe.scheduler).from_config(pipe.scheduler.config)
    stage1.set_timesteps(2)
    refine = type(pipe.scheduler).from_config(pipe.scheduler.config)
    refine.set_timesteps(3)
    expected_t = [int(t) for t in stage1.timesteps] + [int(t) for t in refine.timesteps[1 * refine.order :]]
    assert [s[1] for s in seen] == list(range(6))
    assert [s[0] for s in seen] == ["stage1"] * 3 + ["refine"] * 3
    assert [s[2] for s in seen] == [0] * 3 + [3] * 3
    assert {s[3] for s in seen} == {6}
    assert [s[4] for s in seen] == [1.5] * 3 + [6.0] * 3
    assert [s[5] for s in seen] == expected_t
    # without refinement the count is stage 1's
    seen.clear()
    pipe(make_eeg(1), generator=gen(), refine=False, callback_on_step_end=record, output_type="latent", **FAST)
    assert [s[1] for s in seen] == [0, 1, 2] and {s[3] for s in seen} == {3}


def _set_guidance_at(step_index: int, scale: float):
    def callback(p, step, timestep, kwargs):
        if step == step_index:
            p._guidance_scale = scale
        return {}

    return callback


def test_guidance_changed_in_stage1_carries_into_refinement(pipe):
    eeg = make_eeg(2)
    # turned off at the last stage-1 step: refinement runs unguided, as with refine_guidance_scale=1
    off = pipe(eeg, generator=gen(9), guidance_scale=3.0, callback_on_step_end=_set_guidance_at(2, 1.0), output_type="np", **FAST)
    expected_off = pipe(eeg, generator=gen(9), guidance_scale=3.0, refine_guidance_scale=1.0, output_type="np", **FAST)
    np.testing.assert_allclose(off.images, expected_off.images, atol=1e-5)
    # turned on from 1: refinement guided at 5 (the empty-prompt embedding is computed when needed)
    on = pipe(eeg, generator=gen(9), guidance_scale=1.0, refine_guidance_scale=1.0,
              callback_on_step_end=_set_guidance_at(2, 5.0), output_type="np", **FAST)  # fmt: skip
    expected_on = pipe(eeg, generator=gen(9), guidance_scale=1.0, refine_guidance_scale=5.0, output_type="np", **FAST)
    np.testing.assert_allclose(on.images, expected_on.images, atol=1e-5)
    # a change made during refinement applies from the next step on
    late = pipe(eeg, generator=gen(9), callback_on_step_end=_set_guidance_at(3, 1.0), output_type="np", **FAST)
    default = pipe(eeg, generator=gen(9), output_type="np", **FAST)
    assert not np.allclose(late.images, default.images, atol=1e-4)
    assert not np.allclose(late.images, expected_off.images, atol=1e-4)


def test_guidance_change_mid_stage_takes_effect_at_the_next_step(pipe):
    eeg = make_eeg(1)
    rows = []
    hook = pipe.unet.register_forward_hook(lambda m, args, out: rows.append(args[0].shape[0]))
    try:
        pipe(eeg, generator=gen(), guidance_scale=3.0, refine=False, callback_on_step_end=_set_guidance_at(0, 1.0), **FAST)
    finally:
        hook.remove()
    assert rows == [2, 1, 1]  # guided (2 rows) only before the callback turned guidance off


# ---------------------------------------------------------------------------------------------
# output types
# ---------------------------------------------------------------------------------------------


def test_output_type_variants_agree(pipe):
    eeg = make_eeg(1)
    outs = {t: pipe(eeg, generator=gen(6), output_type=t, return_stage1_images=True, **FAST) for t in ("np", "pt", "pil", "latent")}
    for field in ("images", "stage1_images"):
        as_np, as_pt, as_pil = (getattr(outs[t], field) for t in ("np", "pt", "pil"))
        assert as_np.shape == (1, 32, 32, 3) and as_np.dtype == np.float32 and 0 <= as_np.min() and as_np.max() <= 1
        np.testing.assert_allclose(as_pt.permute(0, 2, 3, 1).numpy(), as_np, atol=1e-6)
        assert isinstance(as_pil[0], PIL.Image.Image)
        np.testing.assert_allclose(np.asarray(as_pil[0]), np.round(as_np[0] * 255), atol=1)
        latents = getattr(outs["latent"], field)
        with torch.no_grad():
            decoded = pipe.image_processor.postprocess(pipe.decode_latents(latents, 8), output_type="np")
        np.testing.assert_allclose(decoded, as_np, atol=1e-5)
