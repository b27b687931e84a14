"""Uploaded packages: what a zip may hold, and what unpacking it may write (``functions.code``)."""

from __future__ import annotations

import io
import os
import stat
import struct
import zipfile
from collections.abc import Mapping
from pathlib import Path

import pytest

from pytest_servebench.backends.local.sweep import folder_owner
from pytest_servebench.functions.code import (
    UNZIPPED_LIMIT,
    CodeError,
    CodeStore,
    code_sha256,
    member_path,
    unpack_zip,
)


def make_zip(files: Mapping[str, bytes | str], *, infos: list[zipfile.ZipInfo] | None = None,
             compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=compression) as z:
        for name, data in files.items():
            # A fixed timestamp: the same files make the same zip (writestr stamps "now", and
            # two packages built a second apart would differ in content).
            z.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), data,
                       compress_type=compression)
        for info in infos or []:
            z.writestr(info, b"target")
    return buf.getvalue()


def link(name: str, mode: int = stat.S_IFLNK | 0o777) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.create_system = 3  # Unix: the mode's file type counts
    info.external_attr = mode << 16
    return info


def bomb(declared: int = UNZIPPED_LIMIT + 2**20) -> bytes:
    """A real zip bomb: a quarter of a megabyte that inflates past Lambda's 250 MB."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as z, \
            z.open("zeros.bin", "w", force_zip64=True) as f:
        chunk = bytes(2**20)
        for _ in range(declared // len(chunk)):
            f.write(chunk)
    return buf.getvalue()


def patch_directory(data: bytes, name: str, offset: int, value: int, fmt: str = "<I") -> bytes:
    """The zip with one field of ``name``'s central directory entry set to ``value`` (what
    ``zipfile`` reads a member's sizes and flags from)."""
    raw = bytearray(data)
    at = raw.find(b"PK\x01\x02")
    while at != -1:
        name_len = struct.unpack_from("<H", raw, at + 28)[0]
        if raw[at + 46:at + 46 + name_len].decode() == name:
            struct.pack_into(fmt, raw, at + offset, value)
            return bytes(raw)
        at = raw.find(b"PK\x01\x02", at + 4)
    raise AssertionError(f"{name} is not in the zip")


def understate(data: bytes, name: str, size: int) -> bytes:
    """A zip that lies about what ``name`` inflates to."""
    return patch_directory(data, name, 24, size)


@pytest.mark.parametrize("name", ["/etc/passwd", "\\evil.py", "C:evil.py", "../evil.py",
                                  "a/../../evil.py", "a/..", "a\\..\\evil.py", "", "x\0y",
                                  "./", "a/" + "b" * 300])
def test_names_that_could_land_outside_the_package_are_refused(name: str) -> None:
    with pytest.raises(CodeError) as info:
        member_path(name)
    assert info.value.error_type == "InvalidParameterValueException"
    assert "Could not unzip uploaded file" in str(info.value)


def test_names_inside_the_package_are_its_paths() -> None:
    assert member_path("targets/handler.py") == ("targets", "handler.py")
    assert member_path("./a//b/./c.py") == ("a", "b", "c.py")
    assert member_path("model/") == ("model",)


@pytest.mark.parametrize(("files", "infos", "why"), [
    ({"app.py": "x"}, [link("lib.py")], "symlink"),
    ({"app.py": "x"}, [link("lib", stat.S_IFDIR | 0o755), link("lib/x.py")], "symlink"),
    ({"app.py": "x"}, [link("pipe", stat.S_IFIFO | 0o644)], "fifo"),
    ({"app.py": "x"}, [link("dev", stat.S_IFCHR | 0o644)], "device"),
    ({"../evil.py": "x"}, [], "climbs out"),
    ({"/abs.py": "x"}, [], "absolute"),
])
def test_zips_lambda_refuses_write_nothing(tmp_path: Path, files: dict[str, str],
                                           infos: list[zipfile.ZipInfo], why: str) -> None:
    dest = tmp_path / "pkg"
    dest.mkdir()
    with pytest.raises(CodeError, match=why):
        unpack_zip(make_zip(files, infos=infos), dest)
    assert list(dest.iterdir()) == []  # checked before the first byte is written
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pkg"]


