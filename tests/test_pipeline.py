"""Tests of BrainVisPipeline with tiny random components (fixtures in _fixtures_diffusion.py)."""

from __future__ import annotations

import json

import numpy as np
import PIL.Image
import pytest
import torch

from brainvis_hf.pipelines import BrainVisPipeline, BrainVisPipelineOutput

# 2 stage-1 steps, 2 refinement steps (int(3 * 0.85)), 2 samples per EEG: keeps each call < 1 s
FAST = dict(num_images_per_prompt=2, num_inference_steps=2, refine_num_inference_steps=3)


def make_eeg(batch: int = 2, length: int = 440, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, 128, length, generator=torch.Generator().manual_seed(seed))


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------------------------------------
# outputs
# ---------------------------------------------------------------------------------------------


def test_output_fields_against_the_encoder(tiny_brainvis_pipeline, tiny_alignment_model):
    pipe = tiny_brainvis_pipeline
    eeg = make_eeg(3)
    out = pipe(eeg, generator=gen(), output_type="np", return_stage1_images=True, **FAST)
    assert isinstance(out, BrainVisPipelineOutput)
    assert out.images.shape == (6, 32, 32, 3) and out.stage1_images.shape == (6, 32, 32, 3)
    assert 0 <= out.images.min() and out.images.max() <= 1
    assert not np.allclose(out.images, out.stage1_images)
    with torch.no_grad():
        logits = tiny_alignment_model(eeg_values=eeg).logits
    np.testing.assert_allclose(out.predicted_probs, logits.softmax(-1).numpy(), rtol=1e-5, atol=1e-6)
    assert out.predicted_label_ids.dtype == np.int64
    assert out.predicted_label_ids.tolist() == logits.argmax(-1).tolist()
    id2label = tiny_alignment_model.config.id2label
    assert out.predicted_labels == [id2label[i] for i in logits.argmax(-1).tolist()]


def test_output_types(tiny_brainvis_pipeline):
    pipe, eeg = tiny_brainvis_pipeline, make_eeg(1)
    as_np = pipe(eeg, generator=gen(), output_type="np", **FAST).images
    as_pt = pipe(eeg, generator=gen(), output_type="pt", **FAST).images
    as_pil = pipe(eeg, generator=gen(), output_type="pil", **FAST).images
    latents = pipe(eeg, generator=gen(), output_type="latent", return_stage1_images=True, **FAST)
    assert isinstance(as_pt, torch.Tensor) and as_pt.shape == (2, 3, 32, 32)
    np.testing.assert_allclose(as_pt.permute(0, 2, 3, 1).numpy(), as_np, atol=1e-6)
    assert isinstance(as_pil, list) and all(isinstance(im, PIL.Image.Image) and im.size == (32, 32) for im in as_pil)
    np.testing.assert_allclose(np.asarray(as_pil[0]), np.round(as_np[0] * 255), atol=1)
    assert latents.images.shape == (2, 4, 16, 16) and latents.stage1_images.shape == (2, 4, 16, 16)
    # decoding the returned latents gives the images
    with torch.no_grad():
        decoded = pipe.image_processor.postprocess(pipe.decode_latents(latents.images, 8), output_type="np")
    np.testing.assert_allclose(decoded, as_np, atol=1e-5)


def test_return_dict_false_gives_the_tuple(tiny_brainvis_pipeline):
    images, stage1, ids, labels, probs = tiny_brainvis_pipeline(
        make_eeg(1), generator=gen(), output_type="np", return_dict=False, **FAST
    )
    assert images.shape == (2, 32, 32, 3) and stage1 is None
    assert ids.shape == (1,) and len(labels) == 1 and probs.shape == (1, 40)


def test_numpy_single_recording_and_raw_window(tiny_brainvis_pipeline):
    pipe = tiny_brainvis_pipeline
    raw = make_eeg(1, length=500)
    reference = pipe(raw[0, :, 20:460], generator=gen(), output_type="np", **FAST).images
    from_numpy = pipe(raw[0, :, 20:460].numpy().astype(np.float64), generator=gen(), output_type="np", **FAST).images
    from_raw = pipe(raw, generator=gen(), output_type="np", **FAST).images
    np.testing.assert_allclose(from_numpy, reference, atol=1e-6)
    np.testing.assert_allclose(from_raw, reference, atol=1e-6)


