"""The Webhook app in the web UI: connecting through the generic form, the generated secret on no page but the
answer to the create (tests/webhook/test_secret_shown_once.py has the rest)."""

from hookyard.models import Integration

from ..web.session import WebClient, add_user


def test_connecting_in_the_ui_generates_a_secret_no_later_page_shows(app, runtime, receiver, allow_loopback):
    add_user(runtime, "owner@example.com", "owner")
    owner = WebClient(app).sign_in("owner@example.com")
    assert "Webhook" in owner.get("/integrations/new").text
    form = owner.get("/integrations/new/webhook")
    assert form.status_code == 200 and 'name="config.url"' in form.text and 'name="config.secret"' in form.text
    r = owner.post(
        "/integrations/new/webhook", {"name": "Receiver", "config.url": f"{receiver.url}/in", "config.secret": ""}
    )
    assert r.status_code == 201, r.text  # its page, in this answer: the one that shows the secret, once
    with runtime.db.session() as session:
        [integration] = session.query(Integration).all()
        secret = runtime.secret_box.open(integration.secrets)["secret"]
    assert secret.startswith("whsec_") and r.text.count(secret) == 1
    for path in ("/integrations", f"/integrations/{integration.id}", f"/integrations/{integration.id}/edit"):
        page = owner.get(path)
        assert page.status_code == 200 and secret not in page.text, path
    refused = owner.post(
        "/integrations/new/webhook", {"name": "Metadata", "config.url": "http://169.254.169.254/latest/"}
    )
    assert refused.status_code == 422 and "WEBHOOK_ALLOWED_HOSTS" in refused.text
