"""Study 004 on a GPU server: batch sizes and the bursty workloads, GPU vs a CPU server of the
same vCPU count, through the local backend (servers as processes, shaped like the instances).

    python benchmarks/bench_gpu.py [--time-scale 0.05] [--rate-scale 1.0] [--requests 40]
                                   [--batches 1,4,16] [--json FILE]

Servers, one at a time (so none shares the CPU with another's measurement):
``gpu-onnx`` (MobileNetV2 under ONNX Runtime's CUDA provider on a g4dn.xlarge: 4 vCPU, the
study's T4 standing for this machine's GPU), ``gpu-torch`` (the same model under PyTorch on the
GPU) and ``cpu-onnx`` (ONNX Runtime on the CPU of a c5.xlarge: 4 vCPU, no GPU). For each: the
batch sweep (one call carries ``batch`` JPEGs, closed loop at concurrency 1, p50 per call with
its 95% interval, ms and dollars per image at the instance's hourly price), then, for the ONNX
servers, the study's three Markov-modulated workloads at their peaks of 40/120/200 req/s times
``--rate-scale``, each ``--time-scale`` times the study's length (open loop, latency from the
intended send time). Needs a GPU and ``onnxruntime-gpu``; says so and exits 2 without them.
"""

from __future__ import annotations

import argparse
import base64
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "suites")]

from pytest_servebench import ClosedLoop, Servebench, Settings  # noqa: E402
from pytest_servebench.backends.local import LocalBackend  # noqa: E402
from pytest_servebench.gpu import GpuUnavailable, probe, require  # noqa: E402
from pytest_servebench.pricebook import load_price_book  # noqa: E402
from pytest_servebench.result import Result  # noqa: E402

SERVERS = (("gpu-onnx", "mobilenet_v2", "g4dn.xlarge", True),
           ("gpu-torch", "mobilenet_v2_torch", "g4dn.xlarge", False),
           ("cpu-onnx", "mobilenet_v2", "c5.xlarge", True))


def shown(est: Any, scale: float = 1000.0) -> str:
    high = "inf" if math.isinf(est.high) else f"{est.high * scale:.1f}"
    return f"{est.value * scale:.2f} [{est.low * scale:.1f}, {high}]"


def row(result: Result) -> dict[str, Any]:
    lat = result.latency
    cost = result.cost
    return {"count": result.count, "success_ratio": result.success_ratio,
            "throughput": result.throughput,
            "p50_ms": [lat.p50.value * 1e3, lat.p50.low * 1e3, lat.p50.high * 1e3],
            "p90_ms": [lat.p90.value * 1e3, lat.p90.low * 1e3, lat.p90.high * 1e3],
            "p99_ms": [lat.p99.value * 1e3, lat.p99.low * 1e3, lat.p99.high * 1e3],
            "mean_ms": lat.mean.value * 1e3,
            "usd_per_million": cost.usd_per_million if cost else None,
            "errors": dict(result.errors)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--time-scale", type=float, default=0.05)
    ap.add_argument("--rate-scale", type=float, default=1.0)
    ap.add_argument("--requests", type=int, default=40)
    ap.add_argument("--batches", default="1,4,16")
    ap.add_argument("--servers", default=",".join(s[0] for s in SERVERS))
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    batches = [int(b) for b in args.batches.split(",")]
    try:
        gpus = require("this benchmark")
    except GpuUnavailable as exc:
        print(f"bench_gpu: {exc}")
        return 2
    import onnxruntime as ort
    from study_004 import WORKLOADS, workload

    from targets.payloads import jpeg

    print(f"GPU: {gpus.describe()}; onnxruntime {ort.__version__} providers "
          f"{ort.get_available_providers()}; probe {probe()}")
    image = jpeg()
    book = load_price_book()
    out: dict[str, Any] = {"gpu": gpus.describe(), "servers": {}}
    wanted = set(args.servers.split(","))
    with LocalBackend() as backend:
        for key, model, instance, bursts in SERVERS:
            if key not in wanted:
                continue
            t0 = time.perf_counter()
            server = backend.server(model, platform="ec2", instance_type=instance)
            prof = server.profile
            hourly = book.instance(instance).usd_per_hour
            print(f"\n== {key}: {model} on {instance} ({prof.get('provider')}, "
                  f"{prof.get('device')}; ready in {time.perf_counter() - t0:.1f} s; "
                  f"${hourly}/h; shaped: {prof.get('shaped')})", flush=True)
            sb = Servebench(target=server, settings=Settings(keep_records=False))
            entry: dict[str, Any] = {"profile": {k: str(v) for k, v in prof.items()},
                                     "batch": {}, "bursts": {}}
            for b in batches:
                event = {"images_b64": [base64.b64encode(image).decode()] * b}
                r = sb.run(ClosedLoop(concurrency=1, requests=args.requests,
                                      warmup_requests=3), payload=event)
                per_image_ms = r.p50.value * 1e3 / b
                # The instance's hour over the images it served in that hour at this rate.
                usd = hourly / 3600 / (r.throughput * b) * 1e6 if r.throughput else math.nan
                print(f"  batch {b:>2}: p50/call {shown(r.p50)} ms, {per_image_ms:.2f} ms/image, "
                      f"${usd:.3f} per million images, ok {r.success_ratio:.3f}", flush=True)
                entry["batch"][b] = {**row(r), "usd_per_million_images": usd}
            if bursts:
                for peak in sorted(WORKLOADS):
                    length = WORKLOADS[peak][1]
                    w = workload(peak=peak, time_scale=args.time_scale,
                                 rate_scale=args.rate_scale, seed=peak)
                    r = sb.run(w, payload=image)
                    print(f"  workload-{peak} ({peak * args.rate_scale:g} req/s peak, "
                          f"{length * args.time_scale:.1f} s): {r.count} sent, ok "
                          f"{r.success_ratio:.4f}, p50 {shown(r.p50)}, p90 {shown(r.latency.p90)}, "
                          f"p99 {shown(r.p99)} ms, mean {r.latency.mean.value * 1e3:.1f} ms, "
                          f"{r.throughput:.1f} req/s"
                          + (f", INVALID: {r.invalid_reason}" if not r.valid else ""),
                          flush=True)
                    entry["bursts"][peak] = row(r)
            backend.stop_server(server)
            out["servers"][key] = entry
    if args.json:
        args.json.write_text(json.dumps(out, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
