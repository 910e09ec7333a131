"""Every view declares who may use it. A test walks the URLconf and fails on any view that does not."""

from collections.abc import Callable
from functools import wraps

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied

from accounts.permissions import can_configure


def public(reason: str) -> Callable:
    """Open to anyone on the internet; ``reason`` says why that is safe."""

    def decorate(view):
        view.access = f"public: {reason}"
        return view

    return decorate


def logged_in(view):
    """Any active user; data is still scoped per user by the selectors."""
    wrapped = login_required(view)
    wrapped.access = "logged_in"
    return wrapped


def operators_only(view):
    """Admins and operators; guides get 403."""

    @wraps(view)
    def inner(request, *args, **kwargs):
        if not can_configure(request.user):
            raise PermissionDenied
        return view(request, *args, **kwargs)

    wrapped = login_required(inner)
    wrapped.access = "operators"
    return wrapped
