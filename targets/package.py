"""A function package per target: our code, the model, the runtime's distributions (no torch for
an ONNX target), sized against Lambda's 250 MB unzipped limit (studies 000 and 001 fought it).

``python -m targets.package mobilenet_v2 [--out DIR]`` or ``servebench package TARGET``.
Distributions are resolved from the installed metadata, following their requirements; the few a
packager would drop because nothing at serving time imports them are listed in ``EXCLUDED`` and
reported.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

LAMBDA_UNZIPPED_LIMIT = 250 * 1024 * 1024
HERE = Path(__file__).resolve().parent
# Code the function needs: the core, the handler, the registry and its data. Model definitions
# (torch) travel only with the torch runtime.
_CODE = ("__init__.py", "registry.py", "handler.py", "s3events.py", "build.py", "payloads.py",
         "core")
# A container image holds one package for both doors: the function runtime's entry point, the
# HTTP app, the router, and what runs them (the runtime client, uvicorn; boto3 as Lambda's own
# Python runtime has it).
IMAGE_CODE = ("bootstrap.py", "app.py", "router.py", "pipeline.py")
IMAGE_REQUIREMENTS = ("awslambdaric", "uvicorn", "starlette", "httptools", "boto3")
EXCLUDED: dict[str, str] = {}


@dataclass(frozen=True)
class PackageReport:
    target: str
    code_bytes: int
    model_bytes: int
    distributions: dict[str, int] = field(default_factory=dict)

    @property
    def total_bytes(self) -> int:
        return self.code_bytes + self.model_bytes + sum(self.distributions.values())

    @property
    def fits_lambda(self) -> bool:
        return self.total_bytes <= LAMBDA_UNZIPPED_LIMIT

    def to_dict(self) -> dict[str, object]:
        return {"target": self.target, "total_bytes": self.total_bytes,
                "limit_bytes": LAMBDA_UNZIPPED_LIMIT, "fits_lambda": self.fits_lambda,
                "code_bytes": self.code_bytes, "model_bytes": self.model_bytes,
                "distributions": dict(sorted(self.distributions.items(),
                                             key=lambda kv: -kv[1]))}


def _canon(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_closure(roots: tuple[str, ...]) -> list[metadata.Distribution]:
    """Installed distributions ``roots`` need at run time (extras and markers honoured)."""
    from packaging.requirements import Requirement

    seen: dict[str, metadata.Distribution] = {}
    todo = list(roots)
    while todo:
        name = _canon(todo.pop())
        if name in seen or name in EXCLUDED:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            raise LookupError(f"{name} is not installed; the package needs it") from None
        seen[name] = dist
        for raw in dist.requires or ():
            req = Requirement(raw)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    return list(seen.values())


def _dist_files(dist: metadata.Distribution) -> list[Path]:
    out = []
    for f in dist.files or ():
        p = Path(str(dist.locate_file(f)))
        if p.is_file() and "__pycache__" not in p.parts and ".dist-info" not in str(f):
            out.append(p)
    return out


def _code_files(runtime: str, extra: tuple[str, ...] = ()) -> list[Path]:
    files = []
    names = (*_CODE, *extra, "models") if runtime == "torch" else (*_CODE, *extra)
    for name in names:
        p = HERE / name
        files += [q for q in sorted(p.rglob("*.py"))] if p.is_dir() else [p]
    if runtime == "sklearn":
        files.append(HERE / "data" / "text_corpus.tsv")
    return [f for f in files if "__pycache__" not in f.parts]


def report(target: str) -> PackageReport:
    from .build import ensure
    from .registry import get

    spec = get(target)
    art = ensure(spec.model, spec.runtime)
    dists = {dist.metadata["Name"]: sum(p.stat().st_size for p in _dist_files(dist))
             for dist in requirement_closure(spec.runtime_requirements)}
    code = sum(p.stat().st_size for p in _code_files(spec.runtime))
    return PackageReport(target, code, art.size_bytes, dists)


@dataclass(frozen=True)
class Contents:
    """What a package holds, before anything is copied: enough to name its version."""

    code: list[Path]
    model: Path
    distributions: list[metadata.Distribution]

    def fingerprint(self) -> dict[str, object]:
        """A stable description: code by content, the model and distributions by identity."""
        import hashlib

        code = hashlib.sha256()
        for f in self.code:
            code.update(str(f.relative_to(HERE)).encode() + b"\0" + f.read_bytes() + b"\0")
        meta = self.model.with_suffix(".json")
        return {"code_sha256": code.hexdigest(), "model": self.model.name,
                "model_bytes": self.model.stat().st_size,
                "model_meta": meta.read_text() if meta.exists() else "",
                "distributions": sorted(f"{d.metadata['Name']}=={d.version}"
                                        for d in self.distributions)}


def contents(target: str, *, image: bool = False) -> Contents:
    """The files of ``target``'s package; ``image=True`` adds what a container image runs."""
    from .build import ensure
    from .registry import get

    spec = get(target)
    art = ensure(spec.model, spec.runtime)
    roots = spec.runtime_requirements + (IMAGE_REQUIREMENTS if image else ())
    return Contents(_code_files(spec.runtime, IMAGE_CODE if image else ()), art.path,
                    requirement_closure(roots))


def build(target: str, out: Path, *, image: bool = False) -> PackageReport:
    """Write the package as a folder: ``targets/`` (code), ``model/`` and the distributions at
    the top level, as a Lambda zip is laid out. Returns its report (of the function package,
    whatever ``image`` adds)."""
    what = contents(target, image=image)
    if out.exists():
        shutil.rmtree(out)
    (out / "model").mkdir(parents=True)
    for f in what.code:
        dest = out / "targets" / f.relative_to(HERE)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(f, dest)
    shutil.copy2(what.model, out / "model" / what.model.name)
    meta = what.model.with_suffix(".json")
    if meta.exists():
        shutil.copy2(meta, out / "model" / meta.name)
    for dist in what.distributions:
        root = Path(str(dist.locate_file("")))
        for p in _dist_files(dist):
            dest = out / p.relative_to(root)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(p, dest)
    return report(target)


def main(argv: list[str] | None = None) -> int:
    import argparse
    import json

    from .registry import TARGETS

    parser = argparse.ArgumentParser(prog="python -m targets.package")
    parser.add_argument("targets", nargs="*", default=list(TARGETS))
    parser.add_argument("--out", type=Path, help="write the package folder here (one target)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    for name in args.targets:
        rep = build(name, args.out) if args.out else report(name)
        if args.json:
            print(json.dumps(rep.to_dict()))
        else:
            verdict = "fits" if rep.fits_lambda else "EXCEEDS"
            print(f"{name:<22} {rep.total_bytes / 2**20:8.1f} MiB unzipped ({verdict} Lambda's "
                  f"250 MiB): code {rep.code_bytes / 2**20:.2f}, model "
                  f"{rep.model_bytes / 2**20:.1f}, " + ", ".join(
                      f"{k} {v / 2**20:.1f}" for k, v in sorted(
                          rep.distributions.items(), key=lambda kv: -kv[1])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
