"""``python -m mnistkit.tools.pi``: set up the emulated Pi, run the Pi check, build the matrix.

    python -m mnistkit.tools.pi setup [--install-qemu] [--tflrt]
    python -m mnistkit.tools.pi check [ARTIFACT|DIR ...] [--all] [--mnist 300] [--json-out F]
    python -m mnistkit.tools.pi matrix EXPORT_DIR --out reports/compat.md [--images 500]
    python -m mnistkit.tools.pi run -- -c "import platform; print(platform.machine())"
    python -m mnistkit.tools.pi tflrt-ops      # re-measure tflite-runtime 2.14's op versions

Runs from a source checkout of mnistkit (``pip install -e .``): it builds the mnistkit wheel it
installs on the emulated Pi from the sources, and caches everything in ``<checkout>/.cache/pi``.
A failed step prints one line naming the step and why, and exits 1 (2 for usage errors).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from mnistkit.runtime.guard import script_guarded

CHECKOUT_NOTE = ("Development tooling: runs from a source checkout of mnistkit (pip install -e .), "
                 "since it builds the wheel it installs on the emulated Pi from the sources.")


def _setup(args: argparse.Namespace) -> int:
    from mnistkit.tools.pi import sysroot, tflrt, wheels

    t0 = time.perf_counter()
    sysroot.build(install_qemu=args.install_qemu)
    t1 = time.perf_counter()
    sites = wheels.install_all(tflrt=args.tflrt)
    t2 = time.perf_counter()
    if args.tflrt:
        tflrt.ensure_venv()
    t3 = time.perf_counter()
    print(f"sysroot {t1 - t0:.1f} s, aarch64 wheels {t2 - t1:.1f} s"
          + (f", tflite-runtime venv {t3 - t2:.1f} s" if args.tflrt else ""))
    for role, path in sites.items():
        print(f"{role}: {path}")
    return 0


def _check(args: argparse.Namespace) -> int:
    from mnistkit.models.artifacts import write_json_atomic
    from mnistkit.tools.pi.check import default_artifacts, run_check, table

    arts = default_artifacts(args.all, [Path(p) for p in args.artifacts])
    summary = run_check(arts, mnist=args.mnist, install_qemu=args.install_qemu, cpu=args.cpu,
                        steps=args.quant_steps)
    print(table(summary))
    if args.json_out:
        write_json_atomic(args.json_out, summary)
    return 0 if summary["ok"] else 1


def _matrix(args: argparse.Namespace) -> int:
    from mnistkit.models.artifacts import write_bytes_atomic, write_json_atomic
    from mnistkit.tools.pi.matrix import build, to_markdown

    out = Path(args.out)
    if args.render:  # re-render the Markdown of a measured matrix (no measuring)
        import json

        data = json.loads(Path(args.render).read_text())
        write_bytes_atomic(out, to_markdown(data).encode())
        print(f"wrote {out} from {args.render}")
        return 0
    if args.export_dir is None:
        parser().error("matrix needs EXPORT_DIR (or --render JSON)")
    data = build(Path(args.export_dir), count=args.images, with_emulation=not args.no_emulation,
                 with_tflrt=not args.no_tflrt, keras=not args.no_keras)
    write_bytes_atomic(out, to_markdown(data).encode())
    write_json_atomic(out.with_suffix(".json"), data)
    print(f"wrote {out} and {out.with_suffix('.json')} ({len(data['artifacts'])} artifacts, "
          f"{len(data['runtimes'])} runtimes, {data['seconds']:.0f} s)")
    return 0


def _run(args: argparse.Namespace) -> int:
    import subprocess

    from mnistkit.tools.pi import emu, wheels

    sites = wheels.install_all(tflrt=args.tflrt)
    paths = [sites["mnistkit"], sites["tflrt" if args.tflrt else "base"]]
    argv, env = emu.command(args.args, paths, cpu=args.cpu)
    return subprocess.run(argv, env=env).returncode


def _tflrt_ops(args: argparse.Namespace) -> int:
    from mnistkit.tools.pi.tflrt_ops import main

    return main()


def parser() -> argparse.ArgumentParser:
    """The argument parser (subcommands setup, check, matrix, run, tflrt-ops)."""
    p = argparse.ArgumentParser(prog="python -m mnistkit.tools.pi", description=__doc__.split("\n")[0],
                                epilog=CHECKOUT_NOTE)
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("setup", help="build the emulated Pi (cached) and install the aarch64 wheels")
    s.add_argument("--install-qemu", action="store_true", help="apt-get install qemu-user-static if missing")
    s.add_argument("--tflrt", action="store_true", help="also tflite-runtime 2.14 (aarch64 site + x86 venv)")
    s.set_defaults(func=_setup)
    c = sub.add_parser("check", help="classify on the emulated Pi and on x86; fail on any difference")
    c.add_argument("artifacts", nargs="*", help="model files or export folders (default: the bundled model)")
    c.add_argument("--all", action="store_true", help="every artifact of exports/pretrained")
    c.add_argument("--mnist", type=int, default=300, help="MNIST test images to add to the samples (0: none)")
    c.add_argument("--json-out", help="also write the result as JSON here")
    c.add_argument("--install-qemu", action="store_true", help="apt-get install qemu-user-static if missing")
    c.add_argument("--cpu", default="cortex-a72", help="qemu CPU model (cortex-a72 = Pi 4, cortex-a76 = Pi 5)")
    c.add_argument("--quant-steps", type=float, default=3.0,
                   help="quantization steps allowed between x86 and aarch64 for quantized models (default 3)")
    c.set_defaults(func=_check)
    m = sub.add_parser("matrix", help="measure every artifact on every runtime; write Markdown + JSON")
    m.add_argument("export_dir", nargs="?", help="an export folder, e.g. exports/pretrained")
    m.add_argument("--render", metavar="JSON", help="only re-render the Markdown of a matrix measured before")
    m.add_argument("--out", required=True, help="Markdown file to write (the JSON goes beside it)")
    m.add_argument("--images", type=int, default=500, help="MNIST test images per run")
    m.add_argument("--no-emulation", action="store_true", help="x86_64 columns only")
    m.add_argument("--no-tflrt", action="store_true", help="leave out tflite-runtime 2.14")
    m.add_argument("--no-keras", action="store_true", help="skip the agreement with the Keras sources")
    m.set_defaults(func=_matrix)
    r = sub.add_parser("run", help="run the emulated aarch64 python3.11 with mnistkit installed")
    r.add_argument("--tflrt", action="store_true", help="with tflite-runtime 2.14 + numpy<2 instead of the base site")
    r.add_argument("--cpu", default="cortex-a72")
    r.add_argument("args", nargs=argparse.REMAINDER)
    r.set_defaults(func=_run)
    t = sub.add_parser("tflrt-ops", help="print the op versions tflite-runtime 2.14 registers (measured)")
    t.set_defaults(func=_tflrt_ops)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point; library errors become one line on stderr."""
    args = parser().parse_args(argv)
    if getattr(args, "mnist", 0) < 0 or getattr(args, "images", 1) < 1:
        parser().error("--mnist must be >= 0 and --images >= 1")
    if getattr(args, "args", None) and args.args[:1] == ["--"]:
        args.args = args.args[1:]
    return script_guarded(lambda: args.func(args))


if __name__ == "__main__":
    sys.exit(main())