# ---------------------------------------------------------------------------------------------
# reproducibility and batching
# ---------------------------------------------------------------------------------------------


def test_batched_equals_one_by_one(tiny_brainvis_pipeline):
    pipe, eeg = tiny_brainvis_pipeline, make_eeg(3)
    batched = pipe(eeg, generator=gen(7), output_type="np", **FAST).images
    again = pipe(eeg, generator=gen(7), output_type="np", **FAST).images
    np.testing.assert_array_equal(batched, again)
    # one EEG per call with per-image generators (the list form) gives the batched images
    seeds = list(range(100, 106))
    listed = pipe(eeg, generator=pipe.generators_from_seeds(seeds), output_type="np", **FAST).images
    one_by_one = np.concatenate(
        [pipe(eeg[i], generator=pipe.generators_from_seeds(seeds[2 * i : 2 * i + 2]), output_type="np", **FAST).images for i in range(3)]
    )
    np.testing.assert_allclose(one_by_one, listed, atol=1e-5)
    # UNet / VAE chunks of one row give the same images
    chunked = pipe(eeg, generator=gen(7), output_type="np", max_batch_size=1, **FAST).images
    np.testing.assert_allclose(chunked, batched, atol=1e-5)
    # a different seed gives different images
    assert not np.allclose(pipe(eeg, generator=gen(8), output_type="np", **FAST).images, batched, atol=1e-3)


