from django import forms
from django.conf import settings
from django.utils.translation import gettext_lazy as _

from journeys.models import Channel, MessageTemplate, Priority
from scrm.errors import ApplicationError


class MessageTemplateForm(forms.ModelForm):
    """The admin's template form, with the upload of a mini-program's cover (PNG or JPEG, checked before any
    decoding; only the first bytes past the size limit are read)."""

    cover_file = forms.FileField(label=_("Mini-program cover"), required=False,
                                 help_text=_("PNG or JPEG. A mini-program needs one: WeCom shows it on the card. "
                                             "Uploading a new one replaces the current cover."))

    class Meta:
        model = MessageTemplate
        fields = ("name", "kind", "text", "attachment")

    def clean(self):
        from journeys.covers import template_cover_set

        cleaned = super().clean()
        upload = cleaned.get("cover_file")
        if upload:
            content = upload.read(settings.LIVECODE_UPLOAD_MAX_BYTES + 1)
            try:
                template_cover_set(template=self.instance, content=content, name=upload.name or "", save=False)
            except ApplicationError as exc:
                self.add_error("cover_file", exc.message)
        return cleaned


class BroadcastForm(forms.Form):
    name = forms.CharField(label=_("Name"), max_length=64)
    template = forms.ModelChoiceField(label=_("Message template"), queryset=MessageTemplate.objects.all())
    channel = forms.ChoiceField(label=_("Channel"), choices=[(Channel.SINGLE, Channel.SINGLE.label),
                                                             (Channel.GROUP, Channel.GROUP.label)])
    segment = forms.ModelChoiceField(label=_("Segment"), queryset=None, required=False)
    chat_ids = forms.CharField(label=_("Customer group ids (comma-separated)"), required=False)
    priority = forms.ChoiceField(label=_("Priority"), choices=Priority.choices, initial=Priority.MARKETING)
    send_at = forms.DateTimeField(label=_("Send at (empty: send now)"), required=False,
                                  widget=forms.DateTimeInput(attrs={"type": "datetime-local"}))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        from tagging.models import Segment

        self.fields["segment"].queryset = Segment.objects.all()

    def clean_chat_ids(self):
        return [c.strip() for c in self.cleaned_data["chat_ids"].split(",") if c.strip()]
