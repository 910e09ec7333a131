"""Language choice: the corp's default (Simplified Chinese) unless the user picked another one.

Django's LocaleMiddleware would follow the browser's Accept-Language; operators share machines and
browsers set to English, and the product is Chinese first. So only an explicit choice (the language
cookie set by the switch in the header) overrides ``LANGUAGE_CODE``.
"""

from django.conf import settings
from django.middleware.locale import LocaleMiddleware
from django.utils import translation


class CorpLocaleMiddleware(LocaleMiddleware):
    def process_request(self, request):
        chosen = request.COOKIES.get(settings.LANGUAGE_COOKIE_NAME, "")
        supported = {code for code, _ in settings.LANGUAGES}
        language = chosen if chosen in supported else settings.LANGUAGE_CODE
        translation.activate(language)
        request.LANGUAGE_CODE = translation.get_language()
