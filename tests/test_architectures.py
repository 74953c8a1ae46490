"""Any causal LM: tiny random models of six architectures, built from their configs (no download), each with a chat
template, go through a 3-step SAGE run of the package's Trainer, and the package's sampling loop decodes greedily
exactly as `generate` does at 1 to 4 rows in flight (Gemma 3 with a sliding window shorter than the prompts)."""
import math
import pytest, torch
import transformers as T
from sage_nb.config import Config
from sage_nb.models import add_lora, chat_prompt, styled_tokenizer, load_tokenizer
from sage_nb.reference import cache_reference
from sage_nb.rollout import kv_generate, _stop_ids
from sage_nb.runlog import read_jsonl
from sage_nb.trainer import Trainer
import sys
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[1]/"tools"))
from gpu_check import pairs_for    # the arithmetic pairs `make gpu-check` trains on

WINDOW = 8      # Gemma 3's sliding window: shorter than every prompt below

def _config(kind, tok):
    common = dict(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, max_position_embeddings=512, bos_token_id=tok.bos_token_id,
                  eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, tie_word_embeddings=True)
    return dict(
        qwen2=lambda: (T.Qwen2Config(**common), T.Qwen2ForCausalLM),
        qwen3=lambda: (T.Qwen3Config(head_dim=8, **common), T.Qwen3ForCausalLM),
        llama=lambda: (T.LlamaConfig(**common), T.LlamaForCausalLM),
        mistral=lambda: (T.MistralConfig(head_dim=8, **common), T.MistralForCausalLM),
        gemma3=lambda: (T.Gemma3TextConfig(head_dim=8, sliding_window=WINDOW, layer_types=["sliding_attention", "full_attention"],
                                           **common), T.Gemma3ForCausalLM),
        phi3=lambda: (T.Phi3Config(**common), T.Phi3ForCausalLM))[kind]()

STYLE = dict(llama="llama3", gemma3="gemma")      # the others use the embedded tokenizer's ChatML template

_toks = {}
def _tokenizer(kind):
    style = STYLE.get(kind, "chatml")
    if style not in _toks: _toks[style] = styled_tokenizer(style)
    return _toks[style]

def _model(kind, seed=0):
    tok = _tokenizer(kind)
    cfg, cls = _config(kind, tok)
    torch.manual_seed(seed)
    return cls(cfg).float().eval(), tok

KINDS = ["qwen2", "qwen3", "llama", "mistral", "gemma3", "phi3"]

@pytest.fixture(autouse=True, scope="module")
def one_thread():
    "Models this small run fastest on one thread (more only contend for the cores)."
    n = torch.get_num_threads(); torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)

@pytest.mark.parametrize("kind", KINDS)
def test_greedy_sampling_loop_is_generate(kind):
    m, tok = _model(kind)
    prompts = [chat_prompt(tok, "x" * i + " what is 1+1?") for i in (0, 7, 30, 3)]
    if kind == "gemma3": assert min(len(tok(p, add_special_tokens=False).input_ids) for p in prompts) > WINDOW
    stops = sorted(_stop_ids(tok, m))
    ref = []
    for p in prompts:
        x = tok(p, return_tensors="pt", add_special_tokens=False).input_ids
        o = m.generate(input_ids=x, attention_mask=torch.ones_like(x), max_new_tokens=10, do_sample=False,
                       pad_token_id=tok.pad_token_id, eos_token_id=stops)
        ref.append([t for t in o[0, x.shape[1]:].tolist() if t not in stops])
    for bs in (1, 2, 3, 4):
        assert kv_generate(m, tok, prompts, max_new_tokens=10, stop_after_answer=False, batch_size=bs) == ref, bs

@pytest.mark.parametrize("kind", KINDS)
def test_three_sage_steps(kind, tmp_path):
    m, tok = _model(kind)
    model = add_lora(m, r=4, alpha=8, seed=0)
    cfg = Config(steps=3, batch_size=2, lr=1e-2, warmup_steps=1, refresh_every=1, snr_every=2, snr_draws=1,
                 checkpoint_every=0, score_batch_size=4, max_length=96, max_prompt_length=64, selector="sage")
    pairs = cache_reference(model, tok, pairs_for(tok, 6), cfg, progress=False)
    summary = Trainer(model, tok, pairs, cfg, run_dir=tmp_path/"run", progress=False).train()
    assert summary["steps"] == 3 and summary["selector"] == "sage"
    rows = read_jsonl(tmp_path/"run"/"metrics.jsonl")
    assert len(rows) == 3 and all(math.isfinite(r["loss"]) and r["grad_norm"] > 0 for r in rows)
    assert read_jsonl(tmp_path/"run"/"snr.jsonl")
