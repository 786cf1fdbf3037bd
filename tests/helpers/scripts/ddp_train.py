"""`patentlmm.training.main` (what train_sft.py runs) under torchrun, recording the image ids of every batch each
rank collates in `$BATCH_LOG_DIR/rank<RANK>.jsonl` (one JSON list per batch) and, after the first step, whether the
trained model's parameters are sharded (`DTensor`, FSDP2) in `$BATCH_LOG_DIR/rank<RANK>-model.json`; then training
as usual."""

import json
import os
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


init = training.PatentLMMSFTTrainer.__init__


def with_callback(self, *args, **kwargs):
    init(self, *args, **kwargs)
    self.add_callback(RecordSharding())


PatentLMMCollator.__call__ = recording
training.PatentLMMSFTTrainer.__init__ = with_callback
training.main(sys.argv[1:])
