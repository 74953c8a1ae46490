"KV-cache sampling loop against transformers' generate, and pair building on the embedded model."
import math
import pytest, torch
from sage_nb.data import format_prompt, make_problems, check_answer
from sage_nb.models import tiny_model, load_policy
from sage_nb.rollout import kv_generate, greedy_generate, build_pairs, save_pairs, load_pairs, sample_solutions

def _plain_greedy(m, tok, prompts, n):
    out = []
    for p in prompts:
        x = tok(p, return_tensors="pt", add_special_tokens=False).input_ids
        o = m.generate(input_ids=x, attention_mask=torch.ones_like(x), max_new_tokens=n, do_sample=False,
                       pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
        out.append([t for t in o[0, x.shape[1]:].tolist() if t != tok.eos_token_id])
    return out

@pytest.fixture(scope="module")
def tiny():
    m, tok = tiny_model(lora=True, seed=1)
    with torch.no_grad():
        for n, p in m.named_parameters():
            if "lora_B" in n: p.normal_(0, 0.5)
    return m, tok

@pytest.fixture(scope="module")
def policy():
    torch.manual_seed(0)
    return load_policy(lora=True)

def test_tiny_greedy_matches_generate_for_mixed_lengths(tiny):
    m, tok = tiny
    prompts = [format_prompt(tok, "x" * i + " what is 1+1?") for i in (0, 7, 30, 3, 60)]
    ref = _plain_greedy(m, tok, prompts, 10)
    for bs in (1, 2, 5):
        got = [r for i in range(0, 5, bs) for r in kv_generate(m, tok, prompts[i:i + bs], max_new_tokens=10, stop_after_answer=False)]
        assert got == ref, bs
        # one queue, bs rows in flight: prompts join a running batch whose cache is longer or shorter than theirs
        assert kv_generate(m, tok, prompts, max_new_tokens=10, stop_after_answer=False, batch_size=bs) == ref, bs

def test_tiny_rows_of_different_lengths_share_a_batch(tiny):
    m, tok = tiny
    prompts = [format_prompt(tok, "x" * i + " what is 1+1?") for i in (0, 40, 5, 60, 2, 9)]
    ref = _plain_greedy(m, tok, prompts, 10)
    stop, saved = ref[0][2], m.generation_config.eos_token_id     # row 0 ends early: the next prompt joins mid-way
    cut = lambda r: r[:r.index(stop)] if stop in r else r
    try:
        m.generation_config.eos_token_id = [tok.eos_token_id, stop]
        for n, bs in ((1, 3), (2, 5)):
            got = kv_generate(m, tok, prompts, n=n, max_new_tokens=10, stop_after_answer=False, batch_size=bs)
            assert got == [cut(r) for r in ref for _ in range(n)], (n, bs)
    finally: m.generation_config.eos_token_id = saved
    assert len(cut(ref[0])) == 2 and any(len(cut(r)) == 10 for r in ref)

def test_model_left_in_training_mode_stays_so(tiny):
    m, tok = tiny
    m.train(); kv_generate(m, tok, ["hi"], max_new_tokens=2); assert m.training
    m.eval(); kv_generate(m, tok, ["hi"], max_new_tokens=2); assert not m.training

def test_sampling_is_seeded_and_counts_tokens(tiny):
    m, tok = tiny
    ps = [format_prompt(tok, "a"), format_prompt(tok, "bb")]
    a, na = sample_solutions(m, tok, ps, k=3, max_new_tokens=6, seed=5, progress=False)
    b, nb = sample_solutions(m, tok, ps, k=3, max_new_tokens=6, seed=5, progress=False)
    assert a == b and na == nb == 2 * 3 * 6
    c, _ = sample_solutions(m, tok, ps, k=3, max_new_tokens=6, seed=5, batch_size=3, progress=False)
    assert c == sample_solutions(m, tok, ps, k=3, max_new_tokens=6, seed=5, batch_size=3, progress=False)[0]

def test_embedded_greedy_matches_generate_with_adapter(policy):
    m, tok = policy
    prompts = [format_prompt(tok, p["question"]) for p in make_problems(3, levels=(0, 1, 2), split="eval")]
    ref = _plain_greedy(m, tok, prompts, 24)
    got = kv_generate(m, tok, prompts, max_new_tokens=24, stop_after_answer=False)
    assert got == ref
    txt = greedy_generate(m, tok, prompts, max_new_tokens=24, batch_size=2)
    for t, r in zip(txt, ref):           # same text, except that the loop stops after a finished '#### n' line
        full = tok.decode(r, skip_special_tokens=True).strip()
        assert full.startswith(t) and (t == full or "####" in t), (t, full)

def test_embedded_pairs_follow_the_schema(policy, tmp_path):
    m, tok = policy
    probs = make_problems(6, levels=(0, 3))
    ds, info = build_pairs(m, tok, probs, k=3, max_new_tokens=48, max_pairs_per_problem=2, progress=False)
    assert len(info["records"]) == 6 and info["tokens"] > 0
    for rec in info["records"]:
        assert math.isclose(rec["pass_rate"], sum(rec["correct"]) / 3)
    for r in ds:
        assert check_answer(r["chosen"], r["gold"]) and not check_answer(r["rejected"], r["gold"])
        assert r["source"] == ("gold" if r["pass_rate"] == 0 else "on_policy")
        assert 0 < r["pass_rate"] < 1 or r["source"] == "gold"
    back = load_pairs(save_pairs(ds, tmp_path/"pairs.parquet"))
    assert back["pair_id"] == ds["pair_id"] and back.features == ds.features
