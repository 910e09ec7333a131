"""Operator forms. They parse and validate input; the services decide and write."""

import json

from django import forms
from django.utils.translation import gettext_lazy as _

from contacts.models import GroupChat, Staff
from livecodes.models import Campaign, LiveCode, LiveCodeOption
from tagging.models import Tag


class JSONTextField(forms.CharField):
    def __init__(self, *, empty, **kwargs):
        self.empty = empty
        kwargs.setdefault("widget", forms.Textarea(attrs={"rows": 3, "class": "mono"}))
        super().__init__(required=False, **kwargs)

    def to_python(self, value):
        value = (value or "").strip()
        if not value:
            return self.empty
        try:
            return json.loads(value)
        except ValueError as exc:
            raise forms.ValidationError(_("Not valid JSON: %(error)s"), params={"error": exc}) from exc

    def prepare_value(self, value):
        if isinstance(value, (list, dict)):
            return json.dumps(value, ensure_ascii=False) if value else ""
        return value


class LiveCodeForm(forms.Form):
    name = forms.CharField(label=_("Name"), max_length=64)
    kind = forms.ChoiceField(label=_("Kind"), choices=LiveCode.Kind.choices)
    state = forms.CharField(label=_("Channel state"), max_length=30, required=False,
                            help_text=_("Letters and digits, at most 22; empty: generated."))
    mode = forms.ChoiceField(label=_("Rotation"), choices=LiveCode.Mode.choices)
    title = forms.CharField(label=_("Page title"), max_length=64, required=False)
    description = forms.CharField(label=_("Page description"), max_length=300, required=False,
                                  widget=forms.Textarea(attrs={"rows": 2}))
    campaign = forms.ModelChoiceField(label=_("Campaign"), queryset=Campaign.objects.all(), required=False)
    fallback = forms.ModelChoiceField(label=_("Fallback staff code"), required=False,
                                      queryset=LiveCode.objects.filter(kind=LiveCode.Kind.STAFF))
    skip_verify = forms.BooleanField(label=_("Skip verification"), required=False, initial=True)
    auto_remark = forms.CharField(label=_("Auto remark"), max_length=20, required=False)
    tags = forms.ModelMultipleChoiceField(label=_("Tags on add"), queryset=Tag.objects.all(), required=False)
    welcome_text = forms.CharField(label=_("Welcome message"), required=False, max_length=1300,
                                   widget=forms.Textarea(attrs={"rows": 3}),
                                   help_text=_("%NICKNAME% is replaced by the customer's name."))
    welcome_attachments = JSONTextField(label=_("Welcome attachments (JSON)"), empty=[])
    welcome_group_code = forms.ModelChoiceField(label=_("Invite to group code"), required=False,
                                                queryset=LiveCode.objects.exclude(kind=LiveCode.Kind.STAFF))
    low_capacity = forms.IntegerField(label=_("Alert below capacity"), min_value=0, initial=50)
    qr_fg = forms.RegexField(label=_("QR colour"), regex=r"^#[0-9a-fA-F]{6}$", initial="#000000")
    qr_bg = forms.RegexField(label=_("QR background"), regex=r"^#[0-9a-fA-F]{6}$", initial="#ffffff")
    status = forms.ChoiceField(label=_("Status"), choices=LiveCode.Status.choices, initial="active")

    def __init__(self, *args, editing: LiveCode | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["welcome_attachments"].help_text = _(
            'Links, e.g. [{"msgtype": "link", "link": {"title": "新人礼", "url": "https://…"}}]. Images and '
            'mini-programs are added below the form.')
        if editing is not None:
            del self.fields["kind"], self.fields["state"]
            self.fields["fallback"].queryset = self.fields["fallback"].queryset.exclude(pk=editing.pk)
            self.fields["welcome_group_code"].queryset = (
                self.fields["welcome_group_code"].queryset.exclude(pk=editing.pk))


    def clean_welcome_attachments(self):
        from livecodes.services import welcome_attachments_errors

        value = self.cleaned_data["welcome_attachments"]
        errors = welcome_attachments_errors(value)
        if errors:
            raise forms.ValidationError(errors)
        return value


class WelcomeMiniProgramForm(forms.Form):
    """A mini-program card to add to the welcome message (edit page, prefix ``mp``): all four fields or none.
    The cover file itself is read by the view (``request.FILES``, with the upload size limit)."""

    title = forms.CharField(label=_("Mini-program title"), max_length=64, required=False)
    appid = forms.CharField(label=_("Mini-program appid"), max_length=64, required=False,
                            widget=forms.TextInput(attrs={"placeholder": "wx1234567890abcdef", "class": "mono"}))
    page = forms.CharField(label=_("Page to open"), max_length=255, required=False,
                           widget=forms.TextInput(attrs={"placeholder": "pages/index/index", "class": "mono"}))
    cover = forms.FileField(label=_("Cover image"), required=False,
                            widget=forms.FileInput(attrs={"accept": "image/png,image/jpeg"}),
                            help_text=_("PNG or JPEG, about 520 × 416. Sent to WeCom when a welcome message goes "
                                        "out."))

    def clean(self):
        from livecodes.services import miniprogram_errors

        data = super().clean()
        if not any(data.get(k) for k in ("title", "appid", "page", "cover")):
            return data  # nothing to add
        for field, message in miniprogram_errors(title=data.get("title"), appid=data.get("appid"),
                                                 page=data.get("page")).items():
            self.add_error(field, message)
        if not data.get("cover"):
            self.add_error("cover", _("Upload the mini-program's cover image (PNG or JPEG)."))
        return data

    @property
    def adding(self) -> bool:
        return self.is_valid() and bool(self.cleaned_data.get("cover"))


class StaffTargetForm(forms.Form):
    staff = forms.ModelChoiceField(label=_("Staff member"), queryset=Staff.objects.filter(status="active"))
    daily_cap = forms.IntegerField(label=_("Daily cap"), min_value=1, required=False)
    is_backup = forms.BooleanField(label=_("Backup"), required=False)
    weight = forms.IntegerField(label=_("Weight"), min_value=0, initial=1)
    region = forms.CharField(label=_("Region"), max_length=64, required=False)
    schedule = JSONTextField(label=_("Schedule (JSON)"), empty={},
                             help_text=_('e.g. {"weekly": {"1": [["09:00", "18:00"]]}, "dates": {"2026-10-01": []}}'))


class GroupTargetForm(forms.Form):
    chat = forms.ModelChoiceField(label=_("Group"), queryset=GroupChat.objects.filter(status="active"))
    option = forms.ModelChoiceField(label=_("Choice"), queryset=LiveCodeOption.objects.none(), required=False)
    cap = forms.IntegerField(label=_("Join cap"), min_value=1, required=False)
    region = forms.CharField(label=_("Region"), max_length=64, required=False)

    def __init__(self, *args, code: LiveCode, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["option"].queryset = code.options.all()


class ImageUploadForm(forms.Form):
    # The files themselves come from request.FILES.getlist("images") (several at once).
    option = forms.ModelChoiceField(label=_("Choice"), queryset=LiveCodeOption.objects.none(), required=False)
    expires_at = forms.DateTimeField(label=_("Expires at"), required=False,
                                     help_text=_("Empty: 7 days after upload."))
    cap = forms.IntegerField(label=_("Join cap"), min_value=1, required=False, help_text=_("Empty: 200."))
    region = forms.CharField(label=_("Region"), max_length=64, required=False)

    def __init__(self, *args, code: LiveCode, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["option"].queryset = code.options.all()


class ReplaceImageForm(forms.Form):
    image = forms.FileField(label=_("New group QR image"))
    expires_at = forms.DateTimeField(label=_("Expires at"), required=False)


class TargetEditForm(forms.Form):
    enabled = forms.BooleanField(label=_("Enabled"), required=False)
    position = forms.IntegerField(label=_("Order"), min_value=0)
    weight = forms.IntegerField(label=_("Weight"), min_value=0)
    cap = forms.IntegerField(label=_("Join cap"), min_value=1, required=False)
    daily_cap = forms.IntegerField(label=_("Daily cap"), min_value=1, required=False)
    region = forms.CharField(label=_("Region"), max_length=64, required=False)


class OptionForm(forms.Form):
    label = forms.CharField(label=_("Choice"), max_length=32)
    tag = forms.ModelChoiceField(label=_("Tag"), queryset=Tag.objects.all(), required=False)
