"""Settings → API Keys in headless Chromium, against a real router: each key the page makes is
used with the official openai SDK, as the application holding it would use it."""

from __future__ import annotations

import re
from datetime import datetime
from zoneinfo import ZoneInfo

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam
from playwright.sync_api import Page, expect

from tests.browser.conftest import ADMIN_KEY, ARTIFACTS, PHONE, TIMEZONE, RouterStarter
from tests.browser.console import Console
from tests.browser.keys_page import KeysPage
from tests.functional.router_process import RouterProcess

ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
HELLO: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Hello there"}]
STORAGE = "switchyard.adminKey"
A_TIME = re.compile(
    r"^[A-Z][a-z]{2} \d{1,2}, \d{4}, \d{1,2}:\d{2}\s[AP]M$"
)  # "Nov 25, 2026, 11:45 PM"


def sdk(router: RouterProcess, secret: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=router.base_url, api_key=secret, max_retries=0)


def chat(router: RouterProcess, secret: str) -> str:
    with sdk(router, secret) as client:
        reply = client.chat.completions.create(model="gpt-4o", messages=HELLO)
    return reply.choices[0].message.content or ""


def limit_header(router: RouterProcess, secret: str) -> str | None:
    with sdk(router, secret) as client:
        raw = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=HELLO)
    return raw.headers.get("x-ratelimit-limit-requests")


def signed_in(page: Page, router: RouterProcess) -> KeysPage:
    keys = KeysPage(page, router.url)
    keys.open()
    keys.sign_in(ADMIN_KEY)
    keys.expect_signed_in()
    return keys


# --- signing in ------------------------------------------------------------------------------


def test_a_wrong_admin_key_is_refused_in_words_then_the_right_one_signs_in(
    page: Page, router: RouterProcess, console: Console
) -> None:
    console.allow(401, "/admin/keys")
    keys = KeysPage(page, router.url)
    keys.open()

    keys.sign_in("sy-admin-wrong-key")
    # Next to the field: its own error text, read out with it.
    refused = re.compile(r"Incorrect admin key provided\.$")
    expect(keys.admin_key_field).to_have_accessible_description(refused)
    expect(keys.admin_key_field).to_have_attribute("aria-invalid", "true")
    assert page.evaluate(f"sessionStorage.getItem('{STORAGE}')") is None

    keys.sign_in(ADMIN_KEY)
    keys.expect_signed_in()
    # In this tab's session only: not in the URL, not in a cookie.
    assert page.evaluate(f"sessionStorage.getItem('{STORAGE}')") == ADMIN_KEY
    assert ADMIN_KEY not in page.url
    assert page.context.cookies() == []

    page.reload()  # the same tab keeps it
    keys.expect_signed_in()

    page.get_by_role("button", name="Sign out").click()
    expect(keys.admin_key_field).to_be_visible()
    assert page.evaluate(f"sessionStorage.getItem('{STORAGE}')") is None


def test_a_router_without_admin_api_says_so_at_sign_in(
    page: Page, start_router: RouterStarter, console: Console
) -> None:
    console.allow(404, "/admin/keys")
    router = start_router(admin_key=None)
    keys = KeysPage(page, router.url)
    assert keys.open().status == 200

    keys.sign_in(ADMIN_KEY)
    expect(keys.admin_key_field).to_have_accessible_description(
        re.compile(r"The admin API is off: no admin key is configured")
    )


# --- the key lifecycle -----------------------------------------------------------------------


