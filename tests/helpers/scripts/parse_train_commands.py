"""Parses each `train_sft.py` argument list given as JSON on stdin with `patentlmm.training.parse_arguments`
(nothing is loaded or trained); prints one JSON line: per list, the stage, output_dir and recipe learning rate, or
the error."""

import json
import sys

from patentlmm import training

results = []
for argv in json.load(sys.stdin):
    try:
        script_args, training_args, model_args, patentlmm_args = training.parse_arguments(argv)
        results.append({"stage": patentlmm_args.stage, "output_dir": training_args.output_dir,
                        "dataset_name": script_args.dataset_name, "learning_rate": training_args.learning_rate})
    except (Exception, SystemExit) as error:  # noqa: BLE001 (reported to the test, which names the command)
        results.append({"error": f"{type(error).__name__}: {error}"})
print(json.dumps(results))
