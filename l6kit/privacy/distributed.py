"""ProxyFL and its baselines on a real distributed engine: one ``torch.distributed`` process per client.

Every process builds *its own* :class:`~l6kit.privacy.federated.Client` (the same object the single-process
simulator :func:`~l6kit.privacy.federated.simulate` uses) and runs the rounds. Only the exchange differs:

* peer methods (ProxyFL, AvgPush): in round r, rank i ``dist.isend``-s its flattened proxy to
  ``i + 2^(r mod (floor(log2(n-1))+1)) mod n`` and ``dist.irecv``-s one from ``i - 2^(...)`` — one send and
  one receive per round, no server;
* central methods (FedAvg, FML): ``dist.all_gather`` of the flattened shared models, averaged in rank order
  (the arithmetic of the simulator's server, so results match it bit for bit on CPU).

Run it with torchrun, on one machine::

    torchrun --standalone --nproc_per_node 8 -m l6kit.privacy.distributed --method proxyfl --profile ci --out r.json

or across machines (one client per GPU, NCCL)::

    torchrun --nnodes 2 --nproc_per_node 4 --rdzv_backend c10d --rdzv_endpoint HOST:29400 \\
        -m l6kit.privacy.distributed --method proxyfl --profile paper --backend nccl --out r.json

:func:`launch` spawns N gloo processes on 127.0.0.1 (a free port) from Python, for tests and notebooks.

References:
    Kalra et al., "Decentralized federated learning through proxy model sharing", Nat. Commun. 2023 (Alg. 1;
    the official code runs one MPI process per client).
    PyTorch, ``torch.distributed`` point-to-point communication (``isend``/``irecv``) and ``torchrun``.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import json
import os
import socket
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from l6kit.privacy import federated as fl

FACTORY = "l6kit.papers.proxyfl"


def exchange(client: fl.Client, method: str, round_: int) -> int:
    """Replace ``client``'s shared model after round ``round_`` by talking to the other processes.

    Returns:
        Bytes this process put on the wire for the method's traffic model (peer: one proxy; central: one
        upload + one download, as with a server).
    """
    rank, n = dist.get_rank(), dist.get_world_size()
    own = client.shared_vector().contiguous()
    if method in fl.PEER:
        dst, src = fl.exponential_peer(rank, n, round_)
        received = torch.empty_like(own)
        requests = [dist.isend(own, dst), dist.irecv(received, src)]
        for req in requests:
            req.wait()
        client.load_shared(fl.mix(method, own, received))
        return own.numel() * own.element_size()
    everyone = [torch.empty_like(own) for _ in range(n)]
    dist.all_gather(everyone, own)
    client.load_shared(fl.mix(method, own, everyone=everyone))
    return 2 * own.numel() * own.element_size()


def run_client(client: fl.Client, method: str, rounds: int) -> dict[str, Any]:
    """The rounds of one process (its process group must be initialised).

    Returns:
        ``{"rank", "accuracy" (per round), "epsilon" (per round), "bytes_sent" (per round),
        "private" (flat private parameters or None), "shared" (flat shared parameters or None)}``.
    """
    out: dict[str, Any] = {"rank": dist.get_rank(), "accuracy": [], "epsilon": [], "bytes_sent": []}
    for r in range(rounds):
        client.local_train()
        sent = exchange(client, method, r) if method in fl.HAS_SHARED else 0
        out["accuracy"].append(client.evaluate())
        out["epsilon"].append(client.epsilon())
        out["bytes_sent"].append(sent)
    vec = torch.nn.utils.parameters_to_vector
    out["private"] = vec(client.private.parameters()).detach().cpu() if client.private is not None else None
    out["shared"] = client.shared_vector().cpu() if client.shared is not None else None
    return out


def worker(rank: int, world_size: int, methods: str | Sequence[str], profile: str, overrides: dict[str, Any],
           init_method: str | None = None, backend: str = "gloo", out_dir: str | None = None,
           factory: str = FACTORY, threads: int | None = 1, summary: str | None = None) -> dict[str, Any]:
    """Entry point of one client process: join the group, then for each method build client ``rank``, run
    the rounds and save; finally leave the group.

    Args:
        rank, world_size: this process and the number of clients (= ``n_clients``).
        methods: one or several of :data:`~l6kit.privacy.federated.METHODS` (run one after the other).
        profile, overrides: the paper config (``factory.config(profile, **overrides)``).
        init_method: e.g. ``"tcp://127.0.0.1:PORT"``; None = environment variables (torchrun).
        backend: "gloo" (CPU) or "nccl" (one GPU per process, ``LOCAL_RANK``).
        out_dir: when given, each result is saved as ``out_dir/{method}-rank{rank}.pt``.
        factory: module with ``config(profile, **kw)`` and ``make_client(cfg, method, rank, device=)``.
        threads: torch intra-op threads (1 keeps CPU results identical to the simulator's).
        summary: when given, rank 0 writes every rank's accuracy, epsilon and bytes per round there (JSON).

    Returns:
        method -> :func:`run_client`'s dict.
    """
    methods = [methods] if isinstance(methods, str) else list(methods)
    if threads:
        torch.set_num_threads(threads)
    mod = importlib.import_module(factory)
    cfg = mod.config(profile, **{**overrides, "n_clients": world_size})
    device = f"cuda:{int(os.environ.get('LOCAL_RANK', rank))}" if backend == "nccl" else "cpu"
    if backend == "nccl":
        torch.cuda.set_device(device)
    dist.init_process_group(backend, init_method=init_method, rank=rank, world_size=world_size,
                            timeout=datetime.timedelta(seconds=120))
    results: dict[str, Any] = {}
    try:
        for method in methods:
            results[method] = run_client(mod.make_client(cfg, method, rank, device=device), method, cfg.rounds)
            if out_dir is not None:
                torch.save(results[method], Path(out_dir) / f"{method}-rank{rank}.pt")
        if summary is not None:
            keep = ("rank", "accuracy", "epsilon", "bytes_sent")
            gathered: list[Any] = [None] * world_size
            dist.all_gather_object(gathered, {m: {k: r[k] for k in keep} for m, r in results.items()})
            if rank == 0:
                Path(summary).write_text(json.dumps({"profile": profile, "clients": gathered}))
        dist.barrier()
    finally:
        dist.destroy_process_group()
    return results


def _spawned(rank: int, *args: Any) -> None:
    worker(rank, *args)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(methods: str | Sequence[str], nprocs: int, profile: str = "ci", overrides: dict[str, Any] | None = None,
           factory: str = FACTORY) -> dict[str, list[dict[str, Any]]]:
    """Spawn ``nprocs`` gloo client processes on 127.0.0.1 (a free port), run ``methods`` one after the
    other in the same process group, and return the results.

    Returns:
        method -> :func:`run_client`'s dict of every rank, in rank order.
    """
    methods = [methods] if isinstance(methods, str) else list(methods)
    previous = os.environ.get("GLOO_SOCKET_IFNAME")
    os.environ["GLOO_SOCKET_IFNAME"] = previous or "lo"           # loopback only; inherited by the children
    try:
        with tempfile.TemporaryDirectory() as tmp:
            init = f"tcp://127.0.0.1:{free_port()}"
            mp.start_processes(_spawned, args=(nprocs, methods, profile, dict(overrides or {}), init, "gloo", tmp,
                                               factory), nprocs=nprocs, join=True, start_method="spawn")
            return {m: [torch.load(Path(tmp) / f"{m}-rank{r}.pt", weights_only=False) for r in range(nprocs)]
                    for m in methods}
    finally:
        if previous is None:
            os.environ.pop("GLOO_SOCKET_IFNAME", None)


def main(argv: list[str] | None = None) -> None:
    """torchrun entry point: ``python -m l6kit.privacy.distributed --method proxyfl [--set rounds=5] ...``.

    Rank 0 writes a JSON summary (per method and client: accuracy, epsilon and bytes per round) to ``--out``.
    """
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--method", default="proxyfl", help=f"comma-separated, from {', '.join(fl.METHODS)}")
    ap.add_argument("--profile", default="ci")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--backend", default="gloo", choices=("gloo", "nccl"))
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    ap.add_argument("--factory", default=FACTORY)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    mod = importlib.import_module(args.factory)
    from l6kit.profiles import annotations, parse_value

    hints = annotations(mod.Config)
    overrides = {"seed": args.seed}
    for item in args.set:
        key, _, text = item.partition("=")
        overrides[key] = parse_value(key, text, hints[key])
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    worker(rank, world, args.method.split(","), args.profile, overrides, None, args.backend, None, args.factory,
           threads=1 if args.profile == "ci" else None, summary=args.out)

if __name__ == "__main__":
    main()
