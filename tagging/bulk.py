"""Bulk jobs on the bulk queue: tag/untag many contacts, and CSV imports of contacts, orders, entitlements.

A bad row never aborts the file and never disappears: it goes to the job's rejected-rows report (line,
reason, the raw row) which the page offers for download. Files may be UTF-8 (with or without BOM) or GBK /
GB18030 as Excel writes them in China. Progress (processed / total) is saved after every batch.
"""

import csv
import io
import json
import logging
import uuid
from collections.abc import Iterator
from decimal import Decimal, InvalidOperation
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import connection, transaction

from contacts import business
from contacts.timezones import time_zone_clean
from scrm.clock import now
from scrm.errors import ApplicationError
from tagging import segments, services
from tagging.models import BulkJob, ContactTag

logger = logging.getLogger(__name__)

BATCH = 5000
COLUMNS = {
    BulkJob.Kind.IMPORT_CONTACTS: (["external_userid"], ["name", "gender", "city", "age_band", "occupation",
                                                         "time_zone"]),
    BulkJob.Kind.IMPORT_ORDERS: (["external_id", "external_userid", "amount", "paid_at"], ["items"]),
    BulkJob.Kind.IMPORT_ENTITLEMENTS: (["external_id", "external_userid", "kind"], ["name", "status", "expires_at"]),
}
KEY_COLUMN = {BulkJob.Kind.IMPORT_CONTACTS: "external_userid", BulkJob.Kind.IMPORT_ORDERS: "external_id",
              BulkJob.Kind.IMPORT_ENTITLEMENTS: "external_id"}


def _dir() -> Path:
    path = Path(settings.TAGGING_IMPORT_DIR)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _enqueue(job: BulkJob) -> None:
    from tagging.tasks import bulk_job_run

    transaction.on_commit(lambda: bulk_job_run.delay(job.pk))


# --- starting jobs -------------------------------------------------------------------------------------------------
def bulk_tag_start(*, user, action: str, tag_ids: list[int], contact_ids: list[int] | None = None,
                   expression=None, filters: dict | None = None) -> BulkJob:
    """``contact_ids`` (selected rows), ``expression`` (a segment) or ``filters`` (everything the contact list
    shows for these filters: q, staff, customers_only, tag), resolved for the user when the job runs."""
    services.tags_check_exist(tag_ids=tag_ids)
    if not contact_ids and expression is None and filters is None:
        raise ApplicationError("Choose contacts or a segment expression.")
    if filters is not None:
        filters = {k: filters.get(k) for k in ("q", "staff", "customers_only", "tag")}
        if filters["tag"]:
            services.tags_check_exist(tag_ids=[int(filters["tag"])])
    if expression is not None:
        segments.expression_parse(expression)
    job = BulkJob.objects.create(kind=BulkJob.Kind.TAG if action == "tag" else BulkJob.Kind.UNTAG, created_by=user,
                                 params={"tag_ids": tag_ids, "contact_ids": contact_ids or [],
                                         "expression": expression, "filters": filters})
    _enqueue(job)
    return job


def import_start(*, user, kind: str, upload) -> BulkJob:
    job_kind = {"contacts": BulkJob.Kind.IMPORT_CONTACTS, "orders": BulkJob.Kind.IMPORT_ORDERS,
                "entitlements": BulkJob.Kind.IMPORT_ENTITLEMENTS}[kind]
    path = _dir() / f"{uuid.uuid4().hex}.csv"
    with path.open("wb") as out:
        for chunk in upload.chunks():
            out.write(chunk)
    return import_start_from_path(user=user, kind=job_kind, path=path)


def import_start_from_path(*, user, kind: str, path: Path) -> BulkJob:
    job = BulkJob.objects.create(kind=kind, created_by=user, source_file=str(path))
    _enqueue(job)
    return job


# --- running -------------------------------------------------------------------------------------------------------
def bulk_job_run(*, job_id: int) -> str:
    """Run a queued job (claimed with a conditional update, so a redelivered task does nothing)."""
    claimed = BulkJob.objects.filter(pk=job_id, status=BulkJob.Status.QUEUED).update(
        status=BulkJob.Status.RUNNING, updated_at=now())
    if not claimed:
        return "not queued"
    job = BulkJob.objects.get(pk=job_id)
    try:
        if job.kind in (BulkJob.Kind.TAG, BulkJob.Kind.UNTAG):
            _run_bulk_tag(job)
        else:
            _run_import(job)
    except Exception as exc:
        logger.exception("bulk job %s failed", job.pk)
        BulkJob.objects.filter(pk=job.pk).update(status=BulkJob.Status.FAILED, last_error=str(exc)[:255],
                                                 finished_at=now())
        raise
    BulkJob.objects.filter(pk=job.pk).update(status=BulkJob.Status.DONE, finished_at=now())
    return "done"


