"""Sampling K candidates: seeds, diversity, batching with left padding, log-probabilities, finish reasons."""

import pytest
import torch

from rlhfkit.sampling import SamplingSettings, render_prompts, sample_candidates

PROMPTS = [
    "Write a short review of the film The Quiet Harbor.",
    "What did you think of the Lumo 2 kettle? Write a short review.",
    "Review the restaurant Rosa's Bistro in a few sentences.",
]


def test_seeded_sampling_is_reproducible_and_unseeded_is_diverse(tiny_model, tiny_tokenizer):
    config = SamplingSettings(k=4, seed=11, max_new_tokens=32)
    a = sample_candidates(tiny_model, tiny_tokenizer, PROMPTS, config, progress=False)
    b = sample_candidates(tiny_model, tiny_tokenizer, PROMPTS, config, progress=False)
    assert a.response.tolist() == b.response.tolist()
    assert a.sum_logprob.tolist() == pytest.approx(b.sum_logprob.tolist())
    assert len(a) == 12 and a.groupby("prompt_index").candidate.apply(list).tolist() == [[0, 1, 2, 3]] * 3
    # Within a prompt the candidates differ; without a seed two calls differ.
    assert a.groupby("prompt_index").response.nunique().min() >= 3
    free = SamplingSettings(k=4, max_new_tokens=32)
    c = sample_candidates(tiny_model, tiny_tokenizer, PROMPTS, free, progress=False)
    d = sample_candidates(tiny_model, tiny_tokenizer, PROMPTS, free, progress=False)
    assert c.response.tolist() != d.response.tolist()
    # Seeding does not disturb the caller's random state.
    torch.manual_seed(0)
    expected = torch.rand(1)
    torch.manual_seed(0)
    sample_candidates(tiny_model, tiny_tokenizer, PROMPTS[:1], config, progress=False)
    assert torch.rand(1) == expected


def test_batched_left_padded_greedy_matches_one_prompt_at_a_time(tiny_model, tiny_tokenizer):
    greedy = SamplingSettings(k=1, do_sample=False, max_new_tokens=24, batch_size=8)
    batched = sample_candidates(tiny_model, tiny_tokenizer, PROMPTS, greedy, progress=False)
    for i, prompt in enumerate(PROMPTS):
        alone = sample_candidates(tiny_model, tiny_tokenizer, [prompt], greedy, progress=False)
        assert alone.response[0] == batched.response[i]
        assert alone.sum_logprob[0] == pytest.approx(batched.sum_logprob[i], abs=1e-3)
    assert tiny_tokenizer.padding_side == "left"


def test_sum_logprob_is_the_models_own_log_likelihood(tiny_model, tiny_tokenizer):
    # Sampled at a low temperature with top-p, but scored under the untempered model.
    config = SamplingSettings(k=2, temperature=0.7, top_p=0.9, seed=3, max_new_tokens=40)
    table = sample_candidates(tiny_model, tiny_tokenizer, PROMPTS[:1], config, progress=False)
    prompt_text = render_prompts(tiny_tokenizer, PROMPTS[:1])[0]
    for _, row in table.iterrows():
        suffix = row.response + (tiny_tokenizer.eos_token if row.finish_reason == "eos" else "")
        prompt_ids = tiny_tokenizer(prompt_text, add_special_tokens=False)["input_ids"]
        response_ids = tiny_tokenizer(suffix, add_special_tokens=False)["input_ids"]
        ids = torch.tensor([prompt_ids + response_ids])
        with torch.no_grad():
            logprobs = tiny_model(ids).logits[0, :-1].log_softmax(-1)
        targets = ids[0, 1:]
        picked = logprobs.gather(-1, targets[:, None])[:, 0][len(prompt_ids) - 1 :]
        assert float(picked.sum()) == pytest.approx(row.sum_logprob, abs=1e-2)
        assert row.n_tokens == len(response_ids) - (row.finish_reason == "eos") == len(row.response_ids)
        assert tiny_tokenizer.decode(row.response_ids, skip_special_tokens=True) == row.response


def test_finish_reason_and_settings_are_recorded(tiny_model, tiny_tokenizer):
    table = sample_candidates(
        tiny_model, tiny_tokenizer, PROMPTS, SamplingSettings(k=2, max_new_tokens=3, seed=0, top_k=50), progress=False
    )
    assert (table.finish_reason == "length").all() and (table.n_tokens == 3).all()
    assert {"temperature", "top_p", "top_k", "max_new_tokens", "do_sample", "seed"} <= set(table.columns)
    assert (table.top_k == 50).all()
    long = sample_candidates(
        tiny_model, tiny_tokenizer, PROMPTS, SamplingSettings(k=2, max_new_tokens=120, seed=0), progress=False
    )
    assert (long.finish_reason == "eos").mean() > 0.8  # the model learned to end its reviews


