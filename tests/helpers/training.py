"""Shared by the training tests: the fast command-line arguments and the PatentDesc-355k card of a tiny folder."""

PATENTDESC_README = """---
configs:
- config_name: brief
  data_files:
  - split: train
    path: brief/train-*.parquet
  - split: validation
    path: brief/validation-*.parquet
---
"""
# Small and fast: batch 2, no workers, fp32 on the CPU, no reporting; the recipes give everything else.
FAST = [
    "--per_device_train_batch_size", "2", "--gradient_accumulation_steps", "1", "--dataloader_num_workers", "0",
    "--bf16", "false", "--use_cpu", "true", "--report_to", "none", "--dtype", "float32", "--logging_steps", "1",
    "--save_strategy", "no", "--attn_implementation", "eager",
]  # fmt: skip
