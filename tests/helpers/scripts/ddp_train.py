"""`patentlmm.training.main` (what train_sft.py runs) under torchrun, recording the image ids of every batch each
rank collates in `$BATCH_LOG_DIR/rank<RANK>.jsonl` (one JSON list per batch) and, after the first step, whether the
trained model's parameters are sharded (`DTensor`, FSDP2) in `$BATCH_LOG_DIR/rank<RANK>-model.json`; with
`$SIGTERM_AT` = "RANK:STEP", that rank sends itself SIGTERM as step STEP begins (a preemption notice reaching one
process only); then training as usual."""

import json
import os
import signal
import sys
from pathlib import Path

from transformers import TrainerCallback

from patentlmm import training
from processing.collator import PatentLMMCollator

collate = PatentLMMCollator.__call__


def recording(self, rows):
    log = Path(os.environ["BATCH_LOG_DIR"]) / f"rank{os.environ['RANK']}.jsonl"
    with log.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps([row["image_id"] for row in rows]) + "\n")
    return collate(self, rows)


class RecordSharding(TrainerCallback):
    def on_step_end(self, args, state, control, model=None, **kwargs):
        if state.global_step == 1:
            from torch.distributed.tensor import DTensor

            sharded = any(isinstance(parameter, DTensor) for parameter in model.parameters())
            path = Path(os.environ["BATCH_LOG_DIR"]) / f"rank{os.environ['RANK']}-model.json"
            path.write_text(json.dumps({"sharded": sharded, "world_size": args.world_size}))


class SigtermAt(TrainerCallback):
    def on_step_begin(self, args, state, control, **kwargs):
        rank, step = map(int, os.environ.get("SIGTERM_AT", "-1:-1").split(":"))
        if int(os.environ["RANK"]) == rank and state.global_step == step - 1:
            os.kill(os.getpid(), signal.SIGTERM)


init = training.PatentLMMSFTTrainer.__init__


def with_callback(self, *args, **kwargs):
    init(self, *args, **kwargs)
    self.add_callback(RecordSharding())
    self.add_callback(SigtermAt())


PatentLMMCollator.__call__ = recording
training.PatentLMMSFTTrainer.__init__ = with_callback
training.main(sys.argv[1:])
