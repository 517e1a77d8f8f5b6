"""Compares the answers of two batch runs as whole tables.

Owns: deciding whether two results folders hold the same Q1-Q8 answers. Fed by: pinpipe's batch
job (`pinpipe batch --out A`) and the PySpark job (`batch_job.py --out B`), or any two runs.
Feeds: the differential test (`tests/differential.rs`) and `pinpipe bench batch`.

Every `q*.csv` must exist on both sides with the same header and the same rows in the same
order. Cells are equal when their text is equal, or when both read as numbers within 1e-9
relative tolerance (so `1500` equals `1500.0`, and a median computed another way still
matches). An empty cell and a missing trailing cell are both NULL. With `--tables`, the cleaned
tables `pin`, `geo`, `user` (`<name>.parquet`, a file or a Spark folder) are compared too, row by
row in `ind` order.

Usage: python compare.py A B [--tables]   (exit 0: equal; 1: different, with the first
differences printed; 2: a folder or file could not be read)
"""

import argparse
import csv
import datetime
import math
import os
import sys

QUERIES = ["q1", "q2", "q3a", "q3b", "q4", "q5", "q6", "q7", "q8"]
TABLES = ["pin", "geo", "user"]
REL_TOL = 1e-9
SHOW = 10


def number(text):
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def same_value(a, b):
    """Equal text, both NULL, or numbers within the tolerance (recursing into lists)."""
    if a == b:
        return True
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b))
    if isinstance(a, datetime.datetime) and isinstance(b, datetime.datetime):
        return a.replace(tzinfo=None) == b.replace(tzinfo=None) and (
            a.utcoffset() in (None, datetime.timedelta(0)) and b.utcoffset() in (None, datetime.timedelta(0)))
    if isinstance(a, bool) or isinstance(b, bool):
        return False
    x = a if isinstance(a, (int, float)) else number(a) if isinstance(a, str) else None
    y = b if isinstance(b, (int, float)) else number(b) if isinstance(b, str) else None
    if x is None or y is None:
        return False
    return math.isclose(x, y, rel_tol=REL_TOL, abs_tol=0.0)


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    if not rows:
        return [], []
    header, body = rows[0], rows[1:]
    width = len(header)
    return header, [row + [""] * (width - len(row)) for row in body]


def compare_rows(name, columns, a_rows, b_rows, a_label, b_label):
    """The differences between two row lists (already in their order), as printable lines."""
    out = []
    if len(a_rows) != len(b_rows):
        out.append(f"{name}: {len(a_rows)} rows in {a_label}, {len(b_rows)} rows in {b_label}")
    shown = 0
    for i, (ra, rb) in enumerate(zip(a_rows, b_rows)):
        if len(ra) == len(rb) and all(same_value(x, y) for x, y in zip(ra, rb)):
            continue
        if shown < SHOW:
            cols = [c for c, x, y in zip(columns, ra, rb) if not same_value(x, y)]
            out.append(f"{name} row {i + 1} differs in {', '.join(cols) or 'width'}:")
            out.append(f"  {a_label}: {list(ra)}")
            out.append(f"  {b_label}: {list(rb)}")
        shown += 1
    longer, label = (a_rows, a_label) if len(a_rows) > len(b_rows) else (b_rows, b_label)
    for i in range(min(len(a_rows), len(b_rows)), len(longer)):
        if shown < SHOW:
            out.append(f"{name} row {i + 1} only in {label}: {list(longer[i])}")
        shown += 1
    if shown > SHOW:
        out.append(f"{name}: {shown - SHOW} more differing rows not shown")
    return out


def compare_queries(a, b):
    diffs = []
    for name in QUERIES:
        pa, pb = os.path.join(a, f"{name}.csv"), os.path.join(b, f"{name}.csv")
        missing = [p for p in (pa, pb) if not os.path.isfile(p)]
        if missing:
            diffs.append(f"{name}: missing {', '.join(missing)}")
            continue
        ha, ra = read_csv(pa)
        hb, rb = read_csv(pb)
        if ha != hb:
            diffs.append(f"{name}: header {ha} in A, {hb} in B")
            continue
        diffs += compare_rows(name, ha, ra, rb, "A", "B")
    return diffs