def test_create_use_edit_rotate_and_revoke_a_key(page: Page, router: RouterProcess) -> None:
    keys = signed_in(page, router)
    expect(page.get_by_text("No keys yet")).to_be_visible()

    secret = keys.create("ci-bot", models="gpt-4o*", rpm="600", tpm="200000", concurrency="5")
    page.get_by_role("button", name="Copy").click()
    expect(page.get_by_text("Copied to the clipboard.")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == secret
    expect(keys.cell("ci-bot", "Models")).to_have_text("gpt-4o*")
    expect(keys.cell("ci-bot", "Limits")).to_have_text(
        "600 requests/min, 200,000 tokens/min, 5 at once"
    )
    expect(keys.cell("ci-bot", "State")).to_have_text("Active")
    expect(keys.cell("ci-bot", "Expires")).to_have_text("Never")
    key_id = secret.split("-")[2]
    expect(keys.cell("ci-bot", "ID")).to_have_text(key_id)

    assert chat(router, secret).endswith("says: Hello there")
    with sdk(router, secret) as client:
        assert [model.id for model in client.models.list()] == ["gpt-4o"]

    page.get_by_role("button", name="Done, hide the secret").click()
    expect(keys.secret_panel).to_be_hidden()
    assert secret not in page.content()

    keys.edit("ci-bot", rpm="1000", tpm="")
    expect(keys.cell("ci-bot", "Limits")).to_have_text("1,000 requests/min, 5 at once")
    assert limit_header(router, secret) == "1000"

    new_secret = keys.rotate("ci-bot", grace="1 hour")
    assert new_secret != secret
    expect(keys.cell("ci-bot", "State")).to_contain_text("Old secret works until")
    assert chat(router, new_secret).endswith("says: Hello there")
    assert chat(router, secret).endswith("says: Hello there")  # within the grace period
    # The router writes last-use times every few seconds.
    keys.refresh_until(keys.cell("ci-bot", "Last used"), A_TIME, seconds=15)

    keys.revoke("ci-bot")
    expect(keys.cell("ci-bot", "State")).to_have_text("Revoked")
    expect(keys.row("ci-bot").get_by_role("button")).to_have_count(0)
    expect(keys.secret_panel).to_be_hidden()  # a revoked key's secret is of no use
    expect(page.get_by_text("Revoked key “ci-bot”: it is refused from now on.")).to_be_visible()
    for revoked in (new_secret, secret):
        with pytest.raises(openai.AuthenticationError):
            chat(router, revoked)

    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / "settings-api-keys.png", full_page=True)


def test_an_expiry_set_on_the_page_is_enforced(page: Page, router: RouterProcess) -> None:
    keys = signed_in(page, router)
    secret = keys.create("temp", expires="2031-01-01T12:00")
    expect(keys.cell("temp", "Expires")).to_have_text("Jan 1, 2031, 12:00 PM")
    key_id = secret.split("-")[2]
    noon = datetime(2031, 1, 1, 12, 0, tzinfo=ZoneInfo(TIMEZONE)).timestamp()
    with httpx.Client(base_url=router.url, headers=ADMIN) as admin:
        assert admin.get(f"/admin/keys/{key_id}").json()["expires_at"] == noon
    assert chat(router, secret).endswith("says: Hello there")

    keys.edit("temp", expires="2020-06-30T09:30")
    expect(keys.cell("temp", "State")).to_have_text("Expired")
    expect(keys.cell("temp", "Expires")).to_have_text("Jun 30, 2020, 9:30 AM")
    with pytest.raises(openai.AuthenticationError):
        chat(router, secret)

    keys.edit("temp", expires="")
    expect(keys.cell("temp", "Expires")).to_have_text("Never")
    expect(keys.cell("temp", "State")).to_have_text("Active")
    assert chat(router, secret).endswith("says: Hello there")


def test_priority_is_set_and_edited_on_the_page(page: Page, router: RouterProcess) -> None:
    """The Priority select: a new key is default, one made as batch is batch in the list and
    the API, and an edit to interactive reaches the record; the key keeps working."""
    keys = signed_in(page, router)
    keys.create("plain")
    expect(keys.cell("plain", "Priority")).to_have_text("default")
    secret = keys.create("nightly", priority="batch")
    expect(keys.cell("nightly", "Priority")).to_have_text("batch")
    key_id = secret.split("-")[2]
    with httpx.Client(base_url=router.url, headers=ADMIN) as admin:
        assert admin.get(f"/admin/keys/{key_id}").json()["priority"] == "batch"
        keys.edit("nightly", priority="interactive")
        expect(keys.cell("nightly", "Priority")).to_have_text("interactive")
        assert admin.get(f"/admin/keys/{key_id}").json()["priority"] == "interactive"
    keys.row("nightly").get_by_role("button", name="Edit key nightly").click()
    expect(keys.dialog.get_by_label("Priority", exact=True)).to_have_value("interactive")
    keys.dialog.get_by_role("button", name="Cancel").click()
    assert chat(router, secret).endswith("says: Hello there")


