"""A model's Lambda deployment package as a zip, built once per content and cached.

The folder comes from the model provider's ``write_package`` (code, model, the runtime's
distributions, laid out as Lambda unpacks a zip into ``/var/task``); the zip is deterministic
(sorted entries, fixed timestamps), so its SHA-256 names its content and a second run uploads
nothing new.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from ...provider import get_provider

DIRECT_UPLOAD_LIMIT = 50 * 1024 * 1024  # CreateFunction's ZipFile; above it, through S3
UNZIPPED_LIMIT = 250 * 1024 * 1024  # above it, a container image (ECR)
_EPOCH = (1980, 1, 1, 0, 0, 0)


@dataclass(frozen=True, slots=True)
class FunctionPackage:
    target: str
    path: Path
    sha256: str
    zipped_bytes: int
    unzipped_bytes: int
    model_file: str  # relative to the package root (Lambda's task root)

    @property
    def needs_s3(self) -> bool:
        return self.zipped_bytes > DIRECT_UPLOAD_LIMIT

    @property
    def fits_zip(self) -> bool:
        return self.unzipped_bytes <= UNZIPPED_LIMIT


def cache_dir() -> Path:
    return get_provider().cache_dir().parent / "packages"


def _zip_folder(folder: Path, out: Path) -> int:
    """Zip ``folder`` reproducibly into ``out``; returns the unzipped size."""
    total = 0
    tmp = out.with_suffix(".tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as z:
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            info = zipfile.ZipInfo(str(path.relative_to(folder)), date_time=_EPOCH)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            data = path.read_bytes()
            total += len(data)
            z.writestr(info, data, compresslevel=6)
    tmp.replace(out)
    return total


def build_zip(target: str) -> FunctionPackage:
    """``target``'s function package as a zip, from the cache when its content is unchanged."""
    provider = get_provider()
    contents = provider.contents(target)
    key = hashlib.sha256(json.dumps(contents.fingerprint(), sort_keys=True).encode())
    stem = f"{target}-{key.hexdigest()[:16]}"
    root = cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    zpath, meta_path = root / f"{stem}.zip", root / f"{stem}.json"
    if not (zpath.exists() and meta_path.exists()):
        with tempfile.TemporaryDirectory(prefix="servebench-package-") as tmp:
            folder = Path(tmp) / "pkg"
            provider.write_package(target, folder)
            unzipped = _zip_folder(folder, zpath)
        digest = hashlib.sha256(zpath.read_bytes()).hexdigest()
        meta_path.write_text(json.dumps({"sha256": digest, "unzipped_bytes": unzipped}))
        for old in root.glob(f"{target}-*.zip"):  # earlier contents of this target: stale
            if old != zpath and old.stem.rsplit("-", 1)[0] == target:
                old.unlink(missing_ok=True)
                old.with_suffix(".json").unlink(missing_ok=True)
    meta = json.loads(meta_path.read_text())
    return FunctionPackage(target=target, path=zpath, sha256=meta["sha256"],
                           zipped_bytes=zpath.stat().st_size,
                           unzipped_bytes=int(meta["unzipped_bytes"]),
                           model_file=f"model/{contents.model.name}")
