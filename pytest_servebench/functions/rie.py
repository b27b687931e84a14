"""Find the AWS Lambda Runtime Interface Emulator binary.

The official binary ships inside the ``aws-sam-cli`` wheel (``samcli/local/rapid/``). We fetch
that one wheel from the package index with ``pip download --no-deps`` and extract only the binary
into the cache, rather than install all of aws-sam-cli. Order of search: ``$SERVEBENCH_RIE``,
the cache, ``aws-lambda-rie`` on PATH, then the fetch.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from filelock import FileLock


class RieNotFound(RuntimeError):
    pass


def _arch() -> str:
    from ..platforms import machine_arch

    return machine_arch()


def cache_dir() -> Path:
    root = os.environ.get("SERVEBENCH_CACHE") or Path.home() / ".cache" / "servebench"
    return Path(root) / "rie"


def find_rie(*, fetch: bool = True) -> Path:
    """The RIE binary for this machine's architecture, fetched once and cached."""
    explicit = os.environ.get("SERVEBENCH_RIE")
    if explicit:
        path = Path(explicit)
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise RieNotFound(f"SERVEBENCH_RIE={explicit} is not an executable file")
        return path
    cached = cache_dir() / f"aws-lambda-rie-{_arch()}"
    if cached.is_file():
        return cached
    on_path = shutil.which("aws-lambda-rie")
    if on_path:
        return Path(on_path)
    if not fetch:
        raise RieNotFound("the Lambda Runtime Interface Emulator is not cached")
    return fetch_rie(cached)


def fetch_rie(dest: Path) -> Path:
    """Download the aws-sam-cli wheel (no dependencies) and extract the RIE binary to ``dest``."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    member = f"samcli/local/rapid/aws-lambda-rie-{_arch()}"
    with FileLock(str(dest) + ".lock", timeout=300):
        if dest.is_file():
            return dest
        with tempfile.TemporaryDirectory(prefix="servebench-rie-") as tmp:
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                   "--disable-pip-version-check", "--quiet", "-d", tmp, "aws-sam-cli"]
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
            wheels = list(Path(tmp).glob("aws_sam_cli-*.whl"))
            if proc.returncode != 0 or not wheels:
                raise RieNotFound(
                    "could not fetch the Lambda Runtime Interface Emulator: `pip download "
                    f"aws-sam-cli` failed:\n{proc.stderr.strip()[-2000:]}\nSet SERVEBENCH_RIE to "
                    "an aws-lambda-rie binary (from the aws-sam-cli wheel or "
                    "github.com/aws/aws-lambda-runtime-interface-emulator).")
            with zipfile.ZipFile(wheels[0]) as wheel:
                try:
                    data = wheel.read(member)
                except KeyError as exc:
                    raise RieNotFound(f"{wheels[0].name} holds no {member}") from exc
            part = dest.with_suffix(".part")
            part.write_bytes(data)
            part.chmod(0o755)
            (dest.parent / "SOURCE").write_text(f"{wheels[0].name}:{member}\n")
            part.replace(dest)
    return dest
