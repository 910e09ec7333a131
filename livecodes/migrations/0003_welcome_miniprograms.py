"""Welcome mini-programs get their own rows with an uploaded cover (WelcomeMiniProgram).

Mini-programs typed into ``LiveCode.welcome_attachments`` before carried a ``pic_media_id`` typed by the operator:
a WeCom temporary media id, dead 3 days after its upload, after which WeCom refused the whole welcome (40007).
They are moved into WelcomeMiniProgram rows keeping title, appid and page; the typed id is dropped (its image
cannot be recovered and it is, or soon will be, expired), so each row waits for the operator to upload a cover
(until then welcome messages go out without it and the code's owner gets an alert). Items lacking a title, an
appid or a page could never be sent and are dropped.
"""

import django.db.models.deletion
from django.db import migrations, models


def _text(body: dict, key: str, limit: int) -> str:
    value = body.get(key)
    return value.strip()[:limit] if isinstance(value, str) else ""


def typed_miniprograms_to_rows(apps, schema_editor):
    LiveCode = apps.get_model("livecodes", "LiveCode")
    WelcomeMiniProgram = apps.get_model("livecodes", "WelcomeMiniProgram")
    codes = LiveCode.objects.filter(welcome_attachments__contains=[{"msgtype": "miniprogram"}])
    for code in codes.only("pk", "welcome_attachments").iterator():
        kept, rows = [], []
        for item in code.welcome_attachments or []:
            if not (isinstance(item, dict) and item.get("msgtype") == "miniprogram"):
                kept.append(item)
                continue
            body = item.get("miniprogram") if isinstance(item.get("miniprogram"), dict) else {}
            title, appid, page = _text(body, "title", 64), _text(body, "appid", 32), _text(body, "page", 255)
            if title and appid and page:
                rows.append(WelcomeMiniProgram(code_id=code.pk, title=title, appid=appid, page=page,
                                               position=len(rows) + 1))
        WelcomeMiniProgram.objects.bulk_create(rows)
        LiveCode.objects.filter(pk=code.pk).update(welcome_attachments=kept)


def rows_to_typed_miniprograms(apps, schema_editor):
    LiveCode = apps.get_model("livecodes", "LiveCode")
    WelcomeMiniProgram = apps.get_model("livecodes", "WelcomeMiniProgram")
    for code in LiveCode.objects.filter(welcome_miniprograms__isnull=False).distinct():
        typed = [{"msgtype": "miniprogram", "miniprogram": {"title": p.title, "appid": p.appid, "page": p.page,
                                                            "pic_media_id": p.media_id}}
                 for p in WelcomeMiniProgram.objects.filter(code=code).order_by("position", "id")]
        LiveCode.objects.filter(pk=code.pk).update(welcome_attachments=[*(code.welcome_attachments or []), *typed])


class Migration(migrations.Migration):

    dependencies = [
        ('livecodes', '0002_welcome_images'),
    ]

    operations = [
        migrations.CreateModel(
            name='WelcomeMiniProgram',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('updated_at', models.DateTimeField(auto_now=True)),
                ('title', models.CharField(max_length=64, verbose_name='mini-program title')),
                ('appid', models.CharField(max_length=32, verbose_name='mini-program appid')),
                ('page', models.CharField(max_length=255, verbose_name='mini-program page')),
                ('position', models.PositiveIntegerField(default=0)),
                ('image', models.BinaryField(blank=True, null=True, verbose_name='cover image')),
                ('image_type', models.CharField(blank=True, max_length=32)),
                ('image_sha', models.CharField(blank=True, max_length=64)),
                ('name', models.CharField(blank=True, max_length=100, verbose_name='cover file name')),
                ('media_id', models.CharField(blank=True, max_length=128)),
                ('media_expires_at', models.DateTimeField(blank=True, null=True)),
                ('code', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='welcome_miniprograms', to='livecodes.livecode')),
            ],
            options={
                'verbose_name': 'welcome mini-program',
                'verbose_name_plural': 'welcome mini-programs',
                'ordering': ['position', 'id'],
            },
        ),
        migrations.RunPython(typed_miniprograms_to_rows, rows_to_typed_miniprograms),
    ]
