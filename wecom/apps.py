from django.apps import AppConfig


class WecomConfig(AppConfig):
    name = "wecom"
    verbose_name = "WeCom"
