"""sage_nb.dpo against TRL's DPOTrainer (trl is a test-only dependency), plus file round-trips.

TRL's own code computes the log-probs (its fused LM head) and the losses from the same token ids; ours must agree.
"""
import math, json
import pytest
import torch

trl = pytest.importorskip("trl")
from trl import DPOConfig, DPOTrainer
from trl.trainer.dpo_trainer import DataCollatorForPreference

from sage_nb.config import Config
from sage_nb.models import tiny_model, chat_prompt, reference_mode
from sage_nb.dpo import tokenize_pair, collate_pairs, pair_forward, dpo_loss, pair_loss, PairTooLong
from sage_nb.reference import cache_reference, fingerprint, save_reference_cache, load_reference_cache


def _pairs(tok):
    mk = lambda pid, q, c, r: dict(pair_id=pid, problem_id=pid, prompt=chat_prompt(tok, q), chosen=c, rejected=r)
    return [mk("a", "What is 2+3?", "2+3 = 5\n#### 5", "2+3 = 6\n#### 6"),
            mk("b", "What is 7*6?", "7*6 = 42\n#### 42", "7*6 = 36, plus 6 is 48\n#### 48"),
            mk("c", "Compute 10-4.", "10-4 = 6\n#### 6", "10 minus 4 is 14, I think\n#### 14")]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    import datasets
    policy, tok = tiny_model(seed=0)
    with torch.no_grad():  # a non-zero adapter, so policy != reference
        for n, p in policy.named_parameters():
            if "lora_B" in n: torch.nn.init.normal_(p, std=0.05)
    pairs = _pairs(tok)
    # TRL patches the model it is given (fused LM head); give it its own copy with identical weights.
    trl_model, _ = tiny_model(seed=0)
    trl_model.load_state_dict(policy.state_dict())
    ds = datasets.Dataset.from_list([{k: p[k] for k in ("prompt", "chosen", "rejected")} for p in pairs])
    out = tmp_path_factory.mktemp("trl")
    args = DPOConfig(output_dir=str(out), per_device_train_batch_size=3, max_length=None, report_to=[],
                     use_cpu=True, beta=0.1, logging_steps=1, save_strategy="no", bf16=False, fp16=False)
    trainer = DPOTrainer(model=trl_model, args=args, train_dataset=ds, processing_class=tok)
    return policy, tok, pairs, trainer


def test_trl_tokenisation_matches(setup):
    policy, tok, pairs, trainer = setup
    for p, ex in zip(pairs, trainer.train_dataset):
        t = tokenize_pair(tok, p)
        assert t["prompt_ids"] == ex["prompt_ids"]
        assert t["chosen_ids"] == ex["chosen_ids"] and t["rejected_ids"] == ex["rejected_ids"]


def _trl_inputs(items, tok, ref_c=None, ref_r=None):
    coll = DataCollatorForPreference(pad_token_id=tok.pad_token_id)
    ex = [dict(prompt_ids=t["prompt_ids"], chosen_ids=t["chosen_ids"], rejected_ids=t["rejected_ids"]) for t in items]
    if ref_c is not None:
        for e, c, r in zip(ex, ref_c, ref_r): e["ref_chosen_logps"], e["ref_rejected_logps"] = float(c), float(r)
    return coll(ex)


