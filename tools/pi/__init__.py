"""Emulated Raspberry Pi (aarch64) checks and the runtime compatibility matrix.

Development tooling, not part of the device package: it builds a Debian bookworm arm64 Python
under ``qemu-aarch64-static`` (the OS under 64-bit Raspberry Pi OS), installs mnistkit's base
package and backends from aarch64 wheels, and runs the device runtime there.

Entry point: ``python -m mnistkit.tools.pi {setup,run,check,matrix}`` (see ``__main__``).
"""