def test_temperature_controls_diversity(tiny_model, tiny_tokenizer):
    def distinct_2(temperature):
        table = sample_candidates(
            tiny_model,
            tiny_tokenizer,
            PROMPTS,
            SamplingSettings(k=6, temperature=temperature, seed=5, max_new_tokens=40),
            progress=False,
        )
        words = [r.split() for r in table.response]
        bigrams = [tuple(w[i : i + 2]) for w in words for i in range(len(w) - 1)]
        return len(set(bigrams)) / max(1, len(bigrams))

    assert distinct_2(1.3) > distinct_2(0.3) + 0.1


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="greedy decoding returns the same response"):
        SamplingSettings(k=4, do_sample=False)
    with pytest.raises(ValueError, match="temperature must be > 0"):
        SamplingSettings(temperature=0)
    with pytest.raises(ValueError, match="top_p"):
        SamplingSettings(top_p=1.5)


def test_message_list_prompts_use_the_chat_template(tiny_tokenizer):
    rendered = render_prompts(tiny_tokenizer, [[{"role": "user", "content": "Hi"}], "Hi"])
    assert rendered[0] == rendered[1] == "<|user|>Hi<|end|><|assistant|>"
    assert render_prompts(tiny_tokenizer, ["Hi"], chat=False) == ["Hi"]


def test_candidate_pairs_cover_distinct_responses_per_prompt():
    import pandas as pd

    from rlhfkit.sampling import candidate_pairs

    table = pd.DataFrame(
        {
            "prompt_index": [0, 0, 0, 0, 1, 1],
            "prompt": ["p0"] * 4 + ["p1"] * 2,
            "response": ["a", "b", "a", "c", "x", "x"],
        }
    )
    pairs = candidate_pairs(table)
    assert {(p["response_a"], p["response_b"]) for p in pairs} == {("a", "b"), ("a", "c"), ("b", "c")}
    assert all(p["prompt"] == "p0" for p in pairs)  # p1 has one distinct response: no pair
    limited = candidate_pairs(table, max_pairs_per_prompt=2, seed=1)
    assert len(limited) == 2 and limited == candidate_pairs(table, max_pairs_per_prompt=2, seed=1)


def test_sampling_ignores_the_models_own_generation_config(tiny_model, meddling_model, tiny_tokenizer):
    # A checkpoint's generation_config (n-gram blocking, repetition penalty, min_new_tokens, top-k) must not reshape
    # the samples: sum_logprob is the model's own log-likelihood only if the tokens were drawn from the model.
    config = SamplingSettings(k=4, seed=5, max_new_tokens=40)
    plain = sample_candidates(tiny_model, tiny_tokenizer, PROMPTS, config, progress=False)
    meddled = sample_candidates(meddling_model, tiny_tokenizer, PROMPTS, config, progress=False)
    assert meddled.response_ids.tolist() == plain.response_ids.tolist()
    assert meddled.sum_logprob.tolist() == pytest.approx(plain.sum_logprob.tolist(), abs=1e-5)
    # The minimum length did not hold EOS back, and the model's config is untouched afterwards.
    assert ((meddled.finish_reason == "eos") & (meddled.n_tokens < 24)).any()
    assert meddling_model.generation_config.min_new_tokens == 24
    # Sanity: generate() on its own does honour that config (so the test above could fail).
    enc = tiny_tokenizer(
        render_prompts(tiny_tokenizer, PROMPTS), return_tensors="pt", padding=True, add_special_tokens=False
    )
    torch.manual_seed(0)
    out = meddling_model.generate(**enc, max_new_tokens=30, pad_token_id=tiny_tokenizer.pad_token_id)
    assert (out[:, enc["input_ids"].shape[1] :][:, :20] != tiny_tokenizer.eos_token_id).all()


def test_the_old_name_sampling_config_still_works_and_warns():
    import rlhfkit.sampling

    with pytest.warns(DeprecationWarning, match=r"SamplingConfig was renamed rlhfkit\.sampling\.SamplingSettings"):
        from rlhfkit.sampling import SamplingConfig
    assert SamplingConfig is SamplingSettings
    with pytest.raises(AttributeError, match="no attribute 'SamplingConfigs'"):
        rlhfkit.sampling.SamplingConfigs