def test_a_member_named_twice_or_encrypted_is_refused(tmp_path: Path) -> None:
    twice = make_zip({"app.py": "a"})
    buf = io.BytesIO(twice)
    with zipfile.ZipFile(buf, "a") as z, pytest.warns(UserWarning, match="Duplicate name"):
        z.writestr("app.py", "b")
    with pytest.raises(CodeError, match="appears twice"):
        unpack_zip(buf.getvalue(), tmp_path)
    secret = patch_directory(make_zip({"app.py": "a"}), "app.py", 8, 0x1, "<H")
    with pytest.raises(CodeError, match="encrypted"):
        unpack_zip(secret, tmp_path)
    # "a" a file, then "a/b.py" under it: the second cannot be made.
    with pytest.raises(CodeError, match="same path"):
        unpack_zip(make_zip({"a": "x", "a/b.py": "y"}), tmp_path / "fresh")


def test_a_zip_bomb_is_refused_from_its_declared_size(tmp_path: Path) -> None:
    data = bomb()
    assert len(data) < 2**20
    with pytest.raises(CodeError, match=f"smaller than {UNZIPPED_LIMIT} bytes"):
        unpack_zip(data, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_a_zip_that_understates_its_size_stops_at_what_it_declared(tmp_path: Path) -> None:
    honest = make_zip({"small.py": "x = 1\n", "big.bin": bytes(4 * 2**20)})
    lying = understate(honest, "big.bin", 1000)
    with pytest.raises(CodeError) as info:
        unpack_zip(lying, tmp_path)
    assert info.value.error_type == "InvalidParameterValueException"
    written = sum(p.stat().st_size for p in tmp_path.rglob("*") if p.is_file())
    assert written <= 1000 + len("x = 1\n")  # never past the declared sizes
    # A limit counted while writing as well: an honest zip past a small limit stops too.
    with pytest.raises(CodeError, match="smaller than"):
        unpack_zip(honest, tmp_path / "again", max_unzipped=2**20)


def test_a_zip_that_is_not_one_is_refused(tmp_path: Path) -> None:
    for data in (b"", b"not a zip at all", make_zip({"a.py": "x"})[:-30]):
        with pytest.raises(CodeError, match="Could not unzip uploaded file"):
            unpack_zip(data, tmp_path)


def test_the_store_unpacks_each_content_once_and_removes_what_is_unused() -> None:
    store = CodeStore()
    try:
        data = make_zip({"app.py": "CONST = 1\n", "bin/tool": "#!/bin/sh\n", "lib/": ""})
        first = store.adopt(store.unpack(data))
        assert folder_owner(store.root.name) is not None  # a sweep finds it after a kill -9
        assert first.root.parent == store.root
        assert (first.root / "app.py").read_text() == "CONST = 1\n"
        assert (first.root / "lib").is_dir()
        assert first.code_sha256 == code_sha256(data) and first.code_size == len(data)
        assert first.unzipped_bytes == len("CONST = 1\n") + len("#!/bin/sh\n")
        again = store.adopt(store.unpack(data))
        assert again is first and len(list(store.root.iterdir())) == 1
        assert store.get(first.code_sha256) is first
        other = store.adopt(store.unpack(make_zip({"app.py": "CONST = 2\n"})))
        doomed = store.collect({other.root})
        assert doomed == [first.root]
        store.remove(doomed)
        assert not first.root.exists() and other.root.exists()
        tiny = CodeStore(storage_limit_bytes=5)
        with pytest.raises(CodeError) as info:
            tiny.unpack(data)
        assert info.value.error_type == "CodeStorageExceededException"
        assert list(tiny.root.iterdir()) == []
        tiny.close()
    finally:
        root = store.root
        store.close()
    assert not root.exists()
    assert not os.path.exists(other.root)