def test_list_of_generators_maps_to_images(tiny_brainvis_pipeline):
    pipe, eeg = tiny_brainvis_pipeline, make_eeg(2)
    seeds = [11, 12, 13, 14]  # EEG-major: (eeg 0, sample 0), (0, 1), (1, 0), (1, 1)
    batched = pipe(eeg, generator=pipe.generators_from_seeds(seeds), output_type="np", **FAST).images
    fast1 = dict(FAST, num_images_per_prompt=1)
    for j, seed in enumerate(seeds):
        single = pipe(eeg[j // 2], generator=[gen(seed)], output_type="np", **fast1).images
        np.testing.assert_allclose(single[0], batched[j], atol=1e-5)


def test_latents_argument_sets_stage1_noise(tiny_brainvis_pipeline):
    pipe, eeg = tiny_brainvis_pipeline, make_eeg(1)
    noise = torch.randn(2, 4, 16, 16, generator=gen(3))
    a = pipe(eeg, latents=noise, generator=gen(0), refine=False, output_type="np", **FAST).images
    b = pipe(eeg, latents=noise, generator=gen(1), refine=False, output_type="np", **FAST).images
    np.testing.assert_allclose(a, b, atol=1e-6)  # PLMS is deterministic: only the start noise matters


# ---------------------------------------------------------------------------------------------
# stages, guidance, prompts
# ---------------------------------------------------------------------------------------------


def test_refine_off_gives_the_stage1_images(tiny_brainvis_pipeline):
    pipe, eeg = tiny_brainvis_pipeline, make_eeg(2)
    refined = pipe(eeg, generator=gen(), output_type="np", return_stage1_images=True, **FAST)
    stage1_only = pipe(eeg, generator=gen(), refine=False, output_type="np", return_stage1_images=True, **FAST)
    assert stage1_only.stage1_images is None
    np.testing.assert_allclose(stage1_only.images, refined.stage1_images, atol=1e-6)


def test_refinement_prompts(tiny_brainvis_pipeline, monkeypatch):
    pipe, eeg = tiny_brainvis_pipeline, make_eeg(2)
    seen: list[list[str]] = []
    original = pipe._encode_text

    def spy(prompts, device):
        seen.append(list(prompts))
        return original(prompts, device)

    monkeypatch.setattr(pipe, "_encode_text", spy)
    out = pipe(eeg, generator=gen(), output_type="np", **FAST)
    assert seen == [[""], out.predicted_labels]  # empty prompt (guidance 7.5), then the class words
    seen.clear()
    pipe(eeg, generator=gen(), output_type="np", refine_prompt="a photo of a cat", refine_guidance_scale=1.0, **FAST)
    assert seen == [["a photo of a cat", "a photo of a cat"]]  # no guidance: no empty prompt
    seen.clear()
    a = pipe(eeg, generator=gen(), output_type="np", refine_prompt=["canoe", "daisy"], **FAST).images
    assert seen == [[""], ["canoe", "daisy"]]
    b = pipe(eeg, generator=gen(), output_type="np", refine_prompt=["daisy", "canoe"], **FAST).images
    assert not np.allclose(a, b, atol=1e-4)


def test_stage1_guidance_against_a_manual_step(tiny_brainvis_pipeline, tiny_alignment_model):
    pipe, eeg = tiny_brainvis_pipeline, make_eeg(1)
    scale = 4.0
    noise = torch.randn(1, 4, 16, 16, generator=gen(5))
    got = pipe(eeg, latents=noise, num_images_per_prompt=1, num_inference_steps=1, guidance_scale=scale,
               refine=False, output_type="latent").images  # fmt: skip
    # independent computation: one PLMS step on uncond + scale * (cond - uncond)
    scheduler = type(pipe.scheduler).from_config(pipe.scheduler.config)
    scheduler.set_timesteps(1)
    t = scheduler.timesteps[0]
    with torch.no_grad():
        cond = tiny_alignment_model(eeg_values=eeg).prompt_embeds
        ids = pipe.tokenizer([""], padding="max_length", max_length=77, return_tensors="pt").input_ids
        uncond = pipe.text_encoder(ids)[0]
        x = noise * scheduler.init_noise_sigma
        eps_c = pipe.unet(x, t, encoder_hidden_states=cond).sample
        eps_u = pipe.unet(x, t, encoder_hidden_states=uncond).sample
    expected = scheduler.step(eps_u + scale * (eps_c - eps_u), t, x).prev_sample
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)
    unguided = pipe(eeg, latents=noise, num_images_per_prompt=1, num_inference_steps=1, refine=False, output_type="latent").images
    assert not torch.allclose(unguided, got, atol=1e-4)


def test_unet_rows_are_chunked(tiny_brainvis_pipeline):
    pipe, eeg = tiny_brainvis_pipeline, make_eeg(3)
    rows: list[int] = []
    handle = pipe.unet.register_forward_hook(lambda module, args, output: rows.append(args[0].shape[0]))
    try:
        pipe(eeg, generator=gen(), output_type="latent", max_batch_size=4, **FAST)
    finally:
        handle.remove()
    # PLMS evaluates its first timestep twice: 3 UNet steps per stage here.
    # stage 1 (no guidance): 6 images in rows of 4 + 2; refinement (guidance): 2 images (4 rows) per call
    assert rows == [4, 2] * 3 + [4, 4, 4] * 3


# ---------------------------------------------------------------------------------------------
# diffusers conventions
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("scheduler_name", ["DDIMScheduler", "EulerAncestralDiscreteScheduler"])
def test_scheduler_swap(tiny_brainvis_pipeline, scheduler_name):
    import diffusers

    pipe, eeg = tiny_brainvis_pipeline, make_eeg(2)
    plms = pipe(eeg, generator=gen(), output_type="np", **FAST).images
    pipe.scheduler = getattr(diffusers, scheduler_name).from_config(pipe.scheduler.config)
    assert pipe.config.scheduler[1] == scheduler_name
    swapped = pipe(eeg, generator=gen(), output_type="np", **FAST).images
    assert np.isfinite(swapped).all() and not np.allclose(swapped, plms, atol=1e-3)
    # the ancestral sampler draws noise at every step: with per-image generators still independent of batching
    listed = pipe(eeg, generator=pipe.generators_from_seeds([1, 2, 3, 4]), output_type="np", **FAST).images
    one_by_one = np.concatenate(
        [pipe(eeg[i], generator=pipe.generators_from_seeds([2 * i + 1, 2 * i + 2]), output_type="np", **FAST).images for i in range(2)]
    )
    np.testing.assert_allclose(one_by_one, listed, atol=1e-5)


def test_callback_on_step_end(tiny_brainvis_pipeline):
    pipe, eeg = tiny_brainvis_pipeline, make_eeg(1)
    calls = []

    def record(p, step, timestep, kwargs):
        calls.append((p.stage, step, tuple(kwargs["latents"].shape), tuple(kwargs["prompt_embeds"].shape)))
        return {}

    pipe(eeg, generator=gen(), output_type="latent", callback_on_step_end=record,
         callback_on_step_end_tensor_inputs=["latents", "prompt_embeds"], **FAST)  # fmt: skip
    # PLMS evaluates its first timestep twice: 3 steps per stage here, counted across both stages
    assert calls == [(stage, 3 * k + i, (2, 4, 16, 16), (2, 77, 32)) for k, stage in enumerate(("stage1", "refine")) for i in range(3)]

    def zero_at_the_end(p, step, timestep, kwargs):
        if p.stage == "refine" and step == p.num_timesteps - 1:
            return {"latents": torch.zeros_like(kwargs["latents"])}
        return {}

    out = pipe(eeg, generator=gen(), output_type="latent", callback_on_step_end=zero_at_the_end, **FAST)
    assert torch.count_nonzero(out.images) == 0


def test_progress_bars(tiny_brainvis_pipeline, capsys):
    pipe, eeg = tiny_brainvis_pipeline, make_eeg(1)
    pipe.set_progress_bar_config(disable=False, desc="brainvis")
    pipe(eeg, generator=gen(), output_type="latent", **FAST)
    err = capsys.readouterr().err
    assert err.count("brainvis") >= 2 and "2/2" in err  # one bar per stage
    pipe.set_progress_bar_config(disable=True)
    pipe(eeg, generator=gen(), output_type="latent", **FAST)
    assert "brainvis" not in capsys.readouterr().err


def test_model_cpu_offload_hooks_give_the_same_images(tiny_alignment_model):
    """``enable_model_cpu_offload`` needs an accelerator; on a CPU-only machine its hooks still
    run with device="cpu", which checks the offload sequence and the execution device."""
    from brainvis_hf.pipelines.tiny import build_tiny_sd_components

    pipe = BrainVisPipeline(eeg_encoder=tiny_alignment_model, **build_tiny_sd_components(seed=0))
    pipe.set_progress_bar_config(disable=True)
    eeg = make_eeg(1)
    reference = pipe(eeg, generator=gen(), output_type="np", **FAST).images
    device = "cuda" if torch.cuda.is_available() else "cpu"
    pipe.enable_model_cpu_offload(device=device)
    try:
        assert pipe._execution_device.type == device
        offloaded = pipe(eeg, generator=gen(), output_type="np", **FAST).images
        np.testing.assert_allclose(offloaded, reference, atol=1e-4)
        assert pipe.unet.device.type == "cpu"  # models go back to the CPU after the call
    finally:
        pipe.remove_all_hooks()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="moving models between CPU and GPU needs a CUDA device")
