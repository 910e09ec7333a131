"""Build encrypted WeCom callback requests the way WeCom does (for webhook tests)."""

from django.conf import settings

from wecom import signatures


def event_xml(corp_id: str, **fields) -> str:
    parts = [f"<ToUserName><![CDATA[{corp_id}]]></ToUserName>", "<FromUserName><![CDATA[sys]]></FromUserName>",
             "<MsgType><![CDATA[event]]></MsgType>"]
    for name, value in fields.items():
        if isinstance(value, list):
            items = "".join(f"<Item><![CDATA[{v}]]></Item>" for v in value)
            parts.append(f"<{name}>{items}</{name}>")
        elif isinstance(value, int):
            parts.append(f"<{name}>{value}</{name}>")
        else:
            parts.append(f"<{name}><![CDATA[{value}]]></{name}>")
    return "<xml>" + "".join(parts) + "</xml>"


def signed_request(xml: str, *, timestamp: str = "1718000000", nonce: str = "12345",
                   token: str | None = None, corp_id: str | None = None) -> tuple[str, bytes]:
    """Return (query string, body) for POST /wecom/callback/."""
    corp_id = corp_id or settings.WECOM_CORP_ID
    key = signatures.aes_key_from_encoding(settings.WECOM_AES_KEY)
    encrypted = signatures.encrypt(key=key, message=xml.encode("utf-8"), receive_id=corp_id)
    sig = signatures.signature(token or settings.WECOM_TOKEN, timestamp, nonce, encrypted)
    body = (f"<xml><ToUserName><![CDATA[{corp_id}]]></ToUserName><AgentID><![CDATA[1000002]]></AgentID>"
            f"<Encrypt><![CDATA[{encrypted}]]></Encrypt></xml>").encode()
    return f"msg_signature={sig}&timestamp={timestamp}&nonce={nonce}", body


def add_contact_xml(corp_id: str, *, userid: str, external_userid: str, create_time: int = 1718000000,
                    state: str = "", welcome_code: str = "WC1") -> str:
    return event_xml(corp_id, CreateTime=create_time, Event="change_external_contact",
                     ChangeType="add_external_contact", UserID=userid, ExternalUserID=external_userid,
                     State=state, WelcomeCode=welcome_code)
