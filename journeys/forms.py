from django import forms
from django.utils.translation import gettext_lazy as _

from journeys.models import Channel, MessageTemplate, Priority


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
