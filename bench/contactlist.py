"""The contact list page filtered by a tag, authenticated, at 1,000,000 contacts and 10,000,000 tag links.

Target (issue 3): p95 ≤ 300 ms. Each case requests ``/contacts/?tag=…`` through the whole Django stack (session
auth, middleware, the scoped selector, template) with the test client, as an operator and as a guide, for a
common tag, a rare tag and a deep page; beside it, the baseline measured in the same run: the same page
fetched the naive way (the ORM join ``Contact ⋈ ContactTag`` under the list's keyset pagination) beside our
query for the same rows (the tag bitmap, then ``id IN`` a few ids); the ratio compares those two. The rows
on the page must equal the baseline's rows (correctness).

Data: ``manage.py bench_data`` in a fresh database, or an existing one named by ``BENCH_REUSE_DATABASE_URL``.
"""

import os
import subprocess
import sys
import time
import uuid

from bench import server
from bench.segments import FULL, TINY, _p95


def run(*, tiny: bool) -> bool:
    scale = TINY if tiny else FULL
    base_db = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    reuse = os.environ.get("BENCH_REUSE_DATABASE_URL")
    name = f"scrm_bench_list_{uuid.uuid4().hex[:8]}"
    url = reuse or server.fresh_database(base_db, name)
    env = server.bench_env(url, os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
                           key_prefix=f"bench-{uuid.uuid4().hex[:8]}")
    env["DJANGO_SETTINGS_MODULE"] = "scrm.settings"
    try:
        if not reuse:
            server.migrate(env)
            started = time.monotonic()
            subprocess.run([sys.executable, str(server.ROOT / "manage.py"), "bench_data", "--contacts",
                            str(scale.contacts), "--tag-links", str(scale.links)], env=env, check=True,
                           cwd=server.ROOT, stdout=subprocess.DEVNULL)
            print(f"contact list ({'tiny' if tiny else 'full'} scale): data generated in "
                  f"{time.monotonic() - started:.1f} s")
        result = subprocess.run([sys.executable, "-m", "bench.contactlist", "measure", str(scale.repeats)],
                                env=env, cwd=server.ROOT, capture_output=True, text=True, timeout=3600)
        print(result.stdout, end="")
        if result.returncode != 0:
            print(result.stderr)
            return False
        return "contact list correctness PASS" in result.stdout
    finally:
        if not reuse:
            server.drop_database(base_db, name)


def measure(repeats: int) -> None:
    import django

    django.setup()
    from django.test import Client

    from accounts.models import User
    from contacts import selectors
    from contacts.models import Staff
    from tagging.models import Tag, TagBitmap
    from web import selectors as web_selectors
    from web.pagination import keyset_page

    tags = list(TagBitmap.objects.filter(cardinality__gt=0).order_by("-cardinality").values_list("tag_id", flat=True))
    common, rare = tags[0], tags[-1]
    staff = Staff.objects.order_by("id").first()
    suffix = uuid.uuid4().hex[:6]
    operator = User.objects.create_user(username=f"bench-op-{suffix}", password="x", role=User.Role.OPERATOR)
    guide = User.objects.filter(staff=staff).first() or User.objects.create_user(
        username=f"bench-guide-{suffix}", password="x", role=User.Role.GUIDE, staff=staff)
    ok = True
    rows = []

    def page_ids(response) -> list[int]:
        import re

        return [int(m) for m in re.findall(r'name="contact_ids" value="(\d+)"', response.content.decode())] or [
            int(m) for m in re.findall(r'href="/contacts/(\d+)/"', response.content.decode())]

    def case(label, user, tag_id, after=None):
        nonlocal ok
        client = Client(HTTP_HOST="127.0.0.1")
        client.force_login(user)
        path = f"/contacts/?tag={tag_id}" + (f"&after={after}" if after else "")

        def fast():
            response = client.get(path, secure=True)
            assert response.status_code == 200, response.status_code
            return response

        def naive():
            qs = selectors.contact_list(user=user).filter(tag_links__tag_id=tag_id)
            return keyset_page(web_selectors.with_group_count(qs), after=after).items

        def bitmap_query():
            return web_selectors.contact_page_with_tag(user=user, tag_id=tag_id, contacts=selectors.contact_list(
                user=user), after=after, before=None).items

        samples = []
        response = fast()
        for _ in range(repeats):
            t = time.perf_counter()
            response = fast()
            samples.append((time.perf_counter() - t) * 1000)
        base = []
        items = naive()
        for _ in range(max(3, repeats // 5)):
            t = time.perf_counter()
            items = naive()
            base.append((time.perf_counter() - t) * 1000)
        query = []
        mine = bitmap_query()
        for _ in range(repeats):
            t = time.perf_counter()
            mine = bitmap_query()
            query.append((time.perf_counter() - t) * 1000)
        same = page_ids(response) == [c.pk for c in items] == [c.pk for c in mine]
        ok = ok and same
        rows.append((label, len(items), _p95(samples), _p95(query), _p95(base), same))

    case("operator, common tag", operator, common)
    case("operator, rare tag", operator, rare)
    deep = Tag.objects.get(pk=common)
    from tagging.selectors import tag_members

    members = tag_members(user=operator, tag_id=deep.pk)
    case("operator, deep page", operator, common, after=members[len(members) // 2])
    case("guide, common tag", guide, common)
    case("guide, rare tag", guide, rare)
    print(f"  {'contact list ?tag=':<22} {'rows':>4} {'page p95':>9} {'its query':>10} {'naive query':>12} "
          f"{'ratio':>7}  target (page)")
    for label, n, page_p95, query_p95, slow_p95, same in rows:
        met = "MET" if page_p95 <= 300 else "NOT MET"
        print(f"  {label:<22} {n:>4} {page_p95:>6.1f} ms {query_p95:>7.1f} ms {slow_p95:>9.1f} ms "
              f"{slow_p95 / max(query_p95, 0.01):>6.1f}x  <= 300 ms {met}{'' if same else '  ROWS DIFFER'}")
    print(f"  contact list correctness {'PASS' if ok else 'FAIL'} (page rows equal the naive join-table page)")


if __name__ == "__main__" and sys.argv[1:2] == ["measure"]:
    measure(int(sys.argv[2]))
