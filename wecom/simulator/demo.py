"""The deterministic demo world. ``manage.py seed_demo`` on the Django side builds the same ids with the
same formulas, so every constant here is part of a contract: change nothing without changing both sides."""

from __future__ import annotations

from .state import Customer, FollowRecord, GroupChat, GroupMember, Member, World

STAFF: list[tuple[str, str]] = [
    ("zhangwei", "张伟"),
    ("lina", "李娜"),
    ("wangfang", "王芳"),
    ("liuyang", "刘洋"),
    ("chenjing", "陈静"),
]
CUSTOMER_COUNT = 200
GROUP_NAMES = ["新品体验群", "会员福利群", "育儿交流群", "上海门店群", "北京门店群"]
GROUP_MEMBER_LIMIT = 150  # customers i < 150 are group members
EPOCH = 1767196800  # 2026-01-01 00:00 +08:00
FOLLOW_STEP = 25200  # 7 hours between consecutive customers
JOIN_DELAY = 3600
_SURNAMES = "王李张刘陈杨黄赵吴周"
_GIVEN_NAMES = "敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英"


def customer_id(i: int) -> str:
    return "wmDemo" + f"{i:026d}"


def customer_name(i: int) -> str:
    return _SURNAMES[i % 10] + _GIVEN_NAMES[(i * 7) % 20]


def chat_id(j: int) -> str:
    return "wrDemo" + f"{j:026d}"


def follow_time(i: int) -> int:
    return EPOCH + i * FOLLOW_STEP


def customer_followers(i: int) -> list[str]:
    followers = [STAFF[i % 5][0]]
    if i % 7 == 0:
        followers.append(STAFF[(i + 1) % 5][0])
    return followers


def seed_demo_world(world: World) -> None:
    """Fill ``world`` (expected empty) with the demo staff, customers and groups."""
    for userid, name in STAFF:
        world.members[userid] = Member(userid=userid, name=name)
    for i in range(CUSTOMER_COUNT):
        external_userid = customer_id(i)
        customer = Customer(external_userid=external_userid, name=customer_name(i), gender=i % 3)
        for userid in customer_followers(i):
            customer.follows[userid] = FollowRecord(
                userid=userid,
                createtime=follow_time(i),
                state="demo_poster" if i % 4 == 0 else "",
                add_way=1,
                oper_userid=external_userid,
            )
        world.customers[external_userid] = customer
    for j, name in enumerate(GROUP_NAMES):
        owner = STAFF[j][0]
        group = GroupChat(chat_id=chat_id(j), name=name, owner=owner, create_time=EPOCH)
        group.members.append(GroupMember(userid=owner, type=1, join_time=EPOCH, join_scene=1))
        for i in range(j, GROUP_MEMBER_LIMIT, 5):
            group.members.append(
                GroupMember(
                    userid=customer_id(i),
                    type=2,
                    join_time=follow_time(i) + JOIN_DELAY,
                    join_scene=3,
                    name=customer_name(i),
                )
            )
        world.groups[group.chat_id] = group
