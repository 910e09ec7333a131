from django.apps import AppConfig


class LivecodesConfig(AppConfig):
    name = "livecodes"
