"""The WeCom callback endpoint: verify, decrypt, store once, answer 200 at once, process in a worker."""

import logging

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from scrm.access import public
from wecom import gateway
from wecom.events import MalformedXml
from wecom.services import callback_accept, callback_verify_url
from wecom.signatures import DecryptError, SignatureError

logger = logging.getLogger(__name__)


@public("WeCom callbacks are authenticated by msg_signature and AES encryption")
@csrf_exempt
@require_http_methods(["GET", "POST"])
def callback(request: HttpRequest) -> HttpResponse:
    crypto = gateway.callback_crypto()
    params = request.GET
    signature = params.get("msg_signature", "")
    timestamp = params.get("timestamp", "")
    nonce = params.get("nonce", "")
    if request.method == "GET":
        try:
            echo = callback_verify_url(crypto=crypto, msg_signature=signature, timestamp=timestamp, nonce=nonce,
                                       echostr=params.get("echostr", ""))
        except SignatureError:
            return HttpResponse(status=403)
        except DecryptError:
            return HttpResponse(status=400)
        return HttpResponse(echo, content_type="text/plain")

    limit = settings.WECOM_CALLBACK_MAX_BYTES
    length = request.META.get("CONTENT_LENGTH") or "0"
    if not length.isdigit() or int(length) > limit:
        return HttpResponse(status=413)
    body = request.read(limit + 1)
    if len(body) > limit:
        return HttpResponse(status=413)
    try:
        callback_accept(crypto=crypto, body=body, msg_signature=signature, timestamp=timestamp, nonce=nonce)
    except SignatureError:
        logger.warning("wecom callback refused: bad signature")
        return HttpResponse(status=403)
    except (MalformedXml, DecryptError) as exc:
        logger.warning("wecom callback refused: %s", exc)
        return HttpResponse(status=400)
    return HttpResponse(b"")

