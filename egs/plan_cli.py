"""`egs plan`: place inference requests on a fleet and print the plan, or write its manifests.

Composition only: it reads the files (catalogue, nodes, allocations, registry, requests) with the
scheduler's loaders, builds the inventory, calls the scheduler's one entry point
(`scheduler.schedule.schedule`), and prints the plan as a table, JSON or YAML (one document on
stdout; the solver's own output is kept off it); with `--manifests DIR` it renders and validates the Kubernetes objects
(`scheduler.manifests`) and writes one file per request. `egs/cli.py` registers the subcommand.

Everything is loaded, placed and rendered before anything is written, so bad input (reported by
`egs/cli.py` as `egs: error: <file>: <field path>: <what>`, exit 2) leaves no files behind, and
the files replace DIR all at once (`egs.manifest_dir`). Exit codes are `egs/cli.py`'s, plus
CHECK_FAILED_EXIT with `--fail-unplaced` when a replica could not be placed.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import yaml

from common.errors import InputError, naming
from egs.arguments import POSITIVE
from egs.exit_codes import CHECK_FAILED_EXIT
from egs.manifest_dir import replace_directory
from scheduler.plan import SHARING_MECHANISMS, Placement, Plan, Request, Worker
from scheduler.schedule import DEFAULT_TIME_LIMIT_S, ENGINES, Scheduled, schedule

if TYPE_CHECKING:  # `egs plan --help` imports none of these (jsonschema, numpy, HiGHS): `run` does
    from scheduler.catalog import Catalog
    from scheduler.inventory import Inventory
    from scheduler.registry import Registry

T = TypeVar("T")
MIB_PER_GIB = 1024
PRINT_RESERVE_S = 0.05
"""What printing a plan of a few hundred replicas as JSON takes, kept out of the solver's time."""
MIN_TIME_LIMIT_S = 0.1
"""The least time the engines get when start-up took the whole --time-limit: the online plan then."""
STARTUP_AT_MOST_S = 10.0
"""A process older than this when `egs plan`'s parser is built did not just start to run the
command (a test or a program calling `egs.cli.main` in-process): its age is not the command's."""


def startup_seconds() -> float:
    """Wall time since this process started (from /proc: Linux), or 0 where that cannot be read or
    is more than `STARTUP_AT_MOST_S`."""
    try:
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        started = int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22, starttime, in clock ticks after boot
        age = float(Path("/proc/uptime").read_text().split()[0]) - started
    except (OSError, ValueError, IndexError):
        return 0.0
    return age if 0 <= age <= STARTUP_AT_MOST_S else 0.0


