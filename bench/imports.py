"""CSV imports at 1,000,000 rows: contacts, then orders for them. Target (issue 3): ≤ 120 s per file.

The files carry the bad input the issue names (duplicate keys, bad genders, bad dates, unknown contacts,
short rows); the job must finish and its report must list exactly those lines. Each import runs the real job
(``tagging.bulk.bulk_job_run``: parse → COPY into a staging table → set-based checks and upserts). The
baseline, measured in the same run, is the floor: a bare ``COPY`` of the same file into an unindexed table.

Runs in a fresh database (``python -m bench.imports measure`` in a child process).
"""

import csv
import sys
import tempfile
import time
from pathlib import Path

from bench import server

FULL_ROWS = 1_000_000
TINY_ROWS = 3_000


def run(*, tiny: bool) -> bool:
    rows = TINY_ROWS if tiny else FULL_ROWS
    with server.django_database("imp") as env, tempfile.TemporaryDirectory(prefix="scrm-bench-imp-") as tmp:
        env["TAGGING_IMPORT_DIR"] = tmp
        return server.measure_child("bench.imports", [rows, tmp], env, passed="imports correctness     PASS",
                                    timeout=3600)


def _write_files(rows: int, folder: Path) -> tuple[Path, Path, set[int], set[int]]:
    """contacts.csv and orders.csv with a bad row every 10,000 lines (and a few at tiny scale)."""
    every = max(rows // 100, 10) if rows < 100_000 else 10_000
    bad_contacts: set[int] = set()
    bad_orders: set[int] = set()
    contacts = folder / "contacts.csv"
    with contacts.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["external_userid", "name", "gender", "city", "age_band", "occupation"])
        for i in range(rows):
            line = i + 2
            if i % every == every - 1:
                kind = (i // every) % 3
                bad_contacts.add(line)
                if kind == 0:
                    w.writerow([f"wmImp{i - 1:020d}", "重复", "1", "", "", ""])  # duplicate of the line above
                elif kind == 1:
                    w.writerow([f"wmImp{i:020d}", "性别错", "7", "", "", ""])
                else:
                    w.writerow([f"wmImp{i:020d}", "少一列"])
                continue
            w.writerow([f"wmImp{i:020d}", f"客户{i}", str(i % 3), "上海" if i % 2 else "", "25-34", ""])
    orders = folder / "orders.csv"
    with orders.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["external_id", "external_userid", "amount", "paid_at", "items"])
        for i in range(rows):
            line = i + 2
            if i % every == every - 1:
                kind = (i // every) % 3
                bad_orders.add(line)
                if kind == 0:
                    w.writerow([f"O{i}", f"wmImp{i:020d}", "12.50", "昨天", ""])
                elif kind == 1:
                    w.writerow([f"O{i}", "wmNobody", "12.50", "2026-03-01T10:00:00+08:00", ""])
                else:
                    w.writerow([f"O{i - 1}", f"wmImp{i - 1:020d}", "9", "2026-03-01T10:00:00+08:00", ""])
                continue
            contact = i if i % every != every - 1 else i - 1
            contact = contact if (contact % every) != every - 1 else contact - 1
            w.writerow([f"O{i}", f"wmImp{contact:020d}", f"{(i % 500) + 0.5:.2f}",
                        f"2026-0{1 + i % 9}-1{i % 10}T10:00:00+08:00", "课程A|课程B" if i % 4 == 0 else ""])
    return contacts, orders, bad_contacts, bad_orders


def measure(rows: int, folder: str) -> None:
    import django

    django.setup()
    from django.db import connection

    from tagging import bulk
    from tagging.models import BulkJob

    contacts_csv, orders_csv, bad_contacts, bad_orders = _write_files(rows, Path(folder))
    ok = True
    lines = []
    for label, path, kind, bad in (("contacts", contacts_csv, BulkJob.Kind.IMPORT_CONTACTS, bad_contacts),
                                   ("orders", orders_csv, BulkJob.Kind.IMPORT_ORDERS, bad_orders)):
        with connection.cursor() as cur:
            cur.execute("CREATE TEMP TABLE bare_copy (line text)")  # each line whole: the floor
            t = time.perf_counter()
            with path.open(encoding="utf-8") as f:
                cur.copy_expert("COPY bare_copy FROM STDIN", f)
            bare = time.perf_counter() - t
            cur.execute("DROP TABLE bare_copy")
        job = BulkJob.objects.create(kind=kind, source_file=str(path))
        t = time.perf_counter()
        bulk.bulk_job_run(job_id=job.pk)
        elapsed = time.perf_counter() - t
        job.refresh_from_db()
        reported = {int(r[0]) for r in list(bulk.job_report_rows(job=job))[1:]}
        right = job.status == "done" and reported == bad and job.accepted == rows - len(bad)
        ok = ok and right
        lines.append((label, rows, job.accepted, job.rejected, elapsed, bare, right))
    print(f"  {'import':<10} {'rows':>9} {'accepted':>9} {'rejected':>8} {'time':>9} {'bare COPY':>10} "
          f"{'ratio':>6}  target")
    for label, n, accepted, rejected, elapsed, bare, right in lines:
        met = "MET" if elapsed <= 120 else "NOT MET"
        print(f"  {label:<10} {n:>9} {accepted:>9} {rejected:>8} {elapsed:>7.1f} s {bare:>8.1f} s "
              f"{elapsed / max(bare, 0.001):>5.1f}x  <= 120 s {met}{'' if right else '  WRONG REPORT'}")
    print(f"  imports correctness     {'PASS' if ok else 'FAIL'} (every bad line reported with a reason, "
          "the rest imported)")


if __name__ == "__main__" and sys.argv[1:2] == ["measure"]:
    measure(int(sys.argv[2]), sys.argv[3])