def _progress(job: BulkJob, **fields) -> None:
    for key, value in fields.items():
        setattr(job, key, value)
    BulkJob.objects.filter(pk=job.pk).update(updated_at=now(), **fields)


def _run_bulk_tag(job: BulkJob) -> None:
    params = job.params
    if params.get("expression") is not None:
        ids = list(segments.segment_member_ids(user=job.created_by, expression=params["expression"]))
    elif params.get("filters") is not None:
        from tagging.selectors import contact_ids_matching

        ids = contact_ids_matching(user=job.created_by, filters=params["filters"])
    else:
        from contacts.selectors import contact_visible_ids

        ids = sorted(contact_visible_ids(user=job.created_by, contact_ids=params["contact_ids"])) \
            if job.created_by else sorted(set(params["contact_ids"]))
    _progress(job, total=len(ids))
    done = changed = 0
    for start in range(0, len(ids), BATCH):
        batch = ids[start:start + BATCH]
        if job.kind == BulkJob.Kind.TAG:
            changed += services.tags_apply(contact_ids=batch, tag_ids=params["tag_ids"],
                                           source=ContactTag.Source.MANUAL, source_ref=f"job:{job.pk}",
                                           set_by=job.created_by)
        else:
            changed += services.tags_remove(contact_ids=batch, tag_ids=params["tag_ids"])
        done += len(batch)
        _progress(job, processed=done, accepted=changed)


def _open_text(path: Path) -> io.TextIOWrapper:
    """UTF-8 (BOM or not) when the start decodes as UTF-8, else GB18030 (a superset of GBK)."""
    raw = path.open("rb")
    head = raw.read(65536)
    raw.seek(0)
    encoding = "utf-8-sig"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # not just a character cut at the sample's end
            encoding = "gb18030"
    return io.TextIOWrapper(raw, encoding=encoding, errors="replace", newline="")


class _Report:
    def __init__(self, job: BulkJob) -> None:
        self.path = _dir() / f"job-{job.pk}-rejected.csv"
        self.file = self.path.open("w", encoding="utf-8-sig", newline="")
        self.writer = csv.writer(self.file)
        self.writer.writerow(["line", "reason", "row"])
        self.count = 0

    def reject(self, line: int, reason: str, row: list[str] | dict) -> None:
        values = list(row.values()) if isinstance(row, dict) else row
        self.writer.writerow([line, reason, *[str(v) if v is not None else "" for v in values]])
        self.count += 1

    def close(self) -> None:
        self.file.close()


STAGE_CHUNK = 100_000  # rows per COPY round trip (and per progress update)
_STAGE_COLUMNS = {
    BulkJob.Kind.IMPORT_CONTACTS: "line int, key text, name text, gender smallint, city text, age_band text, "
                                  "occupation text, time_zone text",
    BulkJob.Kind.IMPORT_ORDERS: "line int, key text, external_userid text, amount numeric(12,2), "
                                "paid_at timestamptz, items jsonb",
}


def _run_import(job: BulkJob) -> None:
    """Contacts and orders: parse and check each row in Python (cheap, streaming), COPY the good rows into a
    session temp table, then validate across rows (duplicates, unknown contacts) and upsert set-based in
    SQL. Entitlements (small files) go through the batched ORM path."""
    required, optional = COLUMNS[job.kind]
    key = KEY_COLUMN[job.kind]
    report = _Report(job)
    BulkJob.objects.filter(pk=job.pk).update(report=str(report.path))
    staged = job.kind in _STAGE_COLUMNS
    try:
        with Path(job.source_file).open("rb") as counter:
            total = max(0, sum(1 for _ in counter) - 1)
        _progress(job, total=total)
        if staged:
            _stage_create(job)
        with _open_text(Path(job.source_file)) as text:
            reader = csv.reader(text)
            header = [h.strip().lower() for h in next(reader, [])]
            missing = [c for c in required if c not in header]
            seen: dict[str, int] = {}
            batch: list[tuple[int, dict]] = []
            processed = accepted = 0
            for line, values in enumerate(reader, start=2):
                processed += 1
                if missing:
                    report.reject(line, f"missing column(s): {', '.join(missing)}", values)
                elif any("\ufffd" in v for v in values):
                    report.reject(line, "not valid UTF-8 or GBK text", values)
                elif len(values) != len(header):
                    report.reject(line, f"{len(values)} values for {len(header)} columns", values)
                else:
                    row = dict(zip(header, (v.strip() for v in values), strict=True))
                    empty = [c for c in required if not row.get(c)]
                    if empty:
                        report.reject(line, f"empty required value(s): {', '.join(empty)}", values)
                    elif staged:
                        batch.append((line, row))  # duplicates are found set-based after the COPY
                    elif row[key] in seen:
                        report.reject(line, f"duplicate {key} {row[key]!r} (first on line {seen[row[key]]})",
                                      values)
                    else:
                        seen[row[key]] = line
                        batch.append((line, row))
                if len(batch) >= (STAGE_CHUNK if staged else BATCH):
                    if staged:
                        _stage_copy(job, batch, report)
                    else:
                        accepted += _import_batch(job, batch, report)
                    batch = []
                    _progress(job, processed=processed, accepted=accepted, rejected=report.count)
            if batch:
                if staged:
                    _stage_copy(job, batch, report)
                else:
                    accepted += _import_batch(job, batch, report)
            if staged:
                accepted = _stage_apply(job, report)
            _progress(job, processed=processed, accepted=accepted, rejected=report.count)
    finally:
        report.close()
        if staged:
            with connection.cursor() as cur:
                cur.execute("DROP TABLE IF EXISTS import_stage")


