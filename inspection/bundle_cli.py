"""`returns-inspect bundle seal|verify DIR`: write or check a bundle's seal (bundle.json).

Seal after any deliberate change to a bundle's files (export, calibrate and `anomaly fit` do it
themselves); verify before shipping a bundle, or to see exactly which file changed."""

from __future__ import annotations

import argparse
from pathlib import Path

from inspection.bundle import KEY_ENV, SEAL_FILE, check_policy_pin, read_seal, seal_bundle
from inspection.decide import DEFAULT_POLICY
from inspection.loaded_model import LoadedModel
from inspection.manifest import file_sha256


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bundle", type=Path, help="model bundle directory")
    parser.add_argument("--policy", type=Path, help="seal: pin this policy file (the service then "
                        "refuses the bundle beside any other); verify: check against it")
    parser.epilog = f"With {KEY_ENV} set, the seal is signed (seal) or its signature required (verify)."


def main(args: argparse.Namespace) -> int:
    if args.subcommand == "seal":
        seal = seal_bundle(args.bundle, policy=args.policy)
        signed = "signed" if seal.signature else f"unsigned ({KEY_ENV} not set)"
        print(f"sealed {len(seal.files)} files of {args.bundle} into {args.bundle / SEAL_FILE}, {signed}")
        return 0
    model = LoadedModel.load(args.bundle)  # the seal, the card/ONNX pair, every file readable
    policy = args.policy or DEFAULT_POLICY
    check_policy_pin(read_seal(args.bundle), file_sha256(policy), policy)
    print(f"{args.bundle}: every file matches its seal (model_id {model.card.model_id})")
    return 0
