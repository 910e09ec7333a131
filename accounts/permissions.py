"""Role checks shared by the HTML views and the API. Data scoping lives in the selectors."""

from rest_framework.permissions import BasePermission

from accounts.models import User


def can_configure(user: User) -> bool:
    """Admins and operators change configuration; guides only work their own customers."""
    return bool(user.is_authenticated and user.is_active and not user.is_guide)


class IsOperatorOrAdmin(BasePermission):
    message = "Only operators and admins may do this."

    def has_permission(self, request, view) -> bool:
        return can_configure(request.user)
