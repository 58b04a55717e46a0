"""``python -m training --data DIR --out DIR [--recipe frozen] [--<any TrainConfig field> VALUE]``."""

from __future__ import annotations

import argparse
import logging

from training.config import TrainConfig, options
from training.train import train


def parse(argv: list[str] | None = None) -> TrainConfig:
    parser = argparse.ArgumentParser(prog="python -m training", description="Train a Gaussian head (SIGReg + InfoNCE).")
    for name, kind, default in options():
        flag = "--" + name.replace("_", "-")
        if kind is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=default)
        else:
            parser.add_argument(flag, type=kind, default=default, required=name in ("data", "out"))
    return TrainConfig(**vars(parser.parse_args(argv)))


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = parse(argv)
    out = train(config)
    logging.getLogger("training").info("model written to %s", out)


if __name__ == "__main__":
    main()
