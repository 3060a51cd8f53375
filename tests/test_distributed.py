"""torchrun-style DistributedDataParallel on CPU (gloo): two processes agree on the weights, one writes."""

import os
import socket
from pathlib import Path

import torch
import torch.multiprocessing as mp

from bert2 import checkpoint as ckpt


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, corpus: str, root: str, out: str) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(world), RANK=str(rank), LOCAL_RANK=str(rank)
    )
    torch.set_num_threads(1)
    from bert2.config import Config
    from bert2.tasks.pretraining import build_pretraining_trainer

    cfg = Config()
    cfg.paths.root, cfg.data.corpus, cfg.data.cache_dir = root, corpus, str(Path(root) / "cache")
    cfg.data.max_seq_length, cfg.model.vocab_size = 32, 300
    cfg.model.hidden_size, cfg.model.num_hidden_layers, cfg.model.num_attention_heads = 32, 1, 2
    cfg.model.intermediate_size = 64
    cfg.pretrain.batch_size, cfg.pretrain.max_steps, cfg.pretrain.save_every = 4, 6, 3
    cfg.pretrain.eval_every, cfg.pretrain.log_every, cfg.pretrain.warmup_steps = 3, 2, 2
    events = []
    trainer = build_pretraining_trainer(cfg, [events.append])
    done = trainer.fit()
    flat = torch.cat([p.detach().flatten() for p in trainer.raw_model.parameters()])
    torch.save(
        {"weights": flat, "reason": done.reason, "events": len(events), "steps_seen": trainer.step},
        Path(out) / f"rank{rank}.pt",
    )
    torch.distributed.destroy_process_group()


def test_two_cpu_processes_agree_and_rank0_writes(tmp_path, english_corpus):
    root = tmp_path / "saved_model"
    for attempt in range(3):  # the free port can be taken by another process before rank 0 binds it: retry
        try:
            mp.start_processes(
                _worker,
                args=(2, _free_port(), str(english_corpus), str(root), str(tmp_path)),
                nprocs=2,
                join=True,
                start_method="spawn",
            )
            break
        except mp.ProcessRaisedException as exc:
            if "address already in use" not in str(exc).lower() or attempt == 2:
                raise
    r0, r1 = torch.load(tmp_path / "rank0.pt"), torch.load(tmp_path / "rank1.pt")
    assert r0["reason"] == r1["reason"] == "completed" and r0["steps_seen"] == r1["steps_seen"] == 6
    assert torch.equal(r0["weights"], r1["weights"])  # DDP kept the replicas identical
    assert r0["events"] > 0 and r1["events"] == 0  # only rank 0 reports
    infos = ckpt.list_checkpoints(root)
    stages = sorted((i.stage, i.step) for i in infos if i.stage != "best")
    assert stages == [("checkpoint", 3), ("final", 6)]
    assert [i.step for i in infos if i.stage == "best"] in ([3], [6])  # the better of the two evaluations
    state = ckpt.read_state(ckpt.latest_in(root / "transformer/pretrain/final"))
    assert state["world_size"] == 2
    lines = (root / "transformer/pretrain/metrics.jsonl").read_text().splitlines()
    assert sum('"DoneEvent"' in line for line in lines) == 1  # one writer
