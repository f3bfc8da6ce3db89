"""Emulated Raspberry Pi (aarch64) checks and the runtime compatibility matrix.

Development tooling, not part of the device package, and run from a source checkout: it builds the
mnistkit wheel it installs from the sources (``common.checkout_root`` says so in one line when
mnistkit is not a checkout). It builds a Debian bookworm arm64 Python under ``qemu-aarch64-static`` (the OS under 64-bit Raspberry Pi OS), installs mnistkit's base
package and backends from aarch64 wheels, and runs the device runtime there.

Entry point: ``python -m mnistkit.tools.pi {setup,run,check,matrix}`` (see ``__main__``).
"""
