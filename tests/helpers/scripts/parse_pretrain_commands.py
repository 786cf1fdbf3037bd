"""Parses each `patentlmm pretrain` argument list given as JSON on stdin with `patentlmm.pretraining.parse_arguments`
(nothing is loaded or trained); prints one JSON line: per list, output_dir, dataset_name and the loss weights, or
the error."""

import json
import sys

from patentlmm.pretraining import parse_arguments

results = []
for argv in json.load(sys.stdin):
    try:
        pretrain_args, training_args = parse_arguments(argv)
        results.append(
            {
                "output_dir": training_args.output_dir,
                "dataset_name": pretrain_args.dataset_name,
                "loss_weights": pretrain_args.loss_weights,
            }
        )
    except (Exception, SystemExit) as error:  # noqa: BLE001 (reported to the test, which names the command)
        results.append({"error": f"{type(error).__name__}: {error}"})
print(json.dumps(results))
