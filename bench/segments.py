"""Segment counts from the per-tag roaring bitmaps (tagging/bitmaps.py) beside the naive join-table ORM query.

Targets (issue 3, at 1,000,000 contacts and 10,000,000 tag links): two common tags AND p95 ≤ 50 ms;
(A OR B) AND NOT C p95 ≤ 150 ms; one guide's customers with two tags p95 ≤ 10 ms; after bulk-tagging
10,000 contacts the count reflects it within 5 s. Each figure is printed beside the naive ORM query
(Contact ⋈ ContactTag) measured in the same run, with the ratio.

The data is made by ``manage.py bench_data`` in a fresh database; the measuring runs in a child process
(``python -m bench.segments measure``) so Django is set up against that database.
"""

import subprocess
import sys
import time
from dataclasses import dataclass

from bench import server


@dataclass(frozen=True)
class Scale:
    contacts: int
    links: int
    repeats: int
    bulk: int


FULL = Scale(contacts=1_000_000, links=10_000_000, repeats=30, bulk=10_000)
TINY = Scale(contacts=3_000, links=30_000, repeats=5, bulk=500)


def run(*, tiny: bool) -> bool:
    scale = TINY if tiny else FULL
    with server.django_database("seg") as env:
        started = time.monotonic()
        subprocess.run([sys.executable, str(server.ROOT / "manage.py"), "bench_data", "--contacts",
                        str(scale.contacts), "--tag-links", str(scale.links)], env=env, check=True, cwd=server.ROOT)
        print(f"segments ({'tiny' if tiny else 'full'} scale): data generated in {time.monotonic() - started:.1f} s")
        return server.measure_child("bench.segments", [scale.repeats, scale.bulk], env,
                                    passed="correctness            PASS", timeout=3600)


def _p95(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]


def _time(fn, repeats: int) -> tuple[float, object]:
    result = fn()  # warm-up
    samples = []
    for _ in range(repeats):
        t = time.perf_counter()
        result = fn()
        samples.append((time.perf_counter() - t) * 1000)
    return _p95(samples), result


def measure(repeats: int, bulk_size: int) -> None:
    import django

    django.setup()
    from accounts.models import User
    from contacts.models import Contact, Staff
    from tagging import segments, services
    from tagging.models import ContactTag, Tag

    tags = list(Tag.objects.order_by("id").values_list("pk", flat=True))
    a, b, c = tags[0], tags[1], tags[2]
    staff = Staff.objects.order_by("id").first()
    operator = User(username="bench-op", role=User.Role.OPERATOR)
    guide = User(username="bench-guide", role=User.Role.GUIDE, staff=staff)
    ok = True
    rows = []

    def case(label, expression, naive, user, target):
        nonlocal ok
        fast_p95, fast = _time(lambda: segments.segment_count(user=user, expression=expression), repeats)
        slow_p95, slow = _time(naive, max(3, repeats // 5))
        ok = ok and fast == slow
        rows.append((label, fast, fast_p95, slow_p95, target))

    case("A AND B", {"and": [{"tag": a}, {"tag": b}]},
         lambda: Contact.objects.filter(tag_links__tag=a).filter(tag_links__tag=b).count(), operator, 50)
    case("(A OR B) AND NOT C", {"and": [{"or": [{"tag": a}, {"tag": b}]}, {"not": {"tag": c}}]},
         lambda: Contact.objects.filter(tag_links__tag__in=[a, b]).exclude(tag_links__tag=c).distinct().count(),
         operator, 150)
    case("guide: A AND B", {"and": [{"tag": a}, {"tag": b}]},
         lambda: Contact.objects.filter(relations__staff=staff, relations__is_active=True)
         .filter(tag_links__tag=a).filter(tag_links__tag=b).distinct().count(), guide, 10)
    print(f"  {'query':<22} {'count':>9} {'bitmap p95':>11} {'naive p95':>11} {'ratio':>7}  target")
    for label, count, fast_p95, slow_p95, target in rows:
        met = "MET" if fast_p95 <= target else "NOT MET"
        print(f"  {label:<22} {count:>9} {fast_p95:>8.1f} ms {slow_p95:>8.1f} ms {slow_p95 / max(fast_p95, 0.01):>6.1f}x"
              f"  <= {target} ms {met}")
    # bulk tag → visible in counts
    new_tag = Tag.objects.create(group_id=Tag.objects.get(pk=a).group_id, name=f"bulk-{time.time_ns()}")
    ids = list(Contact.objects.order_by("id").values_list("pk", flat=True)[:bulk_size])
    t = time.perf_counter()
    services.tags_apply(contact_ids=ids, tag_ids=[new_tag.pk], source=ContactTag.Source.MANUAL)
    visible = segments.segment_count(user=operator, expression={"tag": new_tag.pk})
    elapsed = time.perf_counter() - t
    ok = ok and visible == len(ids)
    print(f"  bulk tag {len(ids)} contacts → count {visible} visible after {elapsed:.2f} s (target <= 5 s "
          f"{'MET' if elapsed <= 5 else 'NOT MET'})")
    print(f"  correctness            {'PASS' if ok else 'FAIL'} (bitmap counts equal the naive join-table counts)")


if __name__ == "__main__" and sys.argv[1:2] == ["measure"]:
    measure(int(sys.argv[2]), int(sys.argv[3]))
