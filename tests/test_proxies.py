"""Trusted proxies: the client, scheme and host behind a real nginx, and never from a stranger.

The pure reading of Forwarded / X-Forwarded-* (``verify_api/proxies.py``) is
tested with hypothesis; then ``itemseal serve --trusted-proxies 127.0.0.1``
runs behind Debian's nginx, started by the test, with clients connecting from
different loopback addresses (127.0.0.2, .3 ...): each is its own client for
the rate limit, the scheme and host are nginx's, and a spoofed
X-Forwarded-For from a peer that is not the proxy changes nothing. A
chunked request body reaches ``itemseal serve`` whole.
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from helpers.cli_runner import run
from helpers.serving import free_port, serving
from hypothesis import given
from hypothesis import strategies as st
from twilio.request_validator import RequestValidator

from verify_api.exc import SettingError
from verify_api.proxies import apply_to_scope, forwarded_view, parse_networks

PROXY = parse_networks("10.0.0.0/8, 127.0.0.1")
NUMBER = "106570216001"
SECRET = "proxy-gateway-secret-0001"
NGINX = shutil.which("nginx") or next(
    (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if Path(p).exists()), None)

addresses = st.ip_addresses(v=4).map(str)


@given(addresses, st.lists(addresses, max_size=4))
def test_an_untrusted_peer_is_the_client_whatever_it_says(peer, chain):
    if ipaddress.ip_address(peer).is_private:
        return
    headers = {b"x-forwarded-for": ", ".join(chain), b"x-forwarded-proto": "https",
               b"x-forwarded-host": "evil.example", b"forwarded": "for=1.2.3.4;host=evil"}
    view = forwarded_view(peer, "http", headers, PROXY)
    assert (view.client, view.scheme, view.host) == (peer, "http", None)


@given(addresses, st.lists(st.sampled_from(["10.0.0.1", "10.9.9.9", "127.0.0.1"]), max_size=3))
def test_behind_trusted_proxies_the_client_is_the_first_untrusted_from_the_right(client, hops):
    if any(ipaddress.ip_address(client) in n for n in PROXY):
        return
    chain = ["198.51.100.66", client, *hops]  # the left-most was written by the client: ignored
    headers = {b"x-forwarded-for": ", ".join(chain), b"x-forwarded-proto": "https",
               b"x-forwarded-host": "v.acme.example"}
    view = forwarded_view("10.0.0.1", "http", headers, PROXY)
    assert (view.client, view.scheme, view.host) == (client, "https", "v.acme.example")


def test_rfc_7239_forwarded_and_the_scope():
    headers = {b"forwarded": 'for=192.0.2.60;proto=https;by=203.0.113.43, for="[2001:db8::17]:47"'
               ';proto=https;host="v.acme.example"'}
    view = forwarded_view("127.0.0.1", "http", headers, PROXY)
    assert (view.client, view.scheme, view.host) == ("2001:db8::17", "https", "v.acme.example")
    scope = {"type": "http", "scheme": "http", "client": ("127.0.0.1", 5000), "headers": [
        (b"host", b"internal:8080"), (b"x-forwarded-for", b"203.0.113.9"),
        (b"x-forwarded-proto", b"https"), (b"x-forwarded-host", b"v.acme.example")]}
    seen = apply_to_scope(scope, PROXY)
    assert seen["client"] == ("203.0.113.9", 5000) and seen["scheme"] == "https"
    assert seen["headers"] == [(b"host", b"v.acme.example")]
    stranger = apply_to_scope({**scope, "client": ("198.51.100.1", 1)}, PROXY)
    assert stranger["client"] == ("198.51.100.1", 1) and stranger["scheme"] == "http"
    assert stranger["headers"] == [(b"host", b"internal:8080")]  # the lies are dropped
    with pytest.raises(SettingError, match="10.0.0.300"):
        parse_networks("10.0.0.300")


# ------------------------------------------------------------------ behind a real nginx


def nginx_conf(folder: Path, port: int, upstream: str) -> Path:
    for name in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (folder / name).mkdir(exist_ok=True)
    conf = folder / "nginx.conf"
    conf.write_text(f"""