def _stage_create(job: BulkJob) -> None:
    with connection.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS import_stage")
        cur.execute(f"CREATE TEMP TABLE import_stage ({_STAGE_COLUMNS[job.kind]})")


def _copy_text(value) -> str:
    if value is None:
        return r"\N"
    return str(value).replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def _stage_copy(job: BulkJob, batch: list[tuple[int, dict]], report: _Report) -> None:
    """Per-row checks that need no other row, then one COPY of the rows that pass."""
    out = io.StringIO()
    for line, row in batch:
        try:
            if any("\x00" in v for v in row.values()):
                raise ValueError("contains a NUL character")
            fields = (_contact_fields if job.kind == BulkJob.Kind.IMPORT_CONTACTS else _order_fields)(row)
        except ValueError as exc:
            report.reject(line, str(exc), row)
            continue
        out.write("\t".join([str(line), *(_copy_text(f) for f in fields)]))
        out.write("\n")
    out.seek(0)
    with connection.cursor() as cur:
        cur.copy_expert("COPY import_stage FROM STDIN", out)


def _contact_fields(row: dict) -> tuple:
    gender = row.get("gender", "") or "0"
    if gender not in ("0", "1", "2"):
        raise ValueError("gender is 0 (unknown), 1 (male) or 2 (female)")
    if len(row["external_userid"]) > 64:
        raise ValueError("external_userid is at most 64 characters")
    time_zone = None  # no time_zone column: keep what the contact has; a blank value: back to the corp's zone
    if "time_zone" in row:
        try:
            time_zone = time_zone_clean(row["time_zone"])
        except DjangoValidationError as exc:
            raise ValueError(f"time_zone {row['time_zone'][:64]!r} is not a known time zone "
                             "(an IANA name such as Asia/Tokyo)") from exc
    return (row["external_userid"], row.get("name", "")[:128], gender, row.get("city", "")[:64],
            row.get("age_band", "")[:16], row.get("occupation", "")[:64], time_zone)


def _order_fields(row: dict) -> tuple:
    external_id = row["external_id"]
    if len(external_id) > 64:
        raise ValueError("external_id is required (at most 64 characters)")
    try:
        amount = Decimal(row["amount"])
    except InvalidOperation as exc:
        raise ValueError(f"amount is not a number: {row['amount']!r}") from exc
    if not amount.is_finite() or amount < 0 or amount >= Decimal("1e10"):
        raise ValueError("amount must be between 0 and 9,999,999,999.99")
    paid_at = business.parse_when(row["paid_at"])
    items = [i for i in row.get("items", "").split("|") if i]
    return (external_id, row["external_userid"], amount.quantize(Decimal("0.01")), paid_at.isoformat(),
            json.dumps(items, ensure_ascii=False))


