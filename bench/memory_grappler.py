"""Does a Grappler pass change what a recomputed block keeps? (issue 26)

Run: nice -n 10 .venv/bin/python bench/memory_grappler.py remat 1 \
         '{"arithmetic_optimization": false}'
     (then the same at 2 blocks; '{}' is TensorFlow's default; about 1 min per probe here)

One engine step (`jetx.training.step_probe.measure`, the stage-1 loss, float32 accumulators and
Adam) of the full preset's model with its encoder cut to the given number of blocks, at
micro-batch 16, float32, with the given `tf.config.optimizer.set_experimental_options` set in
this process first. Prints its peak. The difference between 1 and 2 blocks is what one more
block costs: its weights' state (about 15 MiB) plus the tensors it keeps until its backward pass.
"""

from __future__ import annotations

import dataclasses
import json
import sys

from jetx.config import GIB, PRESETS
from jetx.runtime import configure_tensorflow, import_tensorflow


def main(variant: str, layers: int, options: dict) -> None:
    configure_tensorflow()
    tf = import_tensorflow()
    tf.config.optimizer.set_experimental_options(options)
    from jetx.training.step_probe import measure

    full = PRESETS["full"]
    config = dataclasses.replace(full.model_for(variant), num_layers=layers)
    peak = measure(config, full.stages[0], 16, "float32")["peak_bytes"]
    print(json.dumps({"variant": variant, "blocks": layers, "options": options, "gib": peak / GIB}))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3]))