daemon off;
master_process off;
worker_processes 1;
pid {folder}/nginx.pid;
error_log {folder}/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {folder}/body;
    proxy_temp_path {folder}/proxy;
    fastcgi_temp_path {folder}/fastcgi;
    uwsgi_temp_path {folder}/uwsgi;
    scgi_temp_path {folder}/scgi;
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass {upstream};
            proxy_http_version 1.1;
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto https;
            proxy_set_header X-Forwarded-Host $host;
        }}
    }}
}}
""")
    return conf


def request(port: int, method: str, path: str, *, source: str, body: bytes | None = None,
            headers: dict | None = None) -> tuple[int, dict, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30, source_address=(source, 0))
    try:
        conn.request(method, path, body=body, headers=headers or {})
        answer = conn.getresponse()
        return answer.status, {k.lower(): v for k, v in answer.getheaders()}, answer.read()
    finally:
        conn.close()


@pytest.fixture
def tenant(itemseal_env) -> dict:
    env = itemseal_env
    run(env, "tenant", "create", "ACME", "--name", "Acme Cosmetics")
    run(env, "tenant", "set", "ACME", "--rate-ip", "3/60", "--sms-number", NUMBER,
        "--gateway-secret", SECRET)
    return env


@pytest.mark.slow
def test_itemseal_serve_behind_a_real_nginx(tenant, tmp_path):
    if NGINX is None:
        pytest.skip("\n" + "#" * 78 + "\n# nginx is not installed: the reverse-proxy test is"
                    " SKIPPED.\n# Install it with: sh scripts/ensure-debs.sh nginx\n" + "#" * 78)
    with serving(tenant, tmp_path / "serve.log", extra=("--trusted-proxies", "127.0.0.1")) as (
            base, _):
        port = free_port()
        conf = nginx_conf(tmp_path, port, base)
        log = tmp_path / "nginx.out"
        with log.open("wb") as sink:
            proxy = subprocess.Popen([NGINX, "-p", str(tmp_path), "-c", str(conf)],
                                     stdout=sink, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 20
            while True:
                assert proxy.poll() is None, log.read_text()
                try:
                    if request(port, "GET", "/healthz", source="127.0.0.9")[0] == 200:
                        break
                except OSError:
                    pass
                assert time.monotonic() < deadline, "nginx did not come up"
                time.sleep(0.1)
            check_behind_nginx(port, int(base.rsplit(":", 1)[1]))
        finally:
            proxy.send_signal(signal.SIGQUIT)
            try:
                proxy.wait(10)
            except subprocess.TimeoutExpired:
                proxy.kill()
                proxy.wait(5)


def verify(port: int, source: str, headers: dict | None = None) -> int:
    body = json.dumps({"code": "0000 0000"}).encode()
    return request(port, "POST", "/v1/tenants/ACME/verify", source=source, body=body,
                   headers={"Content-Type": "application/json", **(headers or {})})[0]


def check_behind_nginx(port: int, direct: int) -> None:
    # per real client: three checks each (the limit is 3/60), the fourth refused, per client
    for client in ("127.0.0.2", "127.0.0.3"):
        statuses = [verify(port, client, {"X-Forwarded-For": f"203.0.113.{i}"}) for i in range(4)]
        assert statuses == [200, 200, 200, 429], (client, statuses)
    # a peer that is not the proxy: its made-up X-Forwarded-For is ignored
    spoofed = [verify(direct, "127.0.0.4", {"X-Forwarded-For": f"198.51.100.{i}"})
               for i in range(4)]
    assert spoofed == [200, 200, 200, 429]
    # scheme: nginx says https, so the page's cookie is Secure; a stranger saying so is not
    status, headers, _ = request(port, "GET", "/t/ACME/v/00000000", source="127.0.0.5")
    assert status == 200 and "secure" in headers["set-cookie"].lower()
    status, headers, _ = request(direct, "GET", "/t/ACME/v/00000000", source="127.0.0.6",
                                 headers={"X-Forwarded-Proto": "https"})
    assert status == 200 and "secure" not in headers["set-cookie"].lower()
    # host: Twilio signed the public URL; nginx passes the host it was asked for
    form = {"From": "+8613800138000", "To": NUMBER, "Body": "666", "MessageSid": "SM-nginx"}
    signature = RequestValidator(SECRET).compute_signature(
        "https://shop.example/v1/sms/twilio", form)
    body = "&".join(f"{k}={v}" for k, v in form.items()).replace("+", "%2B").encode()
    headers = {"Content-Type": "application/x-www-form-urlencoded",
               "X-Twilio-Signature": signature}
    proxied = request(port, "POST", "/v1/sms/twilio", source="127.0.0.7", body=body,
                      headers={**headers, "Host": "shop.example"})
    assert proxied[0] == 200, proxied
    lied = request(direct, "POST", "/v1/sms/twilio", source="127.0.0.8", body=body, headers={
        **headers, "X-Forwarded-Host": "shop.example", "X-Forwarded-Proto": "https"})
    assert lied[0] == 403


def test_a_chunked_body_reaches_itemseal_serve_whole(tenant, tmp_path):
    with serving(tenant, tmp_path / "serve.log", workers=1) as (base, _):
        port = int(base.rsplit(":", 1)[1])
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        pieces = [b'{"co', b'de": "00', b'00 0000"', b', "channel": "api"}']
        conn.request("POST", "/v1/tenants/ACME/verify", body=iter(pieces),
                     headers={"Content-Type": "application/json"}, encode_chunked=True)
        answer = conn.getresponse()
        data = json.loads(answer.read())
        conn.close()
        assert answer.status == 200 and data["result"] == "malformed", data
        # nor does the answer name the HTTP stack (uvicorn sends ``server: uvicorn`` by default)
        assert answer.getheader("server") is None, answer.getheaders()
        assert answer.getheader("date") is not None