def test_a_field_error_from_the_api_shows_next_to_that_field(
    page: Page, router: RouterProcess, console: Console
) -> None:
    console.allow(400, "/admin/keys")
    keys = signed_in(page, router)
    keys.open_create()
    keys.fill_key_form(name="load-test", rpm="-5")
    keys.dialog.get_by_role("button", name="Create key").click()

    rpm = keys.dialog.get_by_label("Requests per minute")
    message = (
        "Invalid 'limits.rpm': expected an integer from 0 to 1000000000000, or null (no limit)."
    )
    expect(rpm).to_have_accessible_description(message)
    expect(rpm).to_have_attribute("aria-invalid", "true")
    expect(rpm).to_be_focused()
    expect(keys.dialog.get_by_label("Name", exact=True)).not_to_have_attribute(
        "aria-invalid", "true"
    )

    keys.fill_key_form(name=" ", rpm="60")
    keys.dialog.get_by_role("button", name="Create key").click()
    name = keys.dialog.get_by_label("Name", exact=True)
    expect(name).to_have_accessible_description(
        "Who or what uses the key, e.g. “backend-team”. "
        "Invalid 'name': expected 1 to 200 characters, not all blank."
    )
    expect(rpm).not_to_have_attribute("aria-invalid", "true")

    keys.fill_key_form(name="load-test")
    keys.dialog.get_by_role("button", name="Create key").click()
    expect(keys.dialog).to_be_hidden()
    expect(keys.cell("load-test", "Limits")).to_have_text("60 requests/min")
    expect(page.get_by_role("row")).to_have_count(2)  # the header and the one key


# --- how it is built -------------------------------------------------------------------------


def test_pages_are_served_under_a_strict_content_security_policy(
    page: Page, router: RouterProcess
) -> None:
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    response = KeysPage(page, router.url).open()
    expect(page.get_by_role("heading", name="API keys")).to_be_visible()

    csp = response.headers["content-security-policy"]
    for directive in ("default-src 'none'", "script-src 'self'", "style-src 'self'"):
        assert directive in csp.split("; ")
    assert "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    # The page runs (its script signed nothing in yet, but rendered the form) and asked no
    # other origin for anything.
    assert requested
    assert all(url.startswith(router.url + "/") for url in requested), requested


def test_the_home_page_links_to_the_keys_page(page: Page, router: RouterProcess) -> None:
    page.goto(router.url + "/")
    page.get_by_role("link", name="API keys").click()
    expect(page).to_have_url(router.url + "/settings/api-keys")
    expect(page.get_by_role("heading", name="API keys")).to_be_visible()


def test_the_page_works_with_the_keyboard_alone(page: Page, router: RouterProcess) -> None:
    keys = KeysPage(page, router.url)
    keys.open()
    keys.admin_key_field.focus()
    page.keyboard.type(ADMIN_KEY)
    page.keyboard.press("Enter")
    keys.expect_signed_in()

    create = page.get_by_role("button", name="Create a key")
    create.focus()
    page.keyboard.press("Enter")
    expect(keys.dialog.get_by_label("Name", exact=True)).to_be_focused()
    page.keyboard.press("Escape")
    expect(keys.dialog).to_be_hidden()
    expect(create).to_be_focused()

    page.keyboard.press("Enter")
    page.keyboard.type("keyboard-user")
    page.keyboard.press("Enter")
    expect(keys.secret_panel).to_be_focused()
    page.keyboard.press("Tab")
    expect(keys.secret_panel.get_by_label("Secret")).to_be_focused()
    expect(keys.cell("keyboard-user", "State")).to_have_text("Active")


@pytest.mark.parametrize("viewport", [PHONE], ids=["375px"])
def test_the_page_fits_a_phone(page: Page, router: RouterProcess) -> None:
    keys = signed_in(page, router)
    keys.create("a-rather-long-key-name-for-the-mobile-team", models="gpt-4o, gpt-4o-mini*")
    keys.create("second", rpm="100", tpm="20000", concurrency="2")
    expect(keys.cell("second", "Limits")).to_be_visible()

    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    for button in page.get_by_role("button").all():
        if button.is_visible():
            box = button.bounding_box()
            assert box is not None
            assert box["x"] >= 0
            assert box["x"] + box["width"] <= PHONE["width"]

    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / "settings-api-keys-phone.png", full_page=True)
