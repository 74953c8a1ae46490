"SageDPOTrainer on two processes (gloo on the CPU, `accelerate launch`): the same picks on both, disjoint shards whose union is the pick."
import json, os, subprocess, sys
from pathlib import Path
import pytest

pytest.importorskip("trl")
ROOT = Path(__file__).resolve().parents[1]

SCRIPT = r'''
import json, os, sys, torch, datasets
torch.set_num_threads(1)
from trl import DPOConfig
from sage_nb.config import Config
from sage_nb.models import tiny_model, chat_prompt
from sage_nb.trl_select import SageDPOTrainer

out, data = sys.argv[1], sys.argv[2]
class Recording(SageDPOTrainer):
    def training_step(self, model, inputs, num_items_in_batch=None):
        self.seen.append((self.state.global_step + 1, inputs["input_ids"].cpu()))
        return super().training_step(model, inputs, num_items_in_batch)

model, tok = tiny_model(seed=0)
ref = tiny_model(lora=False, seed=1)[0]
args = DPOConfig(output_dir=out, max_steps=4, per_device_train_batch_size=2, gradient_accumulation_steps=2, learning_rate=2e-2,
                 precompute_ref_log_probs=True, logging_steps=1, save_steps=1000, report_to=[], use_cpu=True, max_length=96,
                 disable_tqdm=True, seed=0, gradient_checkpointing=False)
cfg = Config(batch_size=8, refresh_every=2, selector="sage", score_batch_size=4, seed=3, n_strata=2)
tr = Recording(model=model, ref_model=ref, args=args, train_dataset=datasets.load_from_disk(data), processing_class=tok, sage_config=cfg)
tr.seen = []
tr.train()
rank = tr.accelerator.process_index
ok = []
for h in tr.sage_history:                          # what TRL trained is this process's micro-batches of the pick, collated by TRL
    got = [x for s, x in tr.seen if s == h["step"]]
    want = [tr.data_collator(tr._sage_examples(mb))["input_ids"] for mb in h["micro"]]
    ok.append(len(got) == len(want) and all(torch.equal(a, b) for a, b in zip(got, want)))
Path = __import__("pathlib").Path
Path(out, f"picks-{rank}.json").write_text(json.dumps(dict(world=tr.accelerator.num_processes, trained_ok=ok,
    history=[dict(step=h["step"], ids=h["ids"], micro=h["micro"]) for h in tr.sage_history],
    margins=[r.get("rewards/margins") for r in tr.state.log_history if "rewards/margins" in r])))
'''


def _pairs(path):
    "16 pairs saved to disk: with several processes, TRL's reference columns are cached next to the dataset's files."
    import datasets
    from sage_nb.models import load_tokenizer, chat_prompt
    tok = load_tokenizer()
    rows = [dict(pair_id=f"q{i}", prompt=chat_prompt(tok, f"What is {i+2}+{2*i+3}?"), chosen=f"{3*i+5}. #### {3*i+5}",
                 rejected=f"{3*i+6+i%3}. #### {3*i+6+i%3}", difficulty=i % 2) for i in range(16)]
    datasets.Dataset.from_list(rows).save_to_disk(str(path))
    return path


def test_two_processes_same_picks_disjoint_shards(tmp_path):
    script = tmp_path/"train_trl_dist.py"; script.write_text(SCRIPT)
    out, data = tmp_path/"run", _pairs(tmp_path/"pairs")
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "0", str(script), str(out), str(data)]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1", CUDA_VISIBLE_DEVICES="")
    p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, (p.stdout + p.stderr)[-4000:]
    a, b = (json.loads((out/f"picks-{r}.json").read_text()) for r in (0, 1))
    assert a["world"] == b["world"] == 2
    assert all(a["trained_ok"]) and all(b["trained_ok"]) and len(a["trained_ok"]) == 4
    assert [h["ids"] for h in a["history"]] == [h["ids"] for h in b["history"]]          # the same picks on both
    for ha, hb in zip(a["history"], b["history"]):
        sa, sb = sum(ha["micro"], []), sum(hb["micro"], [])
        assert len(ha["micro"]) == len(hb["micro"]) == 2                              # 2 micro-batches per step each
        assert not set(sa) & set(sb) and sa + sb == ha["ids"] and len(ha["ids"]) == 8   # disjoint, union = the pick
    assert a["margins"] == b["margins"] and len(a["margins"]) == 4                     # TRL's gathered logs agree
    metrics = [json.loads(l) for l in (out/"metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [1, 2, 3, 4]                                  # written once, by the main process
    for m, trl_m in zip(metrics, a["margins"]): assert m["rewards/margins"] == pytest.approx(trl_m, abs=1e-6)
