"""Serve the public landing page ``GET /l/<slug>`` before the middleware it does not need.

The landing page is public and reads no session, user, CSRF token or flash message, so it is answered right
after the security, static-file and CSP middleware (which still add their headers on the way out); the
clickjacking header is set here. Everything else goes down the normal stack.
"""

import re

from django.conf import settings

_LANDING = re.compile(r"/l/([-a-zA-Z0-9_]+)")


class LandingMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.method == "GET" and request.path_info.startswith("/l/"):
            found = _LANDING.fullmatch(request.path_info)
            if found:
                from livecodes.views import landing_response

                response = landing_response(request, found[1])
                response.headers["X-Frame-Options"] = settings.X_FRAME_OPTIONS
                return response
        return self.get_response(request)