def _stage_apply(job: BulkJob, report: _Report) -> int:
    """Set-based: reject later duplicates (and, for orders, unknown contacts) with reasons, then upsert."""
    from contacts.services import corp_get_or_create

    corp = corp_get_or_create(corp_id=settings.WECOM_CORP_ID)
    key = KEY_COLUMN[job.kind]
    with transaction.atomic(), connection.cursor() as cur:
        cur.execute("ANALYZE import_stage")
        cur.execute("DELETE FROM import_stage s USING (SELECT key, min(line) AS first FROM import_stage "
                    "GROUP BY key HAVING count(*) > 1) d WHERE s.key = d.key AND s.line <> d.first "
                    "RETURNING s.*, d.first")
        for row in sorted(cur.fetchall()):
            report.reject(row[0], f"duplicate {key} {row[1]!r} (first on line {row[-1]})", list(row[1:-1]))
        if job.kind == BulkJob.Kind.IMPORT_CONTACTS:
            return _apply_contacts(cur, corp)
        cur.execute("DELETE FROM import_stage s WHERE NOT EXISTS (SELECT 1 FROM contacts_contact c "
                    "WHERE c.corp_id = %s AND c.external_userid = s.external_userid) RETURNING s.*", [corp.pk])
        for row in sorted(cur.fetchall()):
            report.reject(row[0], "unknown contact (give contact_id or an external_userid we know)", list(row[1:]))
        return _apply_orders(cur, corp)


def _apply_contacts(cur, corp) -> int:
    cur.execute(
        "INSERT INTO contacts_contact (corp_id, external_userid, name, avatar, type, gender, unionid, position, "
        "corp_name, corp_full_name, active_relations, time_zone, created_at, updated_at) "
        "SELECT %s, s.key, s.name, '', 1, s.gender, '', '', '', '', 0, COALESCE(s.time_zone, ''), now(), now() "
        "FROM import_stage s ORDER BY s.key ON CONFLICT (corp_id, external_userid) DO UPDATE SET "
        "name = EXCLUDED.name, gender = EXCLUDED.gender, updated_at = now()", [corp.pk])
    accepted = cur.rowcount
    # Known contacts take a time zone only from a file that has the column (NULL in the stage: no column).
    cur.execute(
        "UPDATE contacts_contact c SET time_zone = s.time_zone FROM import_stage s WHERE c.corp_id = %s "
        "AND c.external_userid = s.key AND s.time_zone IS NOT NULL AND c.time_zone <> s.time_zone RETURNING c.id",
        [corp.pk])
    moved = [r[0] for r in cur.fetchall()]
    if moved:  # their journeys' local-time waits move to the new zones (in this transaction)
        from contacts.services import contacts_time_zone_changed

        contacts_time_zone_changed(contact_ids=moved)
    cur.execute(
        "INSERT INTO contacts_contactfacts (contact_id, city, age_band, occupation, order_count, total_spent, "
        "avg_order_value, rfm_r, rfm_f, rfm_m, updated_at) "
        "SELECT c.id, s.city, s.age_band, s.occupation, 0, 0, 0, 0, 0, 0, now() FROM import_stage s "
        "JOIN contacts_contact c ON c.corp_id = %s AND c.external_userid = s.key "
        "WHERE s.city <> '' OR s.age_band <> '' OR s.occupation <> '' ORDER BY c.id "
        "ON CONFLICT (contact_id) DO UPDATE SET city = EXCLUDED.city, age_band = EXCLUDED.age_band, "
        "occupation = EXCLUDED.occupation, updated_at = now()", [corp.pk])
    return accepted


def _apply_orders(cur, corp) -> int:
    cur.execute(
        "INSERT INTO contacts_order (corp_id, contact_id, external_id, amount, items, paid_at, created_at, "
        "updated_at) SELECT %s, c.id, s.key, s.amount, s.items, s.paid_at, now(), now() FROM import_stage s "
        "JOIN contacts_contact c ON c.corp_id = %s AND c.external_userid = s.external_userid ORDER BY s.key "
        "ON CONFLICT (corp_id, external_id) DO UPDATE SET contact_id = EXCLUDED.contact_id, "
        "amount = EXCLUDED.amount, items = EXCLUDED.items, paid_at = EXCLUDED.paid_at, updated_at = now()",
        [corp.pk, corp.pk])
    accepted = cur.rowcount
    business.contact_facts_refresh_sql(
        "SELECT DISTINCT c.id FROM import_stage s JOIN contacts_contact c ON c.corp_id = %s "
        "AND c.external_userid = s.external_userid", [corp.pk])
    return accepted


def _import_batch(job: BulkJob, batch: list[tuple[int, dict]], report: _Report) -> int:
    """The batched ORM path (entitlements)."""
    from contacts.services import corp_get_or_create

    corp = corp_get_or_create(corp_id=settings.WECOM_CORP_ID)
    result = business.entitlements_record(corp=corp, rows=[row for _, row in batch])
    for error in result.errors:
        line, row = batch[error["index"]]
        report.reject(line, error["message"], row)
    return result.created + result.updated


def job_report_rows(*, job: BulkJob) -> Iterator[list[str]]:
    if not job.report or not Path(job.report).exists():
        yield ["line", "reason", "row"]
        return
    with Path(job.report).open(encoding="utf-8-sig", newline="") as f:
        yield from csv.reader(f)