def add_parser(sub: Any) -> None:
    """Register `egs plan` on the `egs` command's subparsers."""
    plan = sub.add_parser(
        "plan",
        description="Place every replica of the requests on the fleet's GPUs (cheapest first, without "
        "fragmenting), then print which variant runs where, what could not be placed and why, and the "
        "cost per hour. Nothing is applied to a cluster.",
    )
    plan.add_argument(
        "--fleet", type=Path, required=True, help="the nodes: a NodeList as `kubectl get nodes -o yaml` prints it"
    )
    plan.add_argument("--models", type=Path, required=True, help="the model registry (examples/models.yaml)")
    plan.add_argument("--requests", type=Path, required=True, help="the requests to place (examples/requests.yaml)")
    plan.add_argument(
        "--allocations",
        type=Path,
        help="what replicas already running hold (a list, or `allocations:` a list; format: "
        "scheduler/data/allocations.schema.json); subtracted from the fleet first",
    )
    plan.add_argument(
        "--sharing",
        metavar="CLASS=MECH",
        type=_sharing,
        action="append",
        default=[],
        help=f"how replicas share GPUs of a class: one of {', '.join(SHARING_MECHANISMS)} (default: what the "
        "nodes' labels say, time-slicing or MIG, else exclusive); repeat for several classes, "
        "e.g. --sharing L4=timeslice --sharing H100-80GB=kai",
    )
    plan.add_argument(
        "--engine",
        choices=ENGINES,
        default="auto",
        help="auto (default): the exact re-plan under the time limit, or the online plan when that is better "
        "or the solver finds none in time; online: the re-plan's LP relaxation rounded, in well under a "
        "second; "
        "exact: the re-plan of the whole batch with a proven lower bound; greedy: one replica at a time, "
        "cheapest first. The controller and the API use online (their configuration's `engine`)",
    )
    plan.add_argument(
        "--time-limit",
        type=POSITIVE,
        default=DEFAULT_TIME_LIMIT_S,
        metavar="S",
        help="seconds the command may take to the plan with auto and exact, counted from its start "
        "(Python's start-up and reading the files included; writing --manifests comes on top); "
        "default %(default)s",
    )
    plan.add_argument(
        "--solver-log",
        action="store_true",
        help="show the HiGHS solver's progress on stderr (auto and exact engines)",
    )
    plan.add_argument(
        "--price",
        metavar="CLASS=USD",
        type=_price,
        action="append",
        default=[],
        help="USD per GPU-hour of a GPU class, overriding the catalogue and --prices (cloud prices differ by "
        "provider, region and contract); repeat for several classes, e.g. --price H100-80GB=2.49",
    )
    plan.add_argument(
        "--prices",
        type=Path,
        metavar="FILE",
        help="a YAML mapping of GPU class to USD per GPU-hour (H100-80GB: 2.49), overriding the catalogue",
    )
    plan.add_argument(
        "-o",
        "--output",
        choices=["table", "json", "yaml"],
        default="table",
        help="table (default), or json / yaml (one document on stdout) with placements (vram_mib_per_gpu exact), "
        "unplaced, cost_per_hour, engine, lower_bound and optimal",
    )
    plan.add_argument(
        "--manifests",
        type=Path,
        metavar="DIR",
        help="also write each request's Deployment (or LeaderWorkerSet) and Service, validated against the "
        "Kubernetes schemas, to DIR/<request>.yaml; DIR is replaced whole (files of an earlier plan go), and "
        "only if it is new, empty or written by egs plan",
    )
    plan.add_argument(
        "--fail-unplaced",
        action="store_true",
        help=f"exit {CHECK_FAILED_EXIT} when a replica could not be placed (the plan is still printed and written)",
    )
    # The command's clock: it started when the process did, before this parser was built.
    plan.set_defaults(run=run, started=time.perf_counter() - startup_seconds())


def run(args: argparse.Namespace) -> int:
    from scheduler.registry import Registry
    from scheduler.requests import load_requests

    catalog = _catalog(args)
    registry = _loaded(args.models, lambda: Registry.load(args.models, catalog))
    requests = _loaded(args.requests, lambda: load_requests(args.requests, registry, catalog))
    inventory = _inventory(args, catalog)
    # The limit counts from the command's start: what starting Python and reading the files took
    # is spent already, and printing the plan still has to come (`PRINT_RESERVE_S`).
    spent = time.perf_counter() - args.started
    time_limit = max(args.time_limit - spent - PRINT_RESERVE_S, MIN_TIME_LIMIT_S)
    scheduled = schedule(
        requests, registry, inventory, engine=args.engine, time_limit_s=time_limit, solver_log=args.solver_log
    )
    plan = scheduled.plan
    files = _manifest_files(plan, registry, catalog, requests) if args.manifests else {}
    if args.manifests:
        stale = replace_directory(args.manifests, files)
        gone = f", removed {stale} of the previous plan" if stale else ""
        print(f"wrote {len(files)} manifest file(s) to {args.manifests}/{gone}", file=sys.stderr)
    if args.output == "table":
        print(_table(scheduled, inventory))
    elif args.output == "json":
        print(json.dumps(_document(scheduled, inventory), indent=2))
    else:
        print(yaml.safe_dump(_document(scheduled, inventory), sort_keys=False), end="")
    return CHECK_FAILED_EXIT if args.fail_unplaced and plan.unplaced else 0


def _sharing(text: str) -> tuple[str, str]:
    name, sep, mechanism = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected CLASS=MECH, got {text!r}")
    if mechanism not in SHARING_MECHANISMS:
        raise argparse.ArgumentTypeError(f"{mechanism!r} is not one of {', '.join(SHARING_MECHANISMS)}")
    return name, mechanism


