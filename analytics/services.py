"""Writes of the analytics app: turning an RFM cell into a saved segment."""

from accounts.models import User
from scrm.errors import ApplicationError
from tagging.models import Segment


def rfm_cell_expression(*, r: int, f: int, m: int) -> dict:
    """Buyers scored (r, f, m): the same condition the RFM grid counts."""
    return {"and": [{"attr": "order_count", "op": "gt", "value": 0}, {"attr": "rfm_r", "op": "eq", "value": r},
                    {"attr": "rfm_f", "op": "eq", "value": f}, {"attr": "rfm_m", "op": "eq", "value": m}]}


def rfm_cell_segment_create(*, user: User, r: int, f: int, m: int) -> Segment:
    """Save the customers of one RFM cell as a segment (operators and admins only)."""
    from django.core.exceptions import PermissionDenied
    from django.utils.translation import gettext as _

    from accounts.permissions import can_configure
    from tagging.segments import expression_parse

    if user is None or not can_configure(user):
        raise PermissionDenied("Only operators and admins create segments from the RFM grid.")
    if any(not isinstance(v, int) or not 1 <= v <= 5 for v in (r, f, m)):
        raise ApplicationError(_("RFM scores are between 1 and 5."))
    expression = rfm_cell_expression(r=r, f=f, m=m)
    expression_parse(expression)
    return Segment.objects.create(name=f"RFM R{r} F{f} M{m}", expression=expression, created_by=user)
