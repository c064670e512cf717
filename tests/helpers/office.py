"""The back office as a browser uses it: falcon's TestClient keeping one staff member's cookies."""

from __future__ import annotations

import re
from urllib.parse import urlencode

from falcon import testing

PASSWORD = "correct horse battery"
CSRF = re.compile(r'name="csrf" value="([^"]+)"')
NONCE = re.compile(r'name="nonce" value="([^"]+)"')


class Office:
    """A TestClient with one staff member's cookies, as a browser keeps them."""

    def __init__(self, app, tenant: str, *, remote_addr: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        self.client = testing.TestClient(app)
        self.tenant = tenant
        self.cookies: dict[str, str] = {}
        self.csrf = ""
        self.sent = {"remote_addr": remote_addr, "headers": headers}  # where it comes from

    def login(self, username: str, password: str = PASSWORD, totp: str | None = None,
              lang: str = "en"):
        form = self.get(f"/office/{self.tenant}/login")
        nonce = NONCE.search(form.text).group(1)
        fields = {"username": username, "password": password, "nonce": nonce, "lang": lang}
        if totp is not None:
            fields["totp"] = totp
        done = self.post(f"/office/{self.tenant}/login", fields, csrf=False)
        if done.status_code == 303:
            found = CSRF.search(self.get(f"/office/{self.tenant}").text)
            self.csrf = found.group(1) if found else ""
        return done

    def _keep(self, result):
        for name, cookie in result.cookies.items():
            if cookie.value:
                self.cookies[name] = cookie.value
            else:
                self.cookies.pop(name, None)
        return result

    def get(self, path: str, **params):
        return self._keep(self.client.simulate_get(path, params=params or None,
                                                   cookies=self.cookies, **self.sent))

    def post(self, path: str, fields: dict | None = None, *, csrf: bool = True):
        fields = dict(fields or {})
        if csrf:
            fields.setdefault("csrf", self.csrf)
        return self._keep(self.client.simulate_post(
            path, body=urlencode(fields), cookies=self.cookies,
            content_type="application/x-www-form-urlencoded", **self.sent))
