"""Terminal tables: the end-of-session summary, built from the run's history entries.

The default table fits ``width`` columns (120, or the terminal's width when narrower): rows are
grouped under their test module, each test's id is shortened in the middle only as far as it
stays unique within its module, and the text columns give way before the numbers do. The wide
table (``verbose=True``, pytest's ``-v``) keeps every id whole and adds columns.

>>> format_table(["a", "n"], [["x", "1"], ["yy", "10"]], right=[1])
['a    n', '--  --', 'x    1', 'yy  10']
>>> abbreviate("[ec2-c5.large-concurrency=16-memory_mb=512]")
'[ec2-c5.large-c=16-m=512]'
>>> shorten_unique(["test_sweep[ec2-c5.large-concurrency=16]",
...                 "test_sweep[ec2-t4g.medium-concurrency=16]"], 24)
['test_swe…e-concurrency=16]', 'test_swe…m-concurrency=16]']
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .metrics import format_value

if TYPE_CHECKING:
    from .cost import ServerBill
    from .history import Entry

DEFAULT_WIDTH = 120
_ELLIPSIS = "…"
_GAP = "  "
_INDENT = "  "
# The narrowest a shortened text column gets before the table is allowed to overflow.
_MIN_TEXT = 8
_ID_PRIORITY = 12


def overall_verdict(outcomes: Iterable[str]) -> str:
    """"fail" beats "inconclusive" beats "pass"; "-" when no SLO was judged."""
    seen = set(outcomes)
    if not seen:
        return "-"
    for worst in ("fail", "inconclusive"):
        if worst in seen:
            return worst
    return "pass"


def format_table(header: Sequence[str], rows: Sequence[Sequence[str]], *,
                 right: Iterable[int] = ()) -> list[str]:
    """Columns padded to their widest cell; ``right`` names right-aligned columns."""
    align_right = set(right)
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(header)]

    def fmt(cells: Sequence[str]) -> str:
        return _GAP.join(c.rjust(w) if i in align_right else c.ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths, strict=True))).rstrip()

    return [fmt(header), fmt(["-" * w for w in widths]), *(fmt(r) for r in rows)]


def shorten(text: str, width: int, *, keep_end: bool = True) -> str:
    """``text`` cut in the middle to ``width`` characters; the end (a test's parameters) keeps
    the larger share, or the start (a target's platform and size) with ``keep_end=False``."""
    if len(text) <= width:
        return text
    if width <= 1:
        return text[:width]
    head = (width - 1) // 3 if keep_end else (width - 1) * 2 // 3
    return text[:head] + _ELLIPSIS + text[len(text) - (width - 1 - head):]


_KEY = re.compile(r"(?<![\w.])([A-Za-z])[A-Za-z_]*=")


def abbreviate(test_id: str) -> str:
    """Parameter names cut to their first letter: ``[lambda-concurrency=16]`` reads
    ``[lambda-c=16]`` (used only where the shortened ids stay distinct)."""
    return _KEY.sub(r"\1=", test_id)


def shorten_unique(texts: Sequence[str], width: int) -> list[str]:
    """Each text shortened to ``width``, or less short where that would make two distinct texts
    read the same: the shortening is never ambiguous."""
    out = [shorten(t, width) for t in texts]
    distinct = len(set(texts))
    w = width
    while len(set(out)) < distinct:
        w += 1
        counts: dict[str, int] = {}
        for s in out:
            counts[s] = counts.get(s, 0) + 1
        clash = {s for s, n in counts.items() if n > 1}
        out = [shorten(t, w) if s in clash else s for t, s in zip(texts, out, strict=True)]
    return out


@dataclass(frozen=True)
class _Column:
    header: str
    cell: Callable[[Entry], str]
    right: bool = True
    shrinks: bool = False  # a text column that gives way when the table is too wide
    keeps: int = 0  # how many characters longer than others it stays while they give way


def _verdict(e: Entry) -> str:
    return "INVALID" if not e.valid else overall_verdict(v.outcome for v in e.slo)


def _success(e: Entry) -> str:
    ratio = e.success_ratio
    if math.isnan(ratio):
        return "n/a"
    if ratio >= 1:
        return "100%"
    return f"{math.floor(ratio * 1000) / 10:.1f}%"  # 99.96% is not 100%


def _latency(name: str) -> Callable[[Entry], str]:
    return lambda e: format_value("latency", e.latency_s[name].value)


def _cold(e: Entry) -> str:
    cold = e.cold_starts
    if cold is None or cold.count == 0:
        return "-"
    return format_value("latency", cold.latency_p50_s)


def _cold_count(e: Entry) -> str:
    cold = e.cold_starts
    return "-" if cold is None or cold.count == 0 else str(cold.count)


def _cost(e: Entry) -> str:
    return "-" if e.cost is None else format_value("usd", e.cost.usd_per_million)


def _lag(e: Entry) -> str:
    lag = e.schedule_lag
    return "-" if lag is None else format_value("latency", lag.p99_s)


def _errors(e: Entry) -> str:
    return ",".join(f"{k}:{n}" for k, n in sorted(e.errors.items(), key=lambda kv: -kv[1])) \
        or "-"


def _columns(entries: Sequence[Entry], *, verbose: bool) -> list[_Column]:
    cols = [
        _Column("target", lambda e: e.target, right=False, shrinks=True),
        # The workload names the sweep's point (c=16): it keeps more than the target.
        _Column("workload", lambda e: str(e.workload.get("str", "")), right=False,
                shrinks=True, keeps=6),
        _Column("n", lambda e: str(e.count)),
        _Column("p50", _latency("p50")),
    ]
    if verbose:
        cols += [_Column("p90", _latency("p90")), _Column("p99", _latency("p99")),
                 _Column("p99.9", _latency("p999")), _Column("max", _latency("max"))]
    else:
        cols.append(_Column("p99", _latency("p99")))
    cols += [_Column("throughput", lambda e: format_value("throughput", e.throughput)),
             _Column("ok", _success)]
    if verbose:
        cols.append(_Column("errors", _errors, right=False))
    if any(e.cold_starts is not None and e.cold_starts.count for e in entries):
        cols.append(_Column("cold p50", _cold))
        if verbose:
            cols.append(_Column("cold n", _cold_count))
    if any(e.cost is not None for e in entries):
        cols.append(_Column("$/M req", _cost))
    if any(e.schedule_lag is not None for e in entries):
        cols.append(_Column("lag p99", _lag))
    cols.append(_Column("SLO", _verdict, right=False))
    return cols


def _split(nodeid: str) -> tuple[str, str, str]:
    """(module, function, parameters) of a node id; the parameters keep their brackets."""
    module, sep, test = nodeid.partition("::")
    if not sep:
        module, test = "", nodeid
    function, bracket, params = test.partition("[")
    return module, function, bracket + params


def _test_id(e: Entry, *, in_function: bool) -> str:
    """The test's id under its module heading (under its function's heading when
    ``in_function``); a test that ran one workload on one target several times numbers its
    results (#2, #3...), as the history keys them."""
    _, function, params = _split(e.nodeid)
    test = params if in_function else function + params
    repeat = e.identity.get("repeat")
    return f"{test} #{int(repeat) + 1}" if isinstance(repeat, int) and repeat else test


@dataclass(frozen=True)
class _Line:
    text: str
    entry: Entry | None = None  # None: a heading (a module, a parametrized function)


def _layout(entries: Sequence[Entry], *, verbose: bool) -> list[_Line]:
    """Headings and rows: modules in the order their tests ran (a sweep reads 1, 4, 16, not
    1, 16, 4); a function with several parametrized rows gets a heading of its own and its
    rows show their parameters only. The wide table keeps every id whole."""
    if verbose:
        return [_Line(e.nodeid, e) for e in entries]
    modules: dict[str, list[Entry]] = {}
    for e in entries:
        modules.setdefault(_split(e.nodeid)[0], []).append(e)
    out: list[_Line] = []
    for module, group in modules.items():
        out.append(_Line(module or "(no module)"))
        by_function: dict[str, list[Entry]] = {}
        for e in group:
            by_function.setdefault(_split(e.nodeid)[1], []).append(e)
        for function, rows in by_function.items():
            if len(rows) > 1:
                out.append(_Line(_INDENT + function))
                # A test's results without parameters are numbered in the order it ran them.
                out += [_Line(_INDENT * 2 + (_test_id(e, in_function=True)
                                             if _split(e.nodeid)[2] else f"#{k}"), e)
                        for k, e in enumerate(rows, 1)]
            else:
                out += [_Line(_INDENT + _test_id(e, in_function=False), e) for e in rows]
    return out


def _shorten_ids(lines: list[_Line], width: int, *, abbreviated: bool = False) -> list[_Line]:
    """Each row's id shortened to ``width`` (indent included), unambiguously among the rows
    under the same heading; ``abbreviated``: parameter names first cut to a letter where the
    ids stay distinct."""
    out = list(lines)
    block: list[int] = []

    def flush() -> None:
        if not block:
            return
        indent = len(out[block[0]].text) - len(out[block[0]].text.lstrip())
        texts = [out[i].text[indent:] for i in block]
        if abbreviated:
            abbreviations = [abbreviate(t) for t in texts]
            if len(set(abbreviations)) == len(set(texts)):
                texts = abbreviations
        for i, text in zip(block, shorten_unique(texts, max(1, width - indent)), strict=True):
            out[i] = _Line(out[i].text[:indent] + text, out[i].entry)
        block.clear()

    for i, ln in enumerate(out):
        if ln.entry is None:
            flush()
        else:
            block.append(i)
    flush()
    return out


def render_summary(entries: Sequence[Entry], *, width: int = DEFAULT_WIDTH,
                   verbose: bool = False) -> list[str]:
    """The results table, grouped by module: test, target, workload, n, p50, p99, throughput,
    success share, cold start (p50 and count) and $ per million requests when any result has
    them, schedule lag when a run followed a schedule, and the SLO verdict (``pass``, ``fail``,
    ``inconclusive``; ``-`` when nothing was judged; ``INVALID`` when the load generator fell
    behind). Then a line for each INVALID run and each run with timed-out requests.

    The table fits ``width`` columns unless even the shortest unambiguous ids do not;
    ``verbose`` gives the wide table: whole ids, p90, p99.9, max and the errors by kind."""
    cols = _columns(entries, verbose=verbose)
    cells = {id(e): [c.cell(e) for c in cols] for e in entries}
    widths = [max(len(c.header), *(len(cells[id(e)][i]) for e in entries))
              for i, c in enumerate(cols)]
    lines = _layout(entries, verbose=verbose)
    gaps = _gaps(cols, verbose=verbose)

    def id_width() -> int:
        return max([len("test"), *(len(ln.text) for ln in lines if ln.entry is not None)])

    if not verbose:
        if id_width() + sum(widths) + sum(map(len, gaps)) > width:
            lines = _shorten_ids(lines, id_width(), abbreviated=True)
        planned, widths = _fit(width, id_width(), widths, cols, shrink_id=True)
        lines = _shorten_ids(lines, planned)
        if id_width() > planned:  # unambiguous ids needed more: the text columns give way
            _, widths = _fit(width, id_width(), widths, cols, shrink_id=False)
        for i, c in enumerate(cols):
            if c.shrinks:
                for e in entries:
                    cells[id(e)][i] = shorten(cells[id(e)][i], widths[i], keep_end=False)
    first = id_width()

    def row(head: str, values: Sequence[str]) -> str:
        parts = [head.ljust(first)]
        parts += [gap + (v.rjust(w) if col.right else v.ljust(w))
                  for v, w, col, gap in zip(values, widths, cols, gaps, strict=True)]
        return "".join(parts).rstrip()

    out = [row("test", [c.header for c in cols]), row("-" * first, ["-" * w for w in widths])]
    out += [row(ln.text, cells[id(ln.entry)]) if ln.entry is not None else ln.text
            for ln in lines]
    for e in entries:
        if not e.valid:
            out.append(f"{e.nodeid}: INVALID: {e.invalid_reason}; its latency and "
                       "throughput verdicts are inconclusive")
        if e.censored:
            out.append(f"{e.nodeid}: {e.censored} request(s) timed out; they count in "
                       f"the latency percentiles at no less than the timeout "
                       f"({format_value('latency', e.timeout_s or math.nan)})")
    return out


def _gaps(cols: Sequence[_Column], *, verbose: bool) -> list[str]:
    """The space before each column: one between two numbers (right-aligned, they stay apart)
    in the narrow table, two elsewhere."""
    return [" " if not verbose and i > 0 and c.right and cols[i - 1].right else _GAP
            for i, c in enumerate(cols)]


def _fit(width: int, id_width: int, widths: list[int], cols: Sequence[_Column], *,
         shrink_id: bool) -> tuple[int, list[int]]:
    """Narrow the id (when ``shrink_id``) and the text columns, widest first, until a row fits
    ``width``."""
    widths = list(widths)
    shrinkable = [i for i, c in enumerate(cols) if c.shrinks]

    gaps = sum(map(len, _gaps(cols, verbose=False)))

    def total() -> int:
        return id_width + sum(widths) + gaps

    def floor(i: int) -> int:
        return max(_MIN_TEXT, len(cols[i].header)) if i >= 0 else _MIN_TEXT

    while total() > width:
        candidates = [(w, i) for w, i in [*([(id_width, -1)] if shrink_id else []),
                                          *((widths[i], i) for i in shrinkable)]
                      if w > floor(i)]
        if not candidates:
            break
        # The id says which case a row is: the target and workload columns give way first.
        _, i = max(candidates,
                   key=lambda c: c[0] - (_ID_PRIORITY if c[1] < 0 else cols[c[1]].keeps))
        if i < 0:
            id_width -= 1
        else:
            widths[i] -= 1
    return id_width, widths


# --- server bills --------------------------------------------------------------------------

_LAUNCH_TOLERANCE_S = 0.01  # a profile keeps its launch time to the millisecond


@dataclass
class _Server:
    name: str
    backend: str
    usd_per_hour: float
    bill: ServerBill | None = None
    per_million: tuple[float, ...] = ()


def _servers(entries: Sequence[Entry], bills: Sequence[ServerBill]) -> list[_Server]:
    """One row per server: its results' priced entries (a server is one launch of a target),
    then the bills of servers already terminated, which replace the bill a result could give
    (launch to its last run) or stand alone (a server nothing was measured on)."""
    rows: dict[tuple[str, float | None], _Server] = {}
    for e in entries:
        cost = e.cost
        if cost is None or cost.usd_per_hour is None:
            continue
        bill = cost.server_bill
        key = (e.target, None if bill is None else bill.launched_unix)
        row = rows.setdefault(key, _Server(e.target, e.backend, cost.usd_per_hour))
        row.per_million += (cost.usd_per_million,)
        if bill is not None and (row.bill is None or bill.ended_unix > row.bill.ended_unix):
            row.bill = bill
    for bill in bills:
        match = next((r for (name, launched), r in rows.items() if name == bill.name
                      and launched is not None
                      and abs(launched - bill.launched_unix) <= _LAUNCH_TOLERANCE_S), None)
        if match is None:
            rows[(bill.name, bill.launched_unix)] = _Server(bill.name, "", bill.usd_per_hour,
                                                            bill)
        else:
            match.bill = bill
    return list(rows.values())


def render_bills(entries: Sequence[Entry], *, bills: Sequence[ServerBill] = (),
                 width: int = DEFAULT_WIDTH) -> list[str]:
    """What each server target cost: its hourly price, how long it was billed (from launch to
    its termination, or to the end of its last run while it still ran), the bill, and its
    cost per million requests at the throughputs measured on it; ``bills`` are servers
    already terminated (a backend's ``bills``). Empty when no result ran on a priced server.

    A server's bill is known where its backend records its launch (``launched_unix`` in the
    target's profile); elsewhere the row gives its hourly price and per million alone."""
    servers = _servers(entries, bills)
    if not servers:
        return []
    header = ["server", "$/h", "billed", "until", "bill", "$/M req"]
    rows = []
    for srv in servers:
        bill = srv.bill
        low, high = (min(srv.per_million), max(srv.per_million)) if srv.per_million else (0, 0)
        per_million = ("-" if not srv.per_million else format_value("usd", low)
                       if math.isclose(low, high) else
                       f"{format_value('usd', low)}..{format_value('usd', high)}")
        rows.append([srv.name, f"{srv.usd_per_hour:g}",
                     "-" if bill is None else f"{bill.billed_s:.0f} s",
                     "-" if bill is None else ("termination" if bill.terminated
                                               else "its last run"),
                     "-" if bill is None else f"${bill.usd:.4f}", per_million])
    fixed = sum(max(len(h), *(len(r[i]) for r in rows)) + len(_GAP)
                for i, h in enumerate(header) if i > 0)
    names = shorten_unique([r[0] for r in rows], max(_MIN_TEXT, width - fixed))
    for row, name in zip(rows, names, strict=True):
        row[0] = name
    out = format_table(header, rows, right=[1, 2, 4, 5])
    if any(s.bill is not None and not s.bill.terminated for s in servers):
        out.append("its last run: the server was still running when its last result was "
                   "priced; it is billed on until terminated")
    unknown = sorted({s.backend for s in servers if s.bill is None})
    if unknown:
        which = (f"the {unknown[0]} backend records" if len(unknown) == 1
                 else f"the {', '.join(unknown)} backends record")
        out.append(f"-: {which} no launch time: the hourly price and per million only")
    return out