def _price(text: str) -> tuple[str, float]:
    name, sep, usd = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected CLASS=USD_PER_GPU_HOUR, got {text!r}")
    try:
        value = float(usd)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{usd!r} is not a number of USD per GPU-hour") from None
    if not 0 <= value < math.inf:
        raise argparse.ArgumentTypeError(f"a price must be a finite, non-negative number, got {usd}")
    return name, value


def _catalog(args: argparse.Namespace) -> Catalog:
    """The catalogue with the prices of `--prices FILE`, then of each `--price`, in force."""
    from scheduler.catalog import Catalog, load_prices

    catalog = Catalog.load()
    from_file: dict[str, float] = _loaded(args.prices, lambda: load_prices(args.prices)) if args.prices else {}
    flags = dict(args.price)
    if len(flags) < len(args.price):
        raise InputError("a GPU class is given more than once", source="--price")
    _loaded(args.prices or "--prices", lambda: catalog.priced(from_file))
    _loaded("--price", lambda: catalog.priced(flags))
    return catalog.priced(from_file | flags)


def _loaded(source: str | Path, load: Callable[[], T]) -> T:
    """`load()`, an input error it raises naming where the bad input came from (a file, or an option)."""
    with naming(source):
        return load()


def _inventory(args: argparse.Namespace, catalog: Catalog) -> Inventory:
    """The fleet with its allocations subtracted; each stage runs alone first so that an error names
    the input it comes from."""
    from common.schema import read_yaml
    from scheduler.inventory import (
        InventoryError,
        SharingPolicy,
        build_inventory,
        load_nodes,
        parse_allocations,
        unrenderable_sharing,
    )

    by_class = dict(args.sharing)
    if len(by_class) < len(args.sharing):
        raise InputError("a GPU class is given more than once", source="--sharing")
    amd = unrenderable_sharing(by_class, catalog)
    if amd is not None:
        raise InputError("AMD GPUs are placed only whole (exclusive)", source=f"--sharing {amd}={by_class[amd]}")
    policy = SharingPolicy(by_class)
    _loaded("--sharing", lambda: build_inventory([], catalog, sharing=policy))
    nodes = _loaded(args.fleet, lambda: load_nodes(args.fleet))
    inventory = _loaded(args.fleet, lambda: build_inventory(nodes, catalog, sharing=policy))
    if not args.allocations:
        return inventory
    raw = _loaded(args.allocations, lambda: read_yaml(args.allocations, InventoryError))
    records = raw.get("allocations") if isinstance(raw, dict) else raw
    allocations = _loaded(args.allocations, lambda: parse_allocations(records))
    return _loaded(args.allocations, lambda: build_inventory(nodes, catalog, allocations, policy))


def _manifest_files(plan: Plan, registry: Registry, catalog: Catalog, requests: tuple[Request, ...]) -> dict[str, str]:
    """File name -> the YAML documents of one request, every object already validated."""
    # Imported here: kubernetes-validate is needed only to write manifests, not by every `egs` command.
    from scheduler.manifests import manifests

    files: dict[str, list[dict[str, Any]]] = {}
    for obj in manifests(plan, registry, catalog, requests):
        label = obj["metadata"]["labels"]["egs.io/request"]
        files.setdefault(f"{label}.yaml", []).append(obj)
    return {name: yaml.safe_dump_all(objs, sort_keys=False) for name, objs in files.items()}


def _document(scheduled: Scheduled, inventory: Inventory) -> dict[str, Any]:
    """The plan as `-o json` / `-o yaml` print it."""
    plan = scheduled.plan
    return {
        "placements": [_placement(p) for p in plan.placements],
        "unplaced": [{"request": u.request, "replica": u.replica, "reason": u.reason} for u in plan.unplaced],
        "cost_per_hour": plan.cost_per_hour,
        "effective_cost_per_hour": plan.effective_cost_per_hour,
        "gpus_used": plan.gpus_used,
        "engine": scheduled.engine,
        "lower_bound": scheduled.lower_bound,
        "optimal": scheduled.optimal,
        "seconds": scheduled.seconds,
        "skipped_nodes": [{"node": s.node, "reason": s.reason} for s in inventory.skipped],
        "notes": _notes(plan, inventory),
    }