def test_model_cpu_offload_on_gpu(tiny_alignment_model):
    from brainvis_hf.pipelines.tiny import build_tiny_sd_components

    pipe = BrainVisPipeline(eeg_encoder=tiny_alignment_model, **build_tiny_sd_components(seed=0))
    pipe.set_progress_bar_config(disable=True)
    pipe.enable_model_cpu_offload()
    out = pipe(make_eeg(1), generator=gen(), output_type="np", **FAST)
    assert out.images.shape == (2, 32, 32, 3)
    assert all(p.device.type == "cpu" for p in pipe.unet.parameters())


# ---------------------------------------------------------------------------------------------
# saving, loading, assembling
# ---------------------------------------------------------------------------------------------


def test_save_and_load_give_identical_images(tiny_brainvis_pipeline, tmp_path):
    pipe, eeg = tiny_brainvis_pipeline, make_eeg(2)
    before = pipe(eeg, generator=gen(3), output_type="np", **FAST)
    pipe.save_pretrained(tmp_path)
    index = json.loads((tmp_path / "model_index.json").read_text())
    assert index["_class_name"] == "BrainVisPipeline"
    assert index["eeg_encoder"][0].startswith("brainvis_hf") and index["eeg_encoder"][1] == "BrainVisForCLIPAlignment"
    assert index["scheduler"] == ["diffusers", "PNDMScheduler"]
    assert (tmp_path / "eeg_encoder" / "model.safetensors").is_file()
    from brainvis_hf.presets import preset_dir

    shipped = json.loads((preset_dir("pipeline") / "model_index.json").read_text())  # the hub_configs template
    assert {k: v for k, v in index.items() if k[0] != "_"} == {k: v for k, v in shipped.items() if k[0] != "_"}
    loaded = BrainVisPipeline.from_pretrained(tmp_path)
    loaded.set_progress_bar_config(disable=True)
    assert type(loaded.eeg_encoder).__name__ == "BrainVisForCLIPAlignment" and not loaded.eeg_encoder.training
    after = loaded(eeg, generator=gen(3), output_type="np", **FAST)
    # same weights; float-rounding differences only (the encoder's CPU kernels cache packed weights)
    np.testing.assert_allclose(after.images, before.images, atol=1e-5)
    assert after.predicted_labels == before.predicted_labels
    np.testing.assert_allclose(after.predicted_probs, before.predicted_probs, atol=1e-6)


