"""Bulk tag jobs and CSV imports: progress, GBK files, bad dates, duplicates and missing columns reported."""

import csv
import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from contacts.models import Contact, Order
from tagging import bulk, segments
from tagging.models import BulkJob, ContactTag
from tests.factories import ContactFactory


@pytest.fixture(autouse=True)
def _import_dir(settings, tmp_path):
    settings.TAGGING_IMPORT_DIR = tmp_path


def _run(job):
    assert bulk.bulk_job_run(job_id=job.pk) == "done"
    assert bulk.bulk_job_run(job_id=job.pk) == "not queued"  # a redelivered task does nothing
    job.refresh_from_db()
    return job


def _report(job):
    return list(bulk.job_report_rows(job=job))[1:]


def test_bulk_tag_a_segment_then_untag(corp, operator_user, tags_abc):
    a, b = tags_abc["A"].pk, tags_abc["B"].pk
    people = [ContactFactory(corp=corp) for _ in range(4)]
    bulk_ids = [p.pk for p in people[:3]]
    job = _run(bulk.bulk_tag_start(user=operator_user, action="tag", tag_ids=[a], contact_ids=bulk_ids))
    assert (job.status, job.total, job.processed, job.accepted, job.percent) == ("done", 3, 3, 3, 100)
    assert segments.segment_count(user=operator_user, expression={"tag": a}) == 3
    job = _run(bulk.bulk_tag_start(user=operator_user, action="tag", tag_ids=[b], expression={"tag": a}))
    assert ContactTag.objects.filter(tag_id=b).count() == 3
    _run(bulk.bulk_tag_start(user=operator_user, action="untag", tag_ids=[a], expression={"tag": a}))
    assert segments.segment_count(user=operator_user, expression={"tag": a}) == 0


def test_bulk_tag_by_a_guide_only_reaches_their_customers(corp, guide_a, tags_abc):
    theirs = ContactFactory(corp=corp)
    job = _run(bulk.bulk_tag_start(user=guide_a, action="tag", tag_ids=[tags_abc["A"].pk], contact_ids=[theirs.pk]))
    assert job.total == 0 and not ContactTag.objects.exists()


def _upload(text: str, encoding: str = "utf-8") -> SimpleUploadedFile:
    return SimpleUploadedFile("x.csv", text.encode(encoding), content_type="text/csv")


def test_gbk_contact_import_with_duplicates_and_bad_rows(corp, operator_user):
    text = ("external_userid,name,gender,city\n"
            "wmImp1,张三,1,上海\n"
            "wmImp2,李四,9,北京\n"  # bad gender
            "wmImp1,张三重复,1,上海\n"  # duplicate
            "wmImp3,王五\n"  # short row
            ",无名,0,\n")  # empty key
    job = _run(bulk.import_start(user=operator_user, kind="contacts", upload=_upload(text, "gbk")))
    assert (job.total, job.processed, job.accepted, job.rejected) == (5, 5, 1, 4)
    assert Contact.objects.get(external_userid="wmImp1").name == "张三"
    assert Contact.objects.get(external_userid="wmImp1").facts.city == "上海"
    reasons = {int(r[0]): r[1] for r in _report(job)}
    assert set(reasons) == {3, 4, 5, 6}
    assert "gender" in reasons[3] and "duplicate" in reasons[4] and "line 2" in reasons[4]
    assert "values for" in reasons[5] and "empty required" in reasons[6]


def test_order_import_reports_bad_dates_unknown_contacts_and_missing_columns(corp, operator_user):
    c = ContactFactory(corp=corp, external_userid="wmBuyer")
    text = ("external_id,external_userid,amount,paid_at\n"
            "O1,wmBuyer,10.5,2026-03-01 10:00:00\n"
            "O2,wmBuyer,20,yesterday\n"
            "O3,wmNobody,20,2026-03-01T10:00:00+08:00\n"
            "O4,wmBuyer,abc,2026-03-01T10:00:00+08:00\n")
    job = _run(bulk.import_start(user=operator_user, kind="orders", upload=_upload(text)))
    assert (job.accepted, job.rejected) == (1, 3)
    assert Order.objects.get().contact == c
    reasons = {int(r[0]): r[1] for r in _report(job)}
    assert "not a date" in reasons[3] and "unknown contact" in reasons[4] and "not a number" in reasons[5]
    missing = _run(bulk.import_start(user=operator_user, kind="orders",
                                     upload=_upload("external_id,amount\nO9,1\nO10,2\n")))
    assert missing.rejected == 2 and all("missing column" in r[1] for r in _report(missing))


def test_import_and_report_api(api_client_for, operator_user, guide_a, corp, django_capture_on_commit_callbacks,
                               monkeypatch):
    from tagging import tasks

    monkeypatch.setattr(tasks.bulk_job_run, "delay", lambda job_id: bulk.bulk_job_run(job_id=job_id))
    api = api_client_for(operator_user)
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post("/api/imports/", {"kind": "contacts", "file": _upload("external_userid,name\n,x\n")},
                            format="multipart")
    assert response.status_code == 202
    job_id = response.json()["id"]
    assert api.get(f"/api/jobs/{job_id}/").json()["rejected"] == 1
    body = b"".join(api.get(f"/api/jobs/{job_id}/report/").streaming_content)
    assert body.startswith("\ufeff".encode())  # Excel needs the BOM to read UTF-8 Chinese
    report = body.decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(report)))
    assert rows[0] == ["line", "reason", "row"] and rows[1][0] == "2"
    assert api_client_for(guide_a).get(f"/api/jobs/{job_id}/").status_code == 403
    assert BulkJob.objects.get(pk=job_id).status == "done"
