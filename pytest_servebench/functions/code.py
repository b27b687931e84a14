"""Uploaded function packages: zips checked as Lambda checks them and unpacked once per content
into a folder the platform owns, the task root of that code's sandboxes.

A zip is refused before anything is written when a member's name is absolute, climbs out with
``..``, is a symlink or another special file, is encrypted or named twice, or when the sizes its
directory declares pass Lambda's 250 MB unzipped limit (a zip bomb declares what it inflates
to). While unpacking, the bytes written are counted again against that limit, and files are
created with ``O_EXCL | O_NOFOLLOW``: a zip that lies about its sizes or layout stops, it does not
fill the disk or write through a link. A failed unpack removes what it wrote.

The folders live under one ``servebench-<process token>-lambda-code-*`` temp folder (the local
backend's naming, so ``backends.local.sweep`` removes them after a ``kill -9``); the platform
removes a package when no function, version or sandbox uses it, and the whole folder when it
stops.

>>> store = CodeStore()  # doctest: +SKIP
>>> package = store.unpack(zip_bytes)  # blocking: run it in an executor  # doctest: +SKIP
>>> store.adopt(package).root  # doctest: +SKIP
PosixPath('/tmp/servebench-1234.5678.abcd1234-lambda-code-x1y2z3/Qx9...')
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import re
import shutil
import stat
import tempfile
import threading
import uuid
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO

ZIP_UPLOAD_LIMIT = 50 * 1024 * 1024  # CreateFunction's ZipFile, zipped
UNZIPPED_LIMIT = 262_144_000  # Lambda's 250 MB, in its own words' bytes
# The largest CreateFunction / UpdateFunctionCode request Lambda takes: the 50 MB zip in base64
# and the rest of the document.
MAX_CODE_REQUEST_BODY = 70_167_211
MAX_ENTRIES = 100_000  # more files than any package we know of (inodes are a resource too)
DEFAULT_STORAGE_LIMIT = 8 * 1024**3  # all unpacked code of one platform (Lambda: 75 GB/account)
_CHUNK = 1024 * 1024


class CodeError(ValueError):
    """A package Lambda would refuse; ``error_type`` is the exception botocore raises."""

    def __init__(self, message: str, *, error_type: str = "InvalidParameterValueException",
                 status: int = 400) -> None:
        super().__init__(message)
        self.error_type, self.status = error_type, status


BAD_ZIP = "Could not unzip uploaded file. Please check your file, then try to upload again."
TOO_LARGE = f"Unzipped size must be smaller than {UNZIPPED_LIMIT} bytes"


@dataclass(frozen=True, slots=True)
class CodePackage:
    """One unpacked zip: ``root`` is its sandboxes' task root."""

    root: Path
    code_sha256: str  # Lambda's CodeSha256: base64 of the zip's SHA-256
    code_size: int  # bytes, zipped
    unzipped_bytes: int


