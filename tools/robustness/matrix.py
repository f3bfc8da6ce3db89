"""Run the robustness benchmark for several models at once and write the JSON the report reads.

    python -m mnistkit.tools.robustness.matrix --out reports/robustness.json \\
        cnn=models/pretrained/cnn.keras "cnn (before)=old/cnn.keras" default=runtime/assets/default.tflite

Each argument is ``LABEL=PATH`` (a .keras file, a run directory, or an exported .tflite/.onnx run
through the runtime). The shifted sets are built once (seeded) and every model sees the same images.
``--append`` adds models to an existing file made with the same seed, count and photos (the sets
are rebuilt identically from the seed).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from mnistkit.runtime.errors import MnistkitError, UsageError


def _parse(pairs: list[str]) -> dict[str, Path]:
    models = {}
    for pair in pairs:
        label, sep, path = pair.partition("=")
        if not sep or not label or not path:
            raise UsageError(f"{pair!r} is not LABEL=PATH; e.g. cnn=models/pretrained/cnn.keras")
        if not Path(path).exists():
            raise UsageError(f"{path} does not exist (for {label})")
        models[label] = Path(path)
    return models


def run(models: dict[str, Path], *, limit: int | None, seed: int, photos: int, data_dir: str | None) -> dict:
    """Build the benchmark and evaluate every model; returns the JSON document."""
    from mnistkit.models.data import load_mnist
    from mnistkit.tools.robustness import benchmark as robustness
    from mnistkit.models.source import resolve_model_path

    mnist = load_mnist(data_dir)
    x, y = mnist.x_test[:limit], mnist.y_test[:limit]
    start = time.perf_counter()
    bench = robustness.build(x, y, seed=seed, photos=photos,
                             progress=lambda name: print(f"preparing {name}", file=sys.stderr, flush=True))
    print(f"prepared in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    results = {}
    for label, path in models.items():
        t = time.perf_counter()
        model_path = resolve_model_path(path)
        results[label] = {"path": str(path), **robustness.evaluate(robustness.load_predictor(model_path), bench)}
        print(f"{label}: mean {results[label]['mean']:.2%} ({time.perf_counter() - t:.0f} s)", file=sys.stderr)
    print(robustness.format_table(results, bench))
    return {
        "seed": seed, "count": len(y), "photos": photos,
        "sets": robustness.descriptions(),
        "refused": {k: int(v.sum()) for k, v in bench.refused.items()},
        "models": results,
    }


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit code."""
    from mnistkit.models.artifacts import write_json_atomic

    parser = argparse.ArgumentParser(prog="python -m mnistkit.tools.robustness.matrix",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("models", nargs="+", help="LABEL=PATH of each model")
    parser.add_argument("--out", type=Path, required=True, help="JSON file to write")
    parser.add_argument("--limit", type=int, help="first N test images only (default: all 10,000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--photos", type=int, default=300, help="photo-like images (default 300)")
    parser.add_argument("--data-dir", help="MNIST folder (default: $MNISTKIT_DATA)")
    parser.add_argument("--append", action="store_true", help="keep the models already in --out")
    args = parser.parse_args(argv)
    try:
        previous = _previous(args) if args.append else None
        doc = run(_parse(args.models), limit=args.limit, seed=args.seed, photos=args.photos, data_dir=args.data_dir)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except MnistkitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if previous:
        doc["models"] = previous["models"] | doc["models"]
    write_json_atomic(args.out, doc)
    return 0


def _previous(args) -> dict | None:
    """The existing --out document, checked to come from the same benchmark settings."""
    import json

    if not args.out.is_file():
        return None
    doc = json.loads(args.out.read_text())
    count = doc.get("count")
    same = doc.get("seed") == args.seed and doc.get("photos") == args.photos and count == (args.limit or 10000)
    if not same:
        raise UsageError(f"{args.out} was made with other settings (seed {doc.get('seed')}, {count} images, "
                         f"{doc.get('photos')} photos); drop --append or use the same ones")
    return doc


if __name__ == "__main__":
    sys.exit(main())