def read_table(folder, name):
    """The table `<name>.parquet` (a file, or a Spark folder of part files), sorted by ind."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = os.path.join(folder, f"{name}.parquet")
    if os.path.isdir(path):
        parts = sorted(os.path.join(path, p) for p in os.listdir(path) if p.endswith(".parquet"))
        table = pa.concat_tables([pq.read_table(p) for p in parts])
    else:
        table = pq.read_table(path)
    return table.sort_by([("ind", "ascending")])


def arrow_equal(sa, sb):
    """Fast path: the slices are identical once B is cast to A's types (nullability aside)."""
    import pyarrow as pa

    if sa.num_rows != sb.num_rows:
        return False
    try:
        schema = pa.schema([f.with_nullable(True) for f in sa.schema])
        sa = pa.Table.from_arrays(sa.columns, schema=schema)
        sb = pa.Table.from_arrays(sb.columns, names=sb.column_names).cast(schema)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return False
    return sa.equals(sb)


def compare_tables(a, b):
    """Row by row in ind order, a slice at a time so a million rows stay cheap."""
    diffs = []
    step = 50_000
    for name in TABLES:
        try:
            ta, tb = read_table(a, name), read_table(b, name)
        except (OSError, ValueError) as error:
            diffs.append(f"{name}: cannot read the table: {error}")
            continue
        if ta.column_names != tb.column_names:
            diffs.append(f"{name}: columns {ta.column_names} in A, {tb.column_names} in B")
            continue
        columns = ta.column_names
        if ta.num_rows != tb.num_rows:
            diffs.append(f"{name}: {ta.num_rows} rows in A, {tb.num_rows} rows in B")
        shown = 0
        for offset in range(0, max(ta.num_rows, tb.num_rows), step):
            if arrow_equal(ta.slice(offset, step), tb.slice(offset, step)):
                continue
            ra = [[r[c] for c in columns] for r in ta.slice(offset, step).to_pylist()]
            rb = [[r[c] for c in columns] for r in tb.slice(offset, step).to_pylist()]
            for i in range(max(len(ra), len(rb))):
                if i < len(ra) and i < len(rb):
                    if all(same_value(x, y) for x, y in zip(ra[i], rb[i])):
                        continue
                    if shown < SHOW:
                        cols = [c for c, x, y in zip(columns, ra[i], rb[i]) if not same_value(x, y)]
                        diffs.append(f"{name} row {offset + i + 1} (by ind) differs in {', '.join(cols)}:")
                        diffs.append(f"  A: {ra[i]}")
                        diffs.append(f"  B: {rb[i]}")
                elif shown < SHOW:
                    side, row = ("A", ra[i]) if i < len(ra) else ("B", rb[i])
                    diffs.append(f"{name} row {offset + i + 1} (by ind) only in {side}: {row}")
                shown += 1
        if shown > SHOW:
            diffs.append(f"{name}: {shown - SHOW} more differing rows not shown")
    return diffs


def main(argv):
    parser = argparse.ArgumentParser(description="Compare two batch results folders.")
    parser.add_argument("a")
    parser.add_argument("b")
    parser.add_argument("--tables", action="store_true", help="also compare the cleaned tables")
    args = parser.parse_args(argv)
    for folder in (args.a, args.b):
        if not os.path.isdir(folder):
            print(f"not a folder: {folder}", file=sys.stderr)
            return 2
    diffs = compare_queries(args.a, args.b)
    if args.tables:
        diffs += compare_tables(args.a, args.b)
    if diffs:
        print(f"A = {args.a}\nB = {args.b}")
        print("\n".join(diffs))
        return 1
    checked = "Q1-Q8" + (" and the cleaned tables" if args.tables else "")
    print(f"equal: {checked} of {args.a} and {args.b}")
    return 0


if __name__ == "__main__":
    code = main(sys.argv[1:])
    # pyarrow's thread pools can abort the interpreter's normal exit ("terminate called without an
    # active exception", apache/arrow#34314), turning an answer into a crash: leave without it.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