def code_sha256(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode("ascii")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return base64.b64encode(digest.digest()).decode("ascii")


_DRIVE = re.compile(r"^[a-zA-Z]:")


def member_path(name: str) -> tuple[str, ...]:
    """The parts of a member's path inside the package; ``CodeError`` for a name that could
    land outside it (absolute, ``..``, a drive, a backslash path) or that no file system
    takes (a NUL, an empty name)."""
    shown = name[:200]
    if not name or "\0" in name:
        raise CodeError(f"{BAD_ZIP} (a member has an empty or NUL-bearing name)")
    if name.startswith(("/", "\\")) or _DRIVE.match(name):
        raise CodeError(f"{BAD_ZIP} (member {shown!r} has an absolute path)")
    if "\\" in name:
        raise CodeError(f"{BAD_ZIP} (member {shown!r} has a backslash in its path)")
    parts = tuple(p for p in name.split("/") if p not in ("", "."))
    if ".." in parts:
        raise CodeError(f"{BAD_ZIP} (member {shown!r} climbs out of the package with '..')")
    if not parts:
        raise CodeError(f"{BAD_ZIP} (member {shown!r} names no file)")
    if any(len(p.encode()) > 255 for p in parts) or len(name.encode()) > 4096:
        raise CodeError(f"{BAD_ZIP} (member {shown!r} has a name too long for a file system)")
    return parts


def _file_type(info: zipfile.ZipInfo) -> str:
    """'dir', 'file', or what else the Unix mode in the member's attributes says it is."""
    if info.is_dir():
        return "dir"
    mode = info.external_attr >> 16
    kind = stat.S_IFMT(mode)
    if info.create_system != 3 or kind in (0, stat.S_IFREG):  # 3: Unix; others carry no type
        return "file"
    if kind == stat.S_IFDIR:
        return "dir"
    return {stat.S_IFLNK: "symlink", stat.S_IFIFO: "fifo", stat.S_IFCHR: "device",
            stat.S_IFBLK: "device", stat.S_IFSOCK: "socket"}.get(kind, "special file")


def check_members(z: zipfile.ZipFile, *, max_unzipped: int = UNZIPPED_LIMIT,
                  max_entries: int = MAX_ENTRIES) -> int:
    """Check every member's name, type and declared size before anything is written; returns
    the declared unzipped size."""
    infos = z.infolist()
    if len(infos) > max_entries:
        raise CodeError(f"{BAD_ZIP} ({len(infos)} members; this platform takes {max_entries})")
    seen: set[tuple[str, ...]] = set()
    total = 0
    for info in infos:
        parts = member_path(info.filename)
        kind = _file_type(info)
        if kind not in ("file", "dir"):
            raise CodeError(f"{BAD_ZIP} (member {info.filename[:200]!r} is a {kind}; packages "
                            "hold files and folders only)")
        if info.flag_bits & 0x1:
            raise CodeError(f"{BAD_ZIP} (member {info.filename[:200]!r} is encrypted)")
        if parts in seen and kind == "file":
            raise CodeError(f"{BAD_ZIP} (member {info.filename[:200]!r} appears twice)")
        seen.add(parts)
        total += info.file_size
        if total > max_unzipped:
            raise CodeError(TOO_LARGE)
    return total


def _write_member(z: zipfile.ZipFile, info: zipfile.ZipInfo, dest: Path, budget: list[int]
                  ) -> None:
    """Unpack one file, counting its bytes against ``budget[0]`` (what is left of the limit)."""
    parts = member_path(info.filename)
    path = dest.joinpath(*parts)
    path.parent.mkdir(parents=True, exist_ok=True)
    executable = bool((info.external_attr >> 16) & 0o111)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags, 0o755 if executable else 0o644)
    with os.fdopen(fd, "wb") as out, z.open(info) as src:
        while chunk := src.read(_CHUNK):
            budget[0] -= len(chunk)
            if budget[0] < 0:  # more than the directory declared: a lying zip
                raise CodeError(TOO_LARGE)
            out.write(chunk)


def unpack_zip(source: bytes | Path | IO[bytes], dest: Path, *,
               max_unzipped: int = UNZIPPED_LIMIT, max_entries: int = MAX_ENTRIES) -> int:
    """Check and unpack a zip into ``dest`` (a new, empty folder); returns the unzipped size.
    ``CodeError`` when Lambda would refuse it; ``dest`` is then left for the caller to
    remove."""
    stream = io.BytesIO(source) if isinstance(source, bytes) else source
    try:
        with zipfile.ZipFile(stream) as z:
            check_members(z, max_unzipped=max_unzipped, max_entries=max_entries)
            budget = [max_unzipped]
            for info in z.infolist():
                parts = member_path(info.filename)
                if _file_type(info) == "dir":
                    dest.joinpath(*parts).mkdir(parents=True, exist_ok=True)
                else:
                    _write_member(z, info, dest, budget)
            return max_unzipped - budget[0]
    except CodeError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, NotImplementedError) as exc:
        raise CodeError(f"{BAD_ZIP} ({type(exc).__name__})") from None
    except (FileExistsError, NotADirectoryError, IsADirectoryError):
        # A member named twice in other spellings ("a" and "a/"), a file where a folder goes.
        raise CodeError(f"{BAD_ZIP} (two members claim the same path)") from None
    except (OSError, ValueError, RuntimeError) as exc:  # zlib errors, CRC checks, a link
        raise CodeError(f"{BAD_ZIP} ({type(exc).__name__})") from None