def test_assemble_from_alignment_and_sd_folder(tiny_brainvis_pipeline, tiny_alignment_model, tiny_sd_dir, tmp_path):
    tiny_alignment_model.save_pretrained(tmp_path / "align")
    pipe = BrainVisPipeline.from_alignment_and_sd(tmp_path / "align", tiny_sd_dir)
    pipe.set_progress_bar_config(disable=True)
    assert type(pipe.scheduler).__name__ == "PNDMScheduler" and pipe.scheduler.config.skip_prk_steps
    eeg = make_eeg(1)
    np.testing.assert_allclose(
        pipe(eeg, generator=gen(), output_type="np", **FAST).images,
        tiny_brainvis_pipeline(eeg, generator=gen(), output_type="np", **FAST).images,
        atol=1e-5,
    )
    from diffusers import DDIMScheduler

    ddim = DDIMScheduler.from_config(pipe.scheduler.config)
    assert BrainVisPipeline.from_alignment_and_sd(tiny_alignment_model, tiny_sd_dir, scheduler=ddim).scheduler is ddim


def test_prompt_width_mismatch_is_refused(tiny_alignment_model, tiny_sd_components):
    from brainvis_hf.pipelines.tiny import build_tiny_clip_text_model, build_tiny_unet

    parts = dict(tiny_sd_components, unet=build_tiny_unet(cross_attention_dim=16))
    with pytest.raises(ValueError, match=r"prompt embeddings of width 32 .* cross_attention_dim is 16"):
        BrainVisPipeline(eeg_encoder=tiny_alignment_model, **parts)
    parts = dict(tiny_sd_components, text_encoder=build_tiny_clip_text_model(hidden_size=16))
    with pytest.raises(ValueError, match=r"text encoder's hidden_size is 16 but the UNet's cross_attention_dim is 32"):
        BrainVisPipeline(eeg_encoder=tiny_alignment_model, **parts)


# ---------------------------------------------------------------------------------------------
# bad inputs
# ---------------------------------------------------------------------------------------------

_OK = make_eeg(2)
_NAN = _OK.clone()
_NAN[1, 3, 7] = float("nan")