def test_logps_match_trl(setup):
    "TRL's fused-LM-head log-probs (policy and reference) equal ours on the same tokens."
    policy, tok, pairs, trainer = setup
    items = [tokenize_pair(tok, p) for p in pairs]
    inputs = _trl_inputs(items, tok)
    # Given a model that already has an adapter, TRL's reference is a frozen copy of that adapter ("ref"), i.e.
    # the policy at the start; ours disables the adapter. Compare like with like: the policy's log-probs.
    ref_c, ref_r = trainer.compute_ref_log_probs(trainer.model, inputs)
    with torch.no_grad():
        ours = pair_forward(policy, collate_pairs(tok, pairs))
    torch.testing.assert_close(ours["logp_chosen"], ref_c.float(), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(ours["logp_rejected"], ref_r.float(), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("loss_type,ls,alpha", [("sigmoid", 0.0, 0.0), ("ipo", 0.0, 0.0), ("robust", 0.1, 0.0),
                                                 ("sigmoid", 0.0, 0.7)])
def test_loss_and_rewards_match_trl(setup, loss_type, ls, alpha):
    "Per pair (one pair per TRL call, so TRL's batch means are per-pair values): loss and rewards agree."
    policy, tok, pairs, trainer = setup
    trainer.beta, trainer.label_smoothing = 0.1, ls
    trainer.loss_types, trainer.loss_weights = ([loss_type, "sft"], [1.0, alpha]) if alpha else ([loss_type], [1.0])
    trainer.precompute_ref_logps = True
    ref_shift = torch.tensor([[0.7, -1.3], [-2.0, 0.4], [1.1, 2.2]])  # arbitrary reference values
    for i, p in enumerate(pairs):
        t = tokenize_pair(tok, p)
        with torch.no_grad():
            base = pair_forward(policy, collate_pairs(tok, [p]))
        rc, rr = base["logp_chosen"] + ref_shift[i, 0], base["logp_rejected"] + ref_shift[i, 1]
        inputs = _trl_inputs([t], tok, rc, rr)
        trainer._metrics["train"].clear()
        trainer.model.train()
        with torch.no_grad():
            trl_loss = trainer._compute_loss(trainer.model, inputs, return_outputs=False)
        m = trainer._metrics["train"]
        with torch.no_grad():
            out = pair_forward(policy, collate_pairs(tok, [p]))
        res = dpo_loss(out["logp_chosen"], out["logp_rejected"], rc, rr, beta=0.1, loss_type=loss_type,
                       label_smoothing=ls, alpha=alpha, nll_chosen=out["nll_chosen"],
                       n_tokens_chosen=out["n_tokens_chosen"], n_tokens_rejected=out["n_tokens_rejected"])
        assert math.isclose(float(res.losses[0]), float(trl_loss), rel_tol=1e-4, abs_tol=1e-5), (loss_type, float(res.losses[0]), float(trl_loss))
        assert math.isclose(float(res.chosen_rewards[0]), m["rewards/chosen"][-1], abs_tol=1e-5)
        assert math.isclose(float(res.rejected_rewards[0]), m["rewards/rejected"][-1], abs_tol=1e-5)
        assert math.isclose(float(res.margins[0]), m["rewards/margins"][-1], abs_tol=1e-5)


def test_batch_loss_matches_trl(setup):
    "A 3-pair batch: TRL's mean sigmoid loss = mean of our per-pair losses; our gradient = TRL's gradient."
    policy, tok, pairs, trainer = setup
    trainer.beta, trainer.label_smoothing, trainer.loss_types, trainer.loss_weights = 0.1, 0.0, ["sigmoid"], [1.0]
    trainer.precompute_ref_logps = True
    items = [tokenize_pair(tok, p) for p in pairs]
    with torch.no_grad():
        base = pair_forward(policy, collate_pairs(tok, pairs))
    rc, rr = base["logp_chosen"] - 1.0, base["logp_rejected"] + 0.5
    inputs = _trl_inputs(items, tok, rc, rr)
    trainer.model.zero_grad(); policy.zero_grad()
    trl_loss = trainer._compute_loss(trainer.model, inputs, return_outputs=False)
    trl_loss.backward()
    res = dpo_loss(*[pair_forward(policy, collate_pairs(tok, pairs))[k] for k in ("logp_chosen", "logp_rejected")], rc, rr)
    res.loss.backward()
    assert math.isclose(float(res.loss), float(trl_loss), rel_tol=1e-5)
    g_trl = {n: p.grad for n, p in trainer.model.named_parameters() if p.requires_grad and ".default." in n}
    g_our = {n: p.grad for n, p in policy.named_parameters() if p.requires_grad}
    assert g_our and set(g_our) == set(g_trl)
    for n in g_our: torch.testing.assert_close(g_our[n], g_trl[n], atol=1e-5, rtol=1e-3)


def test_untrained_loss_is_ln2():
    policy, tok = tiny_model()  # fresh LoRA: B = 0, policy == reference
    cfg = Config(max_length=128, max_prompt_length=64, alpha_nll=0.0)
    cached = cache_reference(policy, tok, _pairs(tok), cfg, progress=False)
    b = collate_pairs(tok, cached, cfg.max_length, cfg.max_prompt_length)
    out = pair_forward(policy, b)
    res = pair_loss(out, b["ref_logp_chosen"], b["ref_logp_rejected"], cfg)
    torch.testing.assert_close(res.losses, torch.full((3,), math.log(2)), atol=1e-5, rtol=0)


def test_cache_roundtrip_and_refusal(tmp_path):
    policy, tok = tiny_model(seed=0)
    pairs = _pairs(tok)
    cfg = Config(max_length=128, max_prompt_length=64)
    ds = cache_reference(policy, tok, pairs, cfg, batch_size=2, progress=False)
    path = save_reference_cache(ds, tmp_path / "cache" / "ref.parquet")
    side = json.loads((tmp_path / "cache" / "ref.parquet.fingerprint.json").read_text())
    assert side["fingerprint"] == fingerprint(policy, tok, cfg) and side["n_pairs"] == 3
    back = load_reference_cache(path, fingerprint(policy, tok, cfg))
    assert back["ref_logp_chosen"] == ds["ref_logp_chosen"] and back["pair_id"] == ["a", "b", "c"]
    other, _ = tiny_model(seed=3)
    with pytest.raises(ValueError, match="model"):
        load_reference_cache(path, fingerprint(other, tok, cfg))
    tok2 = type(tok).from_pretrained(tok.name_or_path) if tok.name_or_path else None
    if tok2 is not None:
        tok2.chat_template = "{{ messages }}"
        with pytest.raises(ValueError, match="tokenizer"):
            load_reference_cache(path, fingerprint(policy, tok2, cfg))
    with pytest.raises(ValueError, match="max_length"):
        load_reference_cache(path, fingerprint(policy, tok, cfg.replace(max_length=256)))
    with pytest.raises(FileNotFoundError):
        load_reference_cache(tmp_path / "nope.parquet", fingerprint(policy, tok, cfg))


def test_cache_skip_too_long():
    policy, tok = tiny_model()
    pairs = _pairs(tok)
    shared = "We restate the question before solving it. " * 10
    pairs.append(dict(pair_id="long", prompt=pairs[0]["prompt"], chosen=shared + "5", rejected=shared + "6"))
    cfg = Config(max_length=60, max_prompt_length=40)
    with pytest.raises(PairTooLong, match="long"):
        cache_reference(policy, tok, pairs, cfg, progress=False)
    ds = cache_reference(policy, tok, pairs, cfg, on_too_long="skip", progress=False)
    assert ds["pair_id"] == ["a", "b", "c"]


def test_truncation_property():
    "Whatever the limits, a tokenised pair either fits with the first differing token kept, or raises PairTooLong."
    hyp = pytest.importorskip("hypothesis")
    from hypothesis import given, settings, strategies as st
    _, tok = tiny_model(lora=False)
    prompt = chat_prompt(tok, "Solve: " + "x " * 30)

    @settings(max_examples=40, deadline=None)
    @given(st.integers(0, 40), st.text("abc 12+=", min_size=0, max_size=30), st.text("xyz 34", min_size=1, max_size=20),
           st.integers(5, 120), st.integers(1, 80))
    def check(n_shared, tail_c, tail_r, max_len, max_prompt):
        shared = "step " * n_shared
        row = dict(pair_id="h", prompt=prompt, chosen=shared + "A" + tail_c, rejected=shared + "B" + tail_r)
        try: t = tokenize_pair(tok, row, max_len, max_prompt)
        except PairTooLong: return
        d = t["diff_at"]
        assert len(t["prompt_ids"]) <= max_prompt
        assert len(t["prompt_ids"]) + max(len(t["chosen_ids"]), len(t["rejected_ids"])) <= max_len
        assert len(t["chosen_ids"]) > d and len(t["rejected_ids"]) > d
        assert t["chosen_ids"][d] != t["rejected_ids"][d]
    check()


def test_energy_skips_common_response_prefix():
    "pair_forward's energy (and the cached ref_energy, which comes from it) sums only the tokens after the common prefix."
    from sage_nb.dpo import reference_token_logps
    policy, tok = tiny_model(seed=0)
    pairs = _pairs(tok)  # "a" and "b" share a response start ("2+3 = ", "7*6 = "), "c" shares only "10"
    mk = lambda pid, c, r: dict(pair_id=pid, problem_id=pid, prompt=chat_prompt(tok, "What is 2+3?"), chosen=c, rejected=r)
    pairs.append(mk("d", "5\n#### 5", "Six\n#### 6"))   # responses differ from their first token
    cfg = Config(max_length=128, max_prompt_length=64)
    b = collate_pairs(tok, pairs, cfg.max_length, cfg.max_prompt_length)
    shared = [tokenize_pair(tok, p, cfg.max_length, cfg.max_prompt_length)["diff_at"] for p in pairs]
    assert shared[0] > 0 and shared[1] > 0 and shared[3] == 0
    with torch.no_grad():
        out = pair_forward(policy, b)
        _, suffix = reference_token_logps(policy, b)
        _, every = reference_token_logps(policy, b, skip_common_prefix=False)
    torch.testing.assert_close(out["energy"], suffix[:4] + suffix[4:], atol=1e-3, rtol=1e-4)
    assert all(out["energy"][i] < every[i] + every[i + 4] - 1 for i in (0, 1))
    torch.testing.assert_close(out["energy"][3], every[3] + every[7], atol=1e-3, rtol=1e-4)
    cached = cache_reference(policy, tok, pairs, cfg, batch_size=2, progress=False)
    with reference_mode(policy), torch.no_grad(): ref = pair_forward(policy, b)
    torch.testing.assert_close(torch.tensor(cached["ref_energy"]), ref["energy"], atol=1e-3, rtol=1e-4)
