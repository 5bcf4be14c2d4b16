"""What an object store as the storage root costs: every stage on a local folder against every stage on S3,
each S3 stage as a fresh pod would run it (an empty scratch folder, so it fetches all it reads) (issue 11).

    OMP_NUM_THREADS=2 .venv/bin/python bench/object_store.py [--rows 400000] [--part-rows 200000] [--budget 0.25]
                                                          [--repeat 2]

S3 is moto's server (`moto_server`, a process of its own on loopback), so the figures are the mirror's own cost
(listing, manifests, copies through pyarrow's S3 file system) without a network's latency. The demo's diamonds;
generation of --rows rows in parts of --part-rows, planned, drawn and joined in separate "pods" as the Dagster
steps are. The section in bench/RESULTS.md is replaced on a rerun.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run as a script: make `bench` importable as a package

from bench.results import run_lines, update_results_file  # noqa: E402
from bench.tables import diamonds_project  # noqa: E402

STAGES = ["split", "stats", "encoded", "model", "plan", "parts", "join", "publish", "quality"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_stages(work: Path, home: str, fresh_pods: bool, part_rows: int, rows: int) -> dict[str, float]:
    """Each stage once, timed; with `fresh_pods`, each (and each part) on an empty scratch folder."""
    from synth_assets.config import PartsSpec
    from synth_assets.project import load_project
    from synth_assets.pipeline import DatasetPipeline
    from synth_assets.releases import new_version

    os.environ["SYNTH_HOME"] = home
    pods = iter(range(1000))

    def pod() -> DatasetPipeline:
        if fresh_pods:
            os.environ["SYNTH_SCRATCH"] = str(work / "pods" / f"pod{next(pods)}")
        pipeline = DatasetPipeline(load_project(work), "diamonds")
        pipeline.spec = pipeline.spec.model_copy(update={"parts": PartsSpec(rows=part_rows)})
        return pipeline

    seconds: dict[str, float] = {}

    def timed(stage: str, call) -> object:
        started = time.perf_counter()
        result = call()
        seconds[stage] = seconds.get(stage, 0.0) + time.perf_counter() - started
        return result

    timed("split", lambda: pod().split())
    timed("stats", lambda: pod().stats())
    timed("encoded", lambda: pod().encode())
    timed("model", lambda: pod().train(device="cpu"))
    job = f"bench{time.time_ns()}"
    planner = pod()
    options = planner.spec.generate.model_copy(update={"sample_size": rows, "seed": 1})
    plan = timed("plan", lambda: planner.plan_generation(options, job=job, version=new_version()))
    for part in plan.parts:
        timed("parts", lambda: pod().generate_part(job, part.index, device="cpu"))
    generated = timed("join", lambda: pod().join_parts(job, publish=False))
    timed("publish", lambda: pod().release("synthetic", generated.version, generated))  # the audit, then publish
    timed("quality", lambda: pod().quality())
    return seconds


def quicker(best: dict[str, float], seconds: dict[str, float]) -> None:
    for stage, value in seconds.items():
        best[stage] = min(best.get(stage, value), value)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=400_000)
    ap.add_argument("--part-rows", type=int, default=200_000)
    ap.add_argument("--budget", type=float, default=0.25, help="training minutes")
    ap.add_argument("--repeat", type=int, default=2, help="rounds of both; each stage's quicker time is kept")
    ap.add_argument("--work", type=Path, default=Path("/tmp/synth-bench/object-store"))
    ap.add_argument("--results", type=Path, default=REPO / "bench" / "RESULTS.md")
    args = ap.parse_args()
    work = args.work.resolve()
    diamonds_project(work, f"max_training_time: {args.budget:g}, seed: 0")
    port = free_port()
    server = subprocess.Popen([str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1")
        import pyarrow.fs as pafs

        endpoint = f"http://127.0.0.1:{port}"
        fs = pafs.S3FileSystem(endpoint_override=endpoint, allow_bucket_creation=True)
        for _ in range(50):  # the server takes a moment to listen
            try:
                fs.create_dir("bench")
                break
            except OSError:
                time.sleep(0.2)
        local, remote = {}, {}
        for round in range(args.repeat):  # alternating, the quicker of each stage's runs: imports warm, noise less
            print(f"==> round {round + 1}: local folder", flush=True)
            quicker(local, run_stages(work, str(work / f"local-home{round}"), False, args.part_rows, args.rows))
            print(f"==> round {round + 1}: S3, each stage in a fresh pod", flush=True)
            quicker(remote, run_stages(work, f"s3://bench/home{round}?endpoint_override={endpoint}", True,
                                       args.part_rows, args.rows))
        stored = sum(i.size for i in fs.get_file_info(pafs.FileSelector("bench/home0", recursive=True))
                     if i.type == pafs.FileType.File)
    finally:
        server.terminate()
        server.wait()
    lines = ["| stage | local folder s | S3, fresh pod s | difference s |", "|---|---|---|---|"]
    for stage in STAGES:
        lines.append(f"| {stage} | {local[stage]:.2f} | {remote[stage]:.2f} | {remote[stage] - local[stage]:+.2f} |")
    total_local, total_remote = sum(local.values()), sum(remote.values())
    lines.append(f"| **all** | {total_local:.1f} | {total_remote:.1f} | {total_remote - total_local:+.1f} |")
    table = "\n".join(lines)
    print("\n" + table + f"\n\nbytes in the bucket: {stored:,}\n")
    parts = -(-args.rows // args.part_rows)
    body = "\n".join([
        *run_lines('bench/object_store.py'),
        f"- what: diamonds, every stage once: training {args.budget:g} min, {args.rows:,} rows generated in {parts} "
        f"parts (plan, each part, join: separate pods on S3), then publish and quality. On S3 each stage starts on an "
        f"empty scratch folder and fetches what it reads; the store is moto's server on loopback, so this is the "
        f"mirror's own cost without network latency. The training stage runs for its budget either way. "
        f"{args.repeat} rounds, alternating; each stage's quicker time. One round's bucket: {stored / 1e6:,.1f} MB.",
        "", table,
    ])
    update_results_file(args.results, "## object store · diamonds · local folder against S3", body)
    print(f"==> results: {args.results}")


if __name__ == "__main__":
    main()
