"""The Settings → API Keys page as a person uses it: by labels, roles and visible text.

Every step waits through Playwright's auto-waiting ``expect`` for what the person would wait
for (a dialog closing, a secret appearing), never for a fixed time.
"""

from __future__ import annotations

import re
import time

from playwright.sync_api import Locator, Page, Response, expect

PATH = "/settings/api-keys"


class KeysPage:
    def __init__(self, page: Page, base_url: str) -> None:
        self.page = page
        self.base_url = base_url

    def open(self) -> Response:
        response = self.page.goto(self.base_url + PATH)
        assert response is not None
        return response

    # --- signing in ----------------------------------------------------------------------------

    @property
    def admin_key_field(self) -> Locator:
        return self.page.get_by_label("Admin key")

    def sign_in(self, admin_key: str) -> None:
        self.admin_key_field.fill(admin_key)
        self.page.get_by_role("button", name="Sign in").click()

    def expect_signed_in(self) -> None:
        expect(self.page.get_by_role("heading", name="Keys", exact=True)).to_be_visible()
        expect(self.admin_key_field).to_be_hidden()

    # --- the list ------------------------------------------------------------------------------

    def row(self, name: str) -> Locator:
        return self.page.get_by_role("row").filter(
            has=self.page.get_by_role("rowheader", name=name, exact=True)
        )

    def cell(self, name: str, column: str) -> Locator:
        return self.row(name).locator(f'[data-label="{column}"]')

    def refresh_until(self, cell: Locator, text: re.Pattern[str], seconds: float) -> None:
        """Press Refresh until ``cell`` reads ``text``: for what the router records later."""
        deadline = time.monotonic() + seconds
        while True:
            self.page.get_by_role("button", name="Refresh").click()
            try:
                expect(cell).to_have_text(text, timeout=1000)
                return
            except AssertionError:
                if time.monotonic() > deadline:
                    raise

    # --- actions -------------------------------------------------------------------------------

    @property
    def dialog(self) -> Locator:
        return self.page.get_by_role("dialog")

    def open_create(self) -> None:
        self.page.get_by_role("button", name="Create a key").click()
        expect(self.dialog).to_be_visible()

    def fill_key_form(self, **fields: str) -> None:
        """Fill fields of the open key dialog by label: name=…, models=…, rpm=…, …"""
        for field, value in fields.items():
            control = self.dialog.get_by_label(LABELS[field], exact=True)
            if field == "priority":
                control.select_option(value=value)
            else:
                control.fill(value)

    def create(self, name: str, **fields: str) -> str:
        """Create a key through the dialog; the secret the page shows once."""
        self.open_create()
        self.fill_key_form(name=name, **fields)
        self.dialog.get_by_role("button", name="Create key").click()
        expect(self.dialog).to_be_hidden()
        return self.shown_secret(name)

    def edit(self, name: str, **fields: str) -> None:
        self.row(name).get_by_role("button", name=f"Edit key {name}").click()
        self.fill_key_form(**fields)
        self.dialog.get_by_role("button", name="Save changes").click()
        expect(self.dialog).to_be_hidden()

    def rotate(self, name: str, grace: str) -> str:
        self.row(name).get_by_role("button", name=f"Rotate key {name}").click()
        self.dialog.get_by_label("Old secret keeps working for").select_option(label=grace)
        self.dialog.get_by_role("button", name="Rotate key").click()
        expect(self.dialog).to_be_hidden()
        return self.shown_secret(name)

    def revoke(self, name: str) -> None:
        self.row(name).get_by_role("button", name=f"Revoke key {name}").click()
        expect(self.dialog).to_contain_text("This cannot be undone")
        self.dialog.get_by_role("button", name="Revoke key").click()
        expect(self.dialog).to_be_hidden()

    # --- the show-once secret ------------------------------------------------------------------

    @property
    def secret_panel(self) -> Locator:
        return self.page.get_by_role("region", name=SECRET_TITLE)

    def shown_secret(self, name: str) -> str:
        panel = self.page.get_by_role("region", name=f"{SECRET_TITLE} “{name}”")
        expect(panel).to_be_visible()
        expect(panel).to_contain_text("This secret will not be shown again.")
        secret = panel.get_by_label("Secret").input_value()
        assert secret.startswith("sk-sy-"), secret
        return secret


SECRET_TITLE = "Secret of key"
LABELS = {
    "name": "Name",
    "models": "Allowed models",
    "rpm": "Requests per minute",
    "tpm": "Tokens per minute",
    "concurrency": "Concurrent requests",
    "expires": "Expires at (optional)",
    "priority": "Priority",
}
