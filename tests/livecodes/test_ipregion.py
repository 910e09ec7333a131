"""IP → region for "by location" rotation: real lookups in the bundled GeoLite2 data, the fallbacks, the view."""

import logging
import time

import pytest
from django.test import Client

from livecodes import hotpath, ipregion, routing, services
from livecodes.models import LiveCode
from tests.livecodes.helpers import qr_png

# Answers checked in the bundled GeoLite2-City.mmdb (build 2018-07-03): well-known resolvers and carrier blocks.
SHANGHAI = "202.96.209.5"  # China Telecom Shanghai DNS
SHENZHEN = "58.60.0.1"  # China Telecom Shenzhen
CHENGDU = "61.139.2.69"  # China Telecom Sichuan DNS
NANJING = "114.114.114.114"  # 114DNS


@pytest.mark.parametrize(("ip", "region"), [
    (SHANGHAI, "上海"),  # province and city are both 上海: said once
    (SHENZHEN, "广东 深圳"),  # "广东" + "深圳市": the suffix is dropped
    (CHENGDU, "四川 成都"),  # "四川省" + "成都"
    (NANJING, "江苏 南京"),
    ("8.8.8.8", "美国"),  # abroad: the country's name
])
def test_real_lookups_in_the_bundled_database(ip, region):
    assert ipregion.region_of(ip) == region


@pytest.mark.parametrize("ip", ["127.0.0.1", "10.1.2.3", "192.168.1.1", "172.16.0.9", "::1", "fe80::1",
                                "not-an-ip", "", "999.1.1.1"])
def test_private_loopback_and_garbage_addresses_have_no_region(ip):
    assert ipregion.region_of(ip) == ""


def test_answers_are_cached_per_address():
    ipregion.region_of(SHENZHEN)
    before = ipregion._lookup.cache_info()
    for _ in range(5):
        assert ipregion.region_of(SHENZHEN) == "广东 深圳"
    after = ipregion._lookup.cache_info()
    assert after.hits == before.hits + 5 and after.misses == before.misses


def test_switched_off_means_no_lookup(settings):
    settings.LIVECODE_IP_REGION = False
    assert ipregion.region_of(SHANGHAI) == ""


def test_a_missing_database_gives_no_region_and_a_warning(settings, caplog):
    settings.LIVECODE_IP_REGION_DB = "/nonexistent/GeoLite2-City.mmdb"
    ipregion.reset()
    with caplog.at_level(logging.WARNING, logger="livecodes.ipregion"):
        assert ipregion.region_of(SHANGHAI) == ""
        assert ipregion.region_of(SHENZHEN) == ""
    assert sum("unavailable" in r.getMessage() for r in caplog.records) == 1  # said once, not per scan


def test_client_ip_trusts_x_forwarded_for_only_when_told(settings):
    meta = {"REMOTE_ADDR": "10.0.0.2", "HTTP_X_FORWARDED_FOR": f" {SHANGHAI} , 10.0.0.1"}
    settings.LIVECODE_TRUST_X_FORWARDED_FOR = False
    assert ipregion.client_ip(meta) == "10.0.0.2"
    settings.LIVECODE_TRUST_X_FORWARDED_FOR = True
    assert ipregion.client_ip(meta) == SHANGHAI
    assert ipregion.client_ip({"REMOTE_ADDR": "10.0.0.2"}) == "10.0.0.2"  # no header: the peer


@pytest.mark.parametrize(("text", "names"), [
    ("广东省深圳市", ("广东省深圳",)),
    ("广东 深圳", ("广东", "深圳")),
    ("广西壮族自治区，南宁市", ("广西", "南宁")),
    ("香港特别行政区", ("香港",)),
    ("沙市", ("沙市",)),  # never cut below two characters
    ("", ()),
])
def test_region_names(text, names):
    assert routing.region_names(text) == names


# --- routing by IP through the landing page ------------------------------------------------------------------
@pytest.fixture
def located(corp):
    """Pool order: 北京 first (the fallback order), then a 广东 province group, then a 深圳 city group, 上海."""
    code = services.livecode_create(corp=corp, kind="group", name="门店群", mode=LiveCode.Mode.LOCATION)
    for i, (label, region) in enumerate([("北京群", "北京市"), ("广东群", "广东省"), ("深圳群", "深圳市"),
                                         ("上海群", "上海")]):
        services.target_add_image(code=code, content=qr_png(f"https://weixin.qq.com/g/loc{i}"), label=label,
                                  region=region, cap=100)
    return code


def shown(response) -> str:
    html = response.content.decode()
    assert response.status_code == 200
    return html.split('<p class="lc-target">', 1)[1].split("<", 1)[0]


