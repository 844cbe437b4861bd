"""The ``tssl`` command line."""

from __future__ import annotations

import argparse
import json
import platform
import sys
from collections.abc import Sequence

import torch
from torch.utils.data import DataLoader, TensorDataset

from tssl import __version__
from tssl.architecture import ArchitectureError
from tssl.losses import KERNEL_TARGETS, LOSSES, LossConfigError, make_loss
from tssl.methods import METHODS, ModelConfig, get_method
from tssl.recipe import make_optimizer
from tssl.train import EpochRecord, fit, history_as_dicts


class UsageError(Exception):
    """Bad input from the command line: reported as one line, exit status 2."""


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1; got {value}")
    return value


def _add_digits(commands) -> None:
    digits = commands.add_parser(
        "digits",
        help="train on scikit-learn's handwritten digits (real 8x8 images, offline) and print test accuracy",
        description="Train one method on sklearn.datasets.load_digits (1,797 real 8x8 handwritten digits that ship "
        "with scikit-learn; 1,297 train / 500 test) and print the test accuracy after every epoch.",
    )
    digits.add_argument("--method", default="tssl", help=f"one of: {', '.join(METHODS)} (default tssl)")
    digits.add_argument("--architecture", default="16C3-P2-64", help="hidden layers (default 16C3-P2-64)")
    digits.add_argument("--padding", type=int, default=1, help="conv padding (default 1)")
    digits.add_argument("--steps", "-T", type=_positive_int, default=5, help="time steps (default 5)")
    digits.add_argument("--epochs", type=_positive_int, default=10, help="default 10")
    digits.add_argument("--batch-size", type=_positive_int, default=32, help="default 32")
    digits.add_argument("--lr", type=float, default=5e-3, help="AdamW learning rate (default 5e-3)")
    digits.add_argument("--loss", default="kernel", choices=LOSSES)
    digits.add_argument("--kernel-target", default="final", choices=KERNEL_TARGETS)
    digits.add_argument("--tau-m", type=float, default=5.0)
    digits.add_argument("--tau-s", type=float, default=3.0)
    digits.add_argument("--seed", type=int, default=0)
    digits.add_argument("--device", default="cpu")
    digits.add_argument("--json", metavar="PATH", help="also write the run (history and settings) to this JSON file")
    digits.set_defaults(handler=_run_digits)


def _run_digits(args: argparse.Namespace) -> int:
    from tssl.data.digits import CLASSES, INPUT_SHAPE, load_digits_split

    try:
        method = get_method(args.method)
    except KeyError as error:
        raise UsageError(f"--method: {error.args[0]}") from None
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError(f"--device {args.device}: CUDA is not available on this machine; use --device cpu")
    torch.manual_seed(args.seed)
    config = ModelConfig(
        args.architecture, INPUT_SHAPE, CLASSES, args.steps, args.tau_m, args.tau_s, padding=args.padding
    )
    try:
        model = method.build(config).to(args.device)
        loss_fn = make_loss(
            args.loss,
            args.steps,
            args.tau_s,
            kernel_target=args.kernel_target,
            desired_count=args.steps,
            undesired_count=args.steps / 5,
        )
        optimizer = make_optimizer(model.parameters(), args.lr)
    except (ArchitectureError, LossConfigError, ValueError) as error:
        raise UsageError(str(error)) from None
    data = load_digits_split()
    generator = torch.Generator().manual_seed(args.seed)
    train = TensorDataset(data.train_x, data.train_y)
    test = TensorDataset(data.test_x, data.test_y)
    print(f"{args.method} on {data.source}: {args.architecture}, T={args.steps}, {args.epochs} epochs", flush=True)

    def report(record: EpochRecord) -> None:
        print(
            f"epoch {record.epoch:3d}  loss {record.train_loss:.4f}  train acc {record.train_accuracy:.4f}  "
            f"test acc {record.test_accuracy:.4f}  ({record.seconds:.1f} s)",
            flush=True,
        )

    history = fit(
        model,
        loss_fn.to(args.device),
        optimizer,
        lambda: DataLoader(train, batch_size=args.batch_size, shuffle=True, generator=generator),
        lambda: DataLoader(test, batch_size=500),
        args.epochs,
        args.device,
        reset=method.reset,
        on_epoch=report,
    )
    if args.json:
        record = {
            "method": args.method,
            "data_source": data.source,
            "settings": {k: v for k, v in vars(args).items() if k not in ("handler", "json")},
            "history": history_as_dicts(history),
            "provenance": {**method.provenance(model), "tssl": __version__, "python": platform.python_version()},
        }
        with open(args.json, "w") as handle:
            json.dump(record, handle, indent=2)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tssl", description="TSSL-BP engine and spiking-network benchmark")
    parser.add_argument("--version", action="version", version=f"tssl-bench {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    _add_digits(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except UsageError as error:
        print(f"tssl {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
