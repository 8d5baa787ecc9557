"""One local Triton replica: a real `tritonserver` (via nvidia-pytriton) serving the ONNX model.

Run by `bridge.local` under ``.venv-triton/bin/python`` (pytriton needs numpy<2), so this
file imports nothing from kisim: stdlib, numpy, onnxruntime and pytriton only.

Triton's dynamic batcher (``max_batch_size``, ``preferred_batch_size``,
``max_queue_delay_microseconds``, ``default_queue_policy.max_queue_size``) and
``instance_group.count`` come from the command line, i.e. from the pool's
`BatchingConfig` and ``instances``. Each instance owns one ONNX Runtime session; Triton
executes instances concurrently, exactly like ``instance_group { count: N kind: KIND_CPU }``.
HTTP and metrics bind 127.0.0.1 only; gRPC is off. SIGTERM (or SIGINT) stops gracefully:
Triton stops accepting, finishes in-flight requests (``exit_timeout_secs``), then exits.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


def _session(model: Path, threads: int) -> Any:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    # No busy-waiting between batches: on a shared machine spinning threads would burn
    # the other replicas' CPU and inflate the CPU utilisation Prometheus reports.
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return ort.InferenceSession(str(model), so, providers=["CPUExecutionProvider"])


def _infer_fn(sess: Any, input_name: str, output_name: str) -> Callable[..., dict[str, Any]]:
    from pytriton.decorators import batch

    @batch
    def infer(**inputs: np.ndarray) -> dict[str, np.ndarray]:
        x = np.ascontiguousarray(inputs[input_name], dtype=np.float32)
        return {output_name: sess.run([output_name], {input_name: x})[0]}

    return infer


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="one local Triton replica")
    ap.add_argument("--model", type=Path, required=True, help="ONNX file")
    ap.add_argument("--model-name", default="mobilenetv4_conv_small")
    ap.add_argument("--input-name", default="input")
    ap.add_argument("--output-name", default="output")
    ap.add_argument("--http-port", type=int, required=True)
    ap.add_argument("--metrics-port", type=int, required=True)
    ap.add_argument(
        "--workspace", type=Path, required=True, help="a private directory, removed at exit"
    )
    ap.add_argument("--batching", type=int, default=1, help="1 = dynamic batcher on")
    ap.add_argument("--max-batch-size", type=int, default=8)
    ap.add_argument("--preferred", default="", help="comma-separated preferred batch sizes")
    ap.add_argument("--max-queue-delay-us", type=int, default=0)
    ap.add_argument("--max-queue-size", type=int, default=0)
    ap.add_argument("--instances", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1, help="ONNX Runtime intra-op threads")
    ap.add_argument("--exit-timeout-s", type=int, default=10)
    args = ap.parse_args(argv)

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    from pytriton.model_config import DynamicBatcher, ModelConfig, QueuePolicy, Tensor
    from pytriton.model_config.common import ModelWarmup, WarmupInput
    from pytriton.triton import Triton, TritonConfig

    sessions = [_session(args.model, args.threads) for _ in range(args.instances)]

    preferred = [int(x) for x in args.preferred.split(",") if x]
    # batching off = every request executes alone: a batcher that can only form batches of 1
    mbs = args.max_batch_size if args.batching else 1
    batcher = DynamicBatcher(
        max_queue_delay_microseconds=args.max_queue_delay_us if args.batching else 0,
        preferred_batch_size=(preferred or None) if args.batching else None,
        default_queue_policy=QueuePolicy(max_queue_size=args.max_queue_size)
        if args.max_queue_size
        else None,
    )
    config = TritonConfig(
        http_address="127.0.0.1",
        http_port=args.http_port,
        metrics_address="127.0.0.1",
        metrics_port=args.metrics_port,
        allow_grpc=False,
        allow_gpu_metrics=False,
        allow_cpu_metrics=False,
        exit_timeout_secs=args.exit_timeout_s,
        strict_readiness=True,
        log_verbose=0,
    )
    # Triton's model_warmup: requests through the whole server path before "ready"
    warmup = [
        ModelWarmup(
            name=f"warmup-{b}",
            batch_size=b,
            inputs={
                args.input_name: WarmupInput(dtype=np.float32, shape=(3, 224, 224), zero_data=True)
            },
            count=2,
        )
        for b in sorted({1, mbs})
    ]
    triton = Triton(config=config, workspace=args.workspace / "pytriton")  # it creates that

    def _stop(signum: int, _frame: object) -> None:
        # once: a second signal (e.g. PDEATHSIG after a SIGTERM) must not abort the drain
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        raise KeyboardInterrupt  # Triton.serve() turns this into a graceful stop

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        triton.bind(
            model_name=args.model_name,
            infer_func=[_infer_fn(s, args.input_name, args.output_name) for s in sessions],
            inputs=[Tensor(name=args.input_name, dtype=np.float32, shape=(3, 224, 224))],
            outputs=[Tensor(name=args.output_name, dtype=np.float32, shape=(-1,))],
            config=ModelConfig(
                batching=True, max_batch_size=mbs, batcher=batcher, model_warmup=warmup
            ),
            strict=False,
        )
        print(f"serving {args.model_name} on 127.0.0.1:{args.http_port}", flush=True)
        triton.serve()  # returns after a graceful stop or when tritonserver died
    except KeyboardInterrupt:
        pass
    finally:
        triton.stop()
        shutil.rmtree(args.workspace, ignore_errors=True)
        # the Python backend's shared-memory regions are named after this process
        # (pytriton's `_shm_prefix`) and outlive tritonserver: remove them
        for f in Path("/dev/shm").glob(f"pytrtion{os.getpid()}-*"):
            f.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