@pytest.mark.django_db
@pytest.mark.parametrize(("ip", "label"), [
    (SHENZHEN, "深圳群"),  # the city rule wins over its province's
    (SHANGHAI, "上海群"),
    (CHENGDU, "北京群"),  # no rule for Sichuan: pool order
    ("127.0.0.1", "北京群"),  # loopback: no region, pool order
    ("192.168.3.4", "北京群"),
])
def test_a_location_code_routes_by_the_scanners_ip(client, located, ip, label):
    assert shown(client.get(f"/l/{located.slug}", REMOTE_ADDR=ip)) == label


@pytest.mark.django_db
def test_a_province_rule_takes_the_provinces_other_cities(client, corp):
    code = services.livecode_create(corp=corp, kind="group", name="省群", mode=LiveCode.Mode.LOCATION)
    services.target_add_image(code=code, content=qr_png("https://weixin.qq.com/g/p0"), label="其他", cap=100)
    services.target_add_image(code=code, content=qr_png("https://weixin.qq.com/g/p1"), label="广东",
                              region="广东", cap=100)
    assert shown(client.get(f"/l/{code.slug}", REMOTE_ADDR="113.108.0.1")) == "广东"  # Guangzhou


@pytest.mark.django_db
def test_the_region_header_overrides_the_ip(client, located, settings):
    settings.LIVECODE_REGION_HEADER = "X-Client-Region"
    response = client.get(f"/l/{located.slug}", REMOTE_ADDR=SHENZHEN, HTTP_X_CLIENT_REGION="上海市")
    assert shown(response) == "上海群"
    misses = ipregion._lookup.cache_info().misses
    other = Client()  # another scanner (no sticky cookie)
    assert shown(other.get(f"/l/{located.slug}", REMOTE_ADDR=NANJING, HTTP_X_CLIENT_REGION="深圳")) == "深圳群"
    assert ipregion._lookup.cache_info().misses == misses  # the address was never looked up


@pytest.mark.django_db
def test_coordinates_override_the_ip(client, located):
    code = located
    target = code.targets.get(label="上海群")
    services.target_update(target=target, latitude=31.23, longitude=121.47)
    hotpath.snapshot_forget(code.slug)
    response = client.get(f"/l/{code.slug}?lat=31.2&lng=121.5", REMOTE_ADDR=SHENZHEN)
    assert shown(response) == "上海群"


@pytest.mark.django_db
def test_forwarded_address_is_used_only_behind_a_trusted_proxy(located, settings):
    settings.LIVECODE_TRUST_X_FORWARDED_FOR = False
    untrusted = Client().get(f"/l/{located.slug}", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR=SHENZHEN)
    assert shown(untrusted) == "北京群"
    settings.LIVECODE_TRUST_X_FORWARDED_FOR = True
    trusted = Client().get(f"/l/{located.slug}", REMOTE_ADDR="10.0.0.2",
                           HTTP_X_FORWARDED_FOR=f"{SHENZHEN}, 10.0.0.1")
    assert shown(trusted) == "深圳群"


@pytest.mark.django_db
def test_ip_region_off_routes_in_pool_order(client, located, settings):
    settings.LIVECODE_IP_REGION = False
    assert shown(client.get(f"/l/{located.slug}", REMOTE_ADDR=SHENZHEN)) == "北京群"


@pytest.mark.django_db
def test_other_rotation_modes_never_look_the_address_up(client, located):
    services.livecode_update(code=located, mode=LiveCode.Mode.FILL)
    hotpath.snapshot_forget(located.slug)
    misses = ipregion._lookup.cache_info().misses
    assert shown(client.get(f"/l/{located.slug}", REMOTE_ADDR=SHENZHEN)) == "北京群"
    assert ipregion._lookup.cache_info().misses == misses


@pytest.mark.django_db
def test_plans_by_region_are_reused_and_counted(located):
    """Many scanners from one region share one plan; each scan is still counted against its member."""
    for _ in range(3):
        assert hotpath.scan(slug=located.slug, cookie=None, ip=SHENZHEN).shown.label == "深圳群"
    assert hotpath.scan(slug=located.slug, cookie=None, ip=SHANGHAI).shown.label == "上海群"
    keys = [k for k in hotpath._process.plans if k[0] == located.pk]
    assert sorted(k[3] for k in keys) == ["上海", "广东 深圳"]
    hotpath.flush_buffers()
    counts = hotpath.counts_get(code_id=located.pk, day=hotpath.day_of(time.time()))
    target = located.targets.get(label="深圳群")
    assert counts[(routing.SCANS, target.pk)] >= 3
