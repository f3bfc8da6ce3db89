"""Build the emulated Pi's root file system: Debian bookworm arm64 Python 3.11 under qemu user mode.

Steps (each skipped when already done with the same inputs):

1. ``qemu``: find ``qemu-aarch64-static`` (optionally install ``qemu-user-static`` with apt-get).
2. ``apt-download``: a private APT configuration (own state, empty dpkg status, ``arm64`` only, the
   host's Debian archive and keyring) downloads the .deb closure of ``python3.11`` and
   ``libstdc++6``. The host's dpkg and APT state are never touched (no ``dpkg --add-architecture``).
3. ``extract``: ``dpkg-deb -x`` every .deb into a fresh sysroot, renamed into place when complete.
4. ``cpuinfo``: ``SYSROOT/proc/cpuinfo`` in ARM format (Cortex-A72, as a Raspberry Pi 4). qemu
   serves paths under its prefix first; without this file onnxruntime and LiteRT read the host's
   x86 /proc/cpuinfo and crash.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from mnistkit.tools.pi.common import Stamp, StepError, cache_dir, log, run

SUITE = "bookworm"
PACKAGES = ("python3.11", "libstdc++6")
KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")
DEFAULT_ARCHIVE = "http://deb.debian.org/debian"
DEFAULT_SECURITY = "http://deb.debian.org/debian-security"
QEMU = "qemu-aarch64-static"
INSTALL_HINT = "install it with: apt-get install qemu-user-static (Debian/Ubuntu, as root)"

# A Raspberry Pi 4's /proc/cpuinfo: 4 x Cortex-A72 (implementer 0x41 = ARM, part 0xd08).
_CPU_BLOCK = """processor\t: {n}
BogoMIPS\t: 108.00
Features\t: fp asimd evtstrm crc32 cpuid
CPU implementer\t: 0x41
CPU architecture: 8
CPU variant\t: 0x0
CPU part\t: 0xd08
CPU revision\t: 3
"""
CPUINFO = "\n".join(_CPU_BLOCK.format(n=n) for n in range(4)) + (
    "\nHardware\t: BCM2835\nRevision\t: c03111\nModel\t\t: Raspberry Pi 4 Model B Rev 1.1\n"
)


def sysroot_dir() -> Path:
    """Where the extracted arm64 root file system lives."""
    return cache_dir() / "sysroot"


def python_path() -> Path:
    """The aarch64 CPython inside the sysroot."""
    return sysroot_dir() / "usr" / "bin" / "python3.11"


def find_qemu(install: bool = False) -> str:
    """Return the path of ``qemu-aarch64-static``, installing it with apt-get if asked.

    Args:
        install: Run ``apt-get install -y qemu-user-static`` when missing (CI, as root).

    Raises:
        StepError: qemu is missing (and was not, or could not be, installed).
    """
    found = shutil.which(QEMU)
    if found:
        return found
    if not install:
        raise StepError("qemu", f"{QEMU} not found; {INSTALL_HINT}")
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise StepError("qemu", f"{QEMU} not found and cannot install it here (needs root and apt-get); {INSTALL_HINT}")
    log("installing qemu-user-static with apt-get")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    run("qemu", ["apt-get", "update", "-qq"], env=env, timeout=600)
    run("qemu", ["apt-get", "install", "-y", "-qq", "qemu-user-static"], env=env, timeout=600)
    found = shutil.which(QEMU)
    if not found:
        raise StepError("qemu", f"apt-get installed qemu-user-static but {QEMU} is still not on PATH")
    return found


def host_archives() -> tuple[str, str]:
    """The Debian archive and security archive URIs the host's APT sources name.

    Falls back to deb.debian.org. ``MNISTKIT_PI_ARCHIVE`` / ``MNISTKIT_PI_SECURITY`` override
    (e.g. a snapshot.debian.org URI for a byte-for-byte reproducible sysroot).
    """
    archive, security = DEFAULT_ARCHIVE, DEFAULT_SECURITY
    texts = []
    for path in [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]:
        if path.suffix in (".sources", ".list") and path.is_file():
            texts.append(path.read_text(errors="replace"))
    for uri in re.findall(r"(?:^URIs:\s*|^deb\s+(?:\[[^\]]*\]\s+)?)(\S+)", "\n".join(texts), re.M):
        uri = uri.rstrip("/")
        if uri.endswith("/debian-security"):
            security = uri
        elif uri.endswith("/debian"):
            archive = uri
    return os.environ.get("MNISTKIT_PI_ARCHIVE", archive), os.environ.get("MNISTKIT_PI_SECURITY", security)


def _write_apt_config(root: Path, archive: str, security: str) -> Path:
    """Write a self-contained arm64 APT configuration under ``root``; return the config file."""
    for sub in ("etc/apt/sources.list.d", "etc/apt/preferences.d", "etc/apt/apt.conf.d",
                "state/lists/partial", "cache/archives/partial", "log"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    (root / "state" / "status").touch()  # empty dpkg status: nothing "installed"
    (root / "etc/apt/sources.list.d/debian.sources").write_text(
        f"Types: deb\nURIs: {archive}\nSuites: {SUITE} {SUITE}-updates\nComponents: main\n"
        f"Architectures: arm64\nSigned-By: {KEYRING}\n\n"
        f"Types: deb\nURIs: {security}\nSuites: {SUITE}-security\nComponents: main\n"
        f"Architectures: arm64\nSigned-By: {KEYRING}\n"
    )
    conf = root / "apt.conf"
    conf.write_text(
        f'Dir "{root}/";\n'
        f'Dir::Etc "{root}/etc/apt/";\n'
        f'Dir::State "{root}/state/";\n'
        f'Dir::State::status "{root}/state/status";\n'
        f'Dir::Cache "{root}/cache/";\n'
        f'Dir::Log "{root}/log/";\n'
        'APT::Architecture "arm64";\n'
        'APT::Architectures { "arm64"; };\n'
        'APT::Install-Recommends "false";\n'
        'APT::Sandbox::User "root";\n'
        'Acquire::Languages "none";\n'
        'APT::Update::Error-Mode "any";\n'
    )
    return conf


def download_debs() -> list[Path]:
    """Step ``apt-download``: the .deb closure of python3.11 + libstdc++6 for arm64.

    Returns:
        The downloaded .deb files (sorted).

    Raises:
        StepError: apt-get or the keyring is missing, or the archive cannot be reached.
    """
    step = "apt-download"
    root = cache_dir() / "apt"
    archive, security = host_archives()
    stamp = Stamp(step, {"suite": SUITE, "packages": PACKAGES, "archive": archive, "security": security})
    archives = root / "cache" / "archives"
    if stamp.done():
        debs = sorted(archives.glob("*.deb"))
        if debs and all(p.name in {d.name for d in debs} for p in map(Path, stamp.result().get("debs", []))):
            return debs
    if not shutil.which("apt-get") or not shutil.which("dpkg-deb"):
        raise StepError(step, "apt-get and dpkg-deb are needed (a Debian or Ubuntu host)")
    if not KEYRING.is_file():
        raise StepError(step, f"{KEYRING} missing; install it with: apt-get install debian-archive-keyring")
    conf = _write_apt_config(root, archive, security)
    env = {**os.environ, "APT_CONFIG": str(conf), "DEBIAN_FRONTEND": "noninteractive"}
    log(f"apt-get update (arm64, {archive})")
    run(step, ["apt-get", "update", "-q"], env=env, timeout=600)
    log(f"apt-get install -d {' '.join(PACKAGES)}")
    run(step, ["apt-get", "install", "-d", "-y", "-q", *PACKAGES], env=env, timeout=900)
    debs = sorted(archives.glob("*.deb"))
    if not any(d.name.startswith("python3.11-minimal_") for d in debs):
        raise StepError(step, f"apt-get finished but no python3.11 .deb is in {archives}")
    stamp.mark(debs=[d.name for d in debs])
    return debs


def extract(debs: list[Path]) -> Path:
    """Step ``extract``: unpack every .deb into a fresh sysroot (atomic rename when complete).

    Raises:
        StepError: a .deb cannot be unpacked.
    """
    step = "extract"
    target = sysroot_dir()
    stamp = Stamp(step, {"debs": [d.name for d in debs], "precompiled": sys.version_info[:2] == (3, 11)})
    if stamp.done() and python_path().is_file():
        return target
    log(f"extracting {len(debs)} .debs into {target}")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".sysroot.", dir=target.parent))
    try:
        for deb in debs:
            run(step, ["dpkg-deb", "-x", deb, tmp], timeout=300)
        if not (tmp / "usr/bin/python3.11").is_file():
            raise StepError(step, "python3.11 is not in the unpacked packages")
        _precompile(tmp / "usr/lib/python3.11")
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    stamp.mark()
    return target


def _precompile(folder: Path) -> None:
    """Byte-compile the stdlib with the host's CPython 3.11 (same .pyc format as 3.11.2).

    Debian ships no .pyc (its postinst makes them); without them every emulated start compiles the
    modules it imports again, which costs seconds under qemu.
    """
    if sys.version_info[:2] == (3, 11):
        subprocess.run([sys.executable, "-m", "compileall", "-q", "-j", "0", "-x", r"(lib2to3|test|idlelib)/",
                        str(folder)], capture_output=True, timeout=600)


def write_cpuinfo(root: Path) -> Path:
    """Step ``cpuinfo``: write the ARM /proc/cpuinfo the emulated programs will read."""
    path = root / "proc" / "cpuinfo"
    if not (path.is_file() and path.read_text() == CPUINFO):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(CPUINFO)
    return path


def smoke_test(qemu: str, root: Path) -> str:
    """Step ``smoke``: start the aarch64 Python once; return its platform string."""
    step = "smoke"
    env = {"QEMU_LD_PREFIX": str(root), "QEMU_CPU": "cortex-a72", "PATH": os.environ.get("PATH", "")}
    code = "import platform, sys; print(platform.machine(), sys.version.split()[0])"
    try:
        out = run(step, [qemu, root / "usr/bin/python3.11", "-c", code], env=env, timeout=120).stdout.strip()
    except StepError:
        raise
    if not out.startswith("aarch64"):
        raise StepError(step, f"expected an aarch64 Python, got: {out!r}")
    return out


def build(install_qemu: bool = False) -> Path:
    """Build (or reuse) the sysroot and return it; every step is idempotent.

    Args:
        install_qemu: Install qemu-user-static with apt-get when missing.

    Raises:
        StepError: naming the failed step.
    """
    qemu = find_qemu(install=install_qemu)
    debs = download_debs()
    root = extract(debs)
    write_cpuinfo(root)
    version = smoke_test(qemu, root)
    log(f"sysroot ready: {root} ({version}, {len(debs)} packages)")
    return root


