"""Export MobileNetV4 conv_small to ONNX for the local Triton replicas (run by set-up).

Usage: ``python -m bridge.model_export --out .kisim-cache/models/mobilenetv4_conv_small.onnx``.
The legacy TorchScript exporter (``dynamo=False``) writes one self-contained file in
under a second; the batch axis is dynamic so Triton's dynamic batcher can stack requests.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

INPUT_NAME = "input"
OUTPUT_NAME = "output"
INPUT_SHAPE = (3, 224, 224)
NUM_CLASSES = 1000


def export(out: Path, seed: int = 0) -> Path:
    import torch

    from bridge.mobilenetv4 import MobileNetV4ConvSmall

    torch.manual_seed(seed)
    net = MobileNetV4ConvSmall(NUM_CLASSES).eval()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    with torch.no_grad():
        torch.onnx.export(
            net,
            (torch.zeros(1, *INPUT_SHAPE),),
            str(tmp),
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )
    os.replace(tmp, out)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    export(args.out, args.seed)


if __name__ == "__main__":
    main()