class CodeStore:
    """The platform's unpacked packages, one folder per content (``CodeSha256``), under one
    temp folder made on first use. ``unpack`` blocks (run it in an executor); ``adopt``,
    ``get`` and ``collect`` belong to the platform's loop."""

    def __init__(self, *, storage_limit_bytes: int = DEFAULT_STORAGE_LIMIT) -> None:
        self.storage_limit_bytes = storage_limit_bytes
        self._root: Path | None = None
        self._root_lock = threading.Lock()
        self._packages: dict[str, CodePackage] = {}
        self._closed = False

    @property
    def root(self) -> Path:
        with self._root_lock:
            if self._closed:
                raise RuntimeError("the platform's code store is closed")
            if self._root is None:
                from ..backends.local.processes import make_workdir

                self._root = make_workdir("lambda-code")
            return self._root

    @property
    def stored_bytes(self) -> int:
        # A copy first: an unpack in an executor thread reads this while the loop adopts.
        return sum(p.unzipped_bytes for p in list(self._packages.values()))

    def get(self, sha: str) -> CodePackage | None:
        return self._packages.get(sha)

    def unpack(self, source: bytes | Path, *, sha: str | None = None) -> CodePackage:
        """Check and unpack a zip (its bytes, or a file) into a new folder of the store; not
        yet the store's (``adopt`` it). ``CodeError`` when Lambda would refuse it."""
        size = len(source) if isinstance(source, bytes) else source.stat().st_size
        if sha is None:
            sha = code_sha256(source) if isinstance(source, bytes) else file_sha256(source)
        room = self.storage_limit_bytes - self.stored_bytes
        dest = self.root / f"{uuid.uuid4().hex[:12]}"
        dest.mkdir()
        try:
            if isinstance(source, bytes):
                unzipped = unpack_zip(source, dest, max_unzipped=UNZIPPED_LIMIT)
            else:
                with open(source, "rb") as f:
                    unzipped = unpack_zip(f, dest, max_unzipped=UNZIPPED_LIMIT)
            if unzipped > room:
                raise CodeError(f"Code storage limit exceeded: this platform keeps "
                                f"{self.storage_limit_bytes} bytes of unpacked code",
                                error_type="CodeStorageExceededException")
        except BaseException:
            shutil.rmtree(dest, ignore_errors=True)
            raise
        return CodePackage(root=dest, code_sha256=sha, code_size=size, unzipped_bytes=unzipped)

    def adopt(self, package: CodePackage) -> CodePackage:
        """Keep ``package``; when the same content is already kept, that one (and the new
        folder goes)."""
        kept = self._packages.get(package.code_sha256)
        if kept is not None and kept.root != package.root:
            shutil.rmtree(package.root, ignore_errors=True)
            return kept
        if self._closed:
            shutil.rmtree(package.root, ignore_errors=True)
            raise RuntimeError("the platform's code store is closed")
        self._packages[package.code_sha256] = package
        return package

    def discard(self, package: CodePackage) -> None:
        """Remove a package that was never adopted (a request that failed after unpacking)."""
        if self._packages.get(package.code_sha256) is not package:
            shutil.rmtree(package.root, ignore_errors=True)

    def collect(self, in_use: set[Path]) -> list[Path]:
        """Forget the packages whose folders are not ``in_use``; returns the folders to remove
        (``remove`` them in an executor)."""
        doomed = [sha for sha, p in self._packages.items() if p.root not in in_use]
        return [self._packages.pop(sha).root for sha in doomed]

    @staticmethod
    def remove(folders: list[Path]) -> None:
        for folder in folders:
            shutil.rmtree(folder, ignore_errors=True)

    def spool(self) -> IO[bytes]:
        """A temp file inside the store, for a package on its way from S3 (deleted when
        closed)."""
        return tempfile.NamedTemporaryFile(dir=self.root, prefix="download-", suffix=".zip")

    def close(self) -> None:
        """Remove every package and the store's folder (blocking)."""
        with self._root_lock:
            self._closed = True
            root, self._root = self._root, None
        self._packages.clear()
        if root is not None:
            shutil.rmtree(root, ignore_errors=True)


__all__ = ["BAD_ZIP", "MAX_CODE_REQUEST_BODY", "TOO_LARGE", "UNZIPPED_LIMIT", "ZIP_UPLOAD_LIMIT",
           "CodeError", "CodePackage", "CodeStore", "check_members", "code_sha256",
           "member_path", "unpack_zip"]
