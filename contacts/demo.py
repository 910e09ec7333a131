"""The demo world: the same ids the WeCom simulator builds with ``--seed-demo``, so the two agree."""

from contacts import services
from contacts.models import Corp
from scrm.clock import from_timestamp
from wecom.contracts import ExternalContact, FollowInfo, GroupChatDetail, GroupChatMember, StaffMember

STAFF = [("zhangwei", "张伟"), ("lina", "李娜"), ("wangfang", "王芳"), ("liuyang", "刘洋"), ("chenjing", "陈静")]
GROUP_NAMES = ["新品体验群", "会员福利群", "育儿交流群", "上海门店群", "北京门店群"]
SURNAMES = "王李张刘陈杨黄赵吴周"
GIVEN = "敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英"
EPOCH = 1767196800
CONTACTS = 200


def external_userid(i: int) -> str:
    return "wmDemo" + f"{i:026d}"


def chat_id(j: int) -> str:
    return "wrDemo" + f"{j:026d}"


def followers(i: int) -> list[str]:
    users = [STAFF[i % 5][0]]
    if i % 7 == 0:
        users.append(STAFF[(i + 1) % 5][0])
    return users


def demo_world_load(*, corp: Corp) -> dict[str, int]:
    staff = {userid: services.staff_upsert(corp=corp, userid=userid, member=StaffMember(userid=userid, name=name))
             for userid, name in STAFF}
    for i in range(CONTACTS):
        created = EPOCH + i * 25200
        follows = tuple(
            FollowInfo(userid=u, createtime=created, add_way=1, state="demo_poster" if i % 4 == 0 else "")
            for u in followers(i)
        )
        external = ExternalContact(
            external_userid=external_userid(i),
            name=SURNAMES[i % 10] + GIVEN[(i * 7) % 20],
            gender=i % 3,
            follow_users=follows,
        )
        contact = services.contact_upsert_from_wecom(corp=corp, external=external)
        for follow in follows:
            at = from_timestamp(follow.createtime)
            services.relation_added(corp=corp, staff=staff[follow.userid], contact=contact, at=at, follow=follow)
            services.record_event(corp=corp, kind="added", occurred_at=at, contact=contact,
                                  staff=staff[follow.userid], data={"state": follow.state, "add_way": 1},
                                  dedup_key=f"demo:add:{i}:{follow.userid}")
    for j, name in enumerate(GROUP_NAMES):
        owner = STAFF[j][0]
        members = [GroupChatMember(userid=owner, type=1, join_time=EPOCH)] + [
            GroupChatMember(userid=external_userid(i), type=2, join_time=EPOCH + i * 25200 + 3600, join_scene=3)
            for i in range(150) if i % 5 == j
        ]
        detail = GroupChatDetail(chat_id=chat_id(j), name=name, owner=owner, create_time=EPOCH,
                                 members=tuple(members))
        chat = services.group_chat_upsert_from_wecom(corp=corp, detail=detail)
        for m in members[1:]:
            contact = corp.contacts.get(external_userid=m.userid)
            services.record_event(corp=corp, kind="joined_group", occurred_at=from_timestamp(m.join_time),
                                  contact=contact, chat=chat, data={"join_scene": 3},
                                  dedup_key=f"demo:join:{j}:{m.userid}")
    return {"staff": len(STAFF), "contacts": CONTACTS, "groups": len(GROUP_NAMES)}


def demo_orders_load(*, corp: Corp) -> int:
    """Orders for a third of the demo customers, at fixed times after each one was added (so a re-run changes
    nothing): a first order about 20 days after the add, and repeats every 75 days for some."""
    from contacts.business import orders_record

    rows = [{"external_userid": external_userid(i), "external_id": f"demo-order-{i}-{k}",
             "amount": str(59 + (i * 37 + k * 101) % 640), "items": [{"sku": f"SKU{(i + k) % 9}"}],
             "paid_at": from_timestamp(EPOCH + i * 25200 + (20 + 75 * k) * 86400).isoformat()}
            for i in range(0, CONTACTS, 3) for k in range(1 + (i % 4))]
    return orders_record(corp=corp, rows=rows).created