BAD_INPUTS = [
    ("list", [[0.0]], {}, TypeError, r"`eeg_values\[0\]`: `eeg_values` must be a torch.Tensor or a numpy.ndarray .* got list"),
    ("dict", {"a": 1}, {}, TypeError, r"must be a torch.Tensor or a numpy.ndarray .* got dict"),
    ("int tensor", torch.zeros(2, 128, 440, dtype=torch.int64), {}, TypeError, r"floating-point .* got dtype torch.int64"),
    ("str array", np.array([["a"]]), {}, TypeError, r"floating-point .* dtype <U1"),
    ("1-d", torch.zeros(440), {}, ValueError, r"shape \(C, T\) or \(B, C, T\) = \(128, 440\) .* got shape \(440,\)"),
    ("4-d", torch.zeros(1, 1, 128, 440), {}, ValueError, r"got shape \(1, 1, 128, 440\)"),
    ("empty batch", torch.zeros(0, 128, 440), {}, ValueError, r"no recordings"),
    ("channels", torch.zeros(2, 64, 440), {}, ValueError, r"must have 128 channels .* got shape \(2, 64, 440\)"),
    ("too short", torch.zeros(2, 128, 450), {}, ValueError,
     r"has 450 time samples; expected 440 .* or at least 460 .* \[20, 460\)"),
    ("nan", _NAN, {}, ValueError, r"NaN or infinite values in recording\(s\) \[1\]"),
    ("strength 0", _OK, {"refine_strength": 0.0}, ValueError, r"`refine_strength` must be in \(0, 1\], got 0.0"),
    ("strength > 1", _OK, {"refine_strength": 1.5}, ValueError, r"`refine_strength` must be in \(0, 1\], got 1.5"),
    ("steps 0", _OK, {"num_inference_steps": 0}, ValueError, r"`num_inference_steps` must be an integer >= 1, got 0"),
    ("refine steps 0", _OK, {"refine_num_inference_steps": 0}, ValueError, r"`refine_num_inference_steps` must be an integer >= 1"),
    ("no refine step", _OK, {"refine_num_inference_steps": 1, "refine_strength": 0.5}, ValueError, r"leaves no refinement step"),
    ("samples 0", _OK, {"num_images_per_prompt": 0}, ValueError, r"`num_images_per_prompt` must be an integer >= 1, got 0"),
    ("batch 0", _OK, {"max_batch_size": 0}, ValueError, r"`max_batch_size` must be an integer >= 1"),
    ("prompt count", _OK, {"refine_prompt": ["a", "b", "c"]}, ValueError,
     r"`refine_prompt` has 3 prompts; expected one string or one per EEG recording \(2\)"),
    ("prompt type", _OK, {"refine_prompt": 3}, TypeError, r"`refine_prompt` must be a string or a list of strings, got int"),
    ("output type", _OK, {"output_type": "jpeg"}, ValueError, r"`output_type` must be one of pil, np, pt, latent, got 'jpeg'"),
    ("height", _OK, {"height": 31}, ValueError, r"`height` must be a positive multiple of 2 .* got 31"),
    ("generators", _OK, {"generator": [torch.Generator()] * 3}, ValueError,
     r"list of 3 generators; expected one per image, batch_size \* num_images_per_prompt = 2 \* 2 = 4"),
    ("latents", _OK, {"latents": torch.zeros(4, 4, 8, 8)}, ValueError, r"`latents` must have shape \(4, 4, 16, 16\) .* got \(4, 4, 8, 8\)"),
    ("callback inputs", _OK, {"callback_on_step_end_tensor_inputs": ["noise"]}, ValueError, r"has to be in .* found \['noise'\]"),
    ("guidance", _OK, {"guidance_scale": -1.0}, ValueError, r"`guidance_scale` must be >= 0"),
]


@pytest.mark.parametrize("name,eeg,kwargs,error,message", BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
def test_bad_inputs_are_refused_with_a_clear_message(tiny_brainvis_pipeline, name, eeg, kwargs, error, message):
    calls = []
    handle = tiny_brainvis_pipeline.unet.register_forward_hook(lambda *a: calls.append(1))
    try:
        with pytest.raises(error, match=message):
            tiny_brainvis_pipeline(eeg, **{**FAST, **kwargs})
    finally:
        handle.remove()
    assert not calls  # refused before any denoising