def _notes(plan: Plan, inventory: Inventory) -> list[str]:
    """What the plan assumed that the nodes' labels did not say."""
    from scheduler.inventory import PCIE_DOMAINS_LABEL

    assumed = sorted(
        {
            w.node
            for p in plan.placements
            if p.tp > 1 and p.interconnect == "pcie"
            for w in p.workers
            if inventory.node(w.node).pcie_domains is None
        }
    )
    if not assumed:
        return []
    return [
        f"PCIe tensor parallel on {', '.join(assumed)} assumes each node's GPUs share one PCIe root: no "
        f"{PCIE_DOMAINS_LABEL} label says how many roots they hang off"
    ]


def _placement(p: Placement) -> dict[str, Any]:
    placed: dict[str, Any] = {
        "request": p.request,
        "replica": p.replica,
        "model": p.model,
        "variant": p.variant,
        "gpu_class": p.gpu_class,
        "node": p.node,
        "gpus": list(p.gpus),
        "tp": p.tp,
        "vram_mib_per_gpu": p.vram_mib_per_gpu,
        "vram_gib": round(p.vram_mib_per_gpu / MIB_PER_GIB, 2),
        "sharing": p.sharing,
        "interconnect": p.interconnect,
        "throughput_factor": p.throughput,
        "workers": [{"node": w.node, "gpus": list(w.gpus)} for w in p.workers],
    }
    if p.workers[0].mig_profile:
        key = "partition" if p.sharing == "partition" else "mig_profile"
        placed[key] = p.workers[0].mig_profile
        placed["resource"] = p.workers[0].resource
    return placed


def _table(scheduled: Scheduled, inventory: Inventory) -> str:
    plan = scheduled.plan
    header = (
        "REQUEST",
        "REPLICA",
        "MODEL",
        "VARIANT",
        "CLASS",
        "NODE(S)",
        "GPUS",
        "VRAM GiB/GPU",
        "SHARING",
        "THROUGHPUT",
    )
    rows = [
        (
            p.request,
            str(p.replica),
            p.model,
            p.variant,
            p.gpu_class,
            ",".join(w.node for w in p.workers),
            " / ".join(_instance(p, w) if w.mig_profile else ",".join(map(str, w.gpus)) for w in p.workers),
            f"{p.vram_mib_per_gpu / MIB_PER_GIB:.1f}",
            p.sharing,
            f"{p.throughput:.2f} ({p.interconnect})" if p.tp > 1 else "1",
        )
        for p in plan.placements
    ]
    lines = _columns([header, *rows]) if rows else ["nothing placed"]
    if plan.unplaced:
        lines += ["", "UNPLACED"]
        unplaced = [(u.request, str(u.replica), u.reason) for u in plan.unplaced]
        lines += _columns([("REQUEST", "REPLICA", "REASON"), *unplaced])
    if inventory.skipped:
        lines += ["", "SKIPPED NODES"]
        lines += _columns([("NODE", "REASON"), *((s.node, s.reason) for s in inventory.skipped)])
    cost = f"cost: ${plan.cost_per_hour:.2f}/hour"
    if plan.effective_cost_per_hour != plan.cost_per_hour:
        cost += f" (${plan.effective_cost_per_hour:.2f}/hour per unit of throughput)"
    lines += ["", *(f"note: {note}" for note in _notes(plan, inventory)), f"GPUs used: {plan.gpus_used:.2f}   {cost}"]
    proof = "optimal" if scheduled.optimal else "not proven optimal"
    if scheduled.lower_bound is not None:
        proof += f", lower bound ${scheduled.lower_bound:.2f}/hour per unit of throughput"
    lines += [f"engine: {scheduled.engine} ({proof}; {scheduled.seconds:.2f} s)"]
    return "\n".join(lines)


def _instance(p: Placement, w: Worker) -> str:
    return f"{'partition' if p.sharing == 'partition' else 'mig'} {w.mig_profile}"


def _columns(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
