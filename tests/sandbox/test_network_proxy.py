"""The loopback fault proxy (`prefect_lemlist.sandbox.network`) in front of a real sandbox.

Each fault is shown twice: what httpx raises (or receives) on the client side, and whether the
request reached the sandbox (its own per-route request counter).
"""

from __future__ import annotations

import threading
import time

import httpx
import pytest
from _sandboxes import sandbox_fixture

from prefect_lemlist.sandbox.network import FaultProxy, NetworkFault, ProxyStats

SHORT = httpx.Timeout(1.0)  # the client's timeout when a fault makes it wait


sandbox = sandbox_fixture("module", leads=5, rate_limit=10_000)


@pytest.fixture
def auth(sandbox) -> httpx.BasicAuth:
    return httpx.BasicAuth("", sandbox.api_key)


@pytest.fixture
def proxy(sandbox):
    with FaultProxy(sandbox.base_url, hold_seconds=5) as running:
        yield running


def reached(sandbox, route: str = "team") -> int:
    """How many requests the sandbox itself received on `route`."""
    return sandbox.stats().requests_by_route.get(route, 0)


def get_team(proxy: FaultProxy, auth, timeout: httpx.Timeout | float = 10.0) -> httpx.Response:
    return httpx.get(f"{proxy.base_url}/team", auth=auth, timeout=timeout)


def test_no_fault_forwards_method_path_query_headers_and_body(sandbox, proxy, auth):
    response = httpx.get(f"{proxy.base_url}/team?version=v2", auth=auth, timeout=10)
    assert response.status_code == 200
    assert response.json()["_id"] == sandbox.team_id
    assert response.headers["connection"] == "close"
    assert response.headers["x-ratelimit-limit"] == "10000"  # upstream headers are relayed

    items = [
        {"input": {"email": "a@b.co"}, "enrichmentRequests": ["find_phone"], "metadata": {"row": 7}}
    ]
    bulk = httpx.post(f"{proxy.base_url}/v2/enrichments/bulk", auth=auth, json=items, timeout=10)
    assert bulk.status_code == 200
    assert bulk.json()[0]["metadata"] == {"row": 7}  # the JSON body reached the sandbox intact

    wrong_key = httpx.get(f"{proxy.base_url}/team", auth=httpx.BasicAuth("", "nope"), timeout=10)
    assert wrong_key.status_code == 401  # the Authorization header is forwarded as is
    stats = proxy.stats
    assert isinstance(stats, ProxyStats)
    assert (stats.requests_seen, stats.forwarded, stats.listening) == (3, 3, True)
    assert sum(stats.faulted.values()) == 0


def test_every_request_uses_a_fresh_connection(proxy, auth):
    with httpx.Client(auth=auth, timeout=10) as client:
        ports = set()
        for _ in range(3):
            with client.stream("GET", f"{proxy.base_url}/team/credits") as response:
                ports.add(response.extensions["network_stream"].get_extra_info("client_addr"))
                assert "credits" in response.read().decode()
    assert len(ports) == 3  # Connection: close on every answer: no keep-alive reuse


def test_refuse_is_connection_refused_and_accept_listens_again_on_the_same_port(
    sandbox, proxy, auth
):
    base_url, before = proxy.base_url, reached(sandbox)
    proxy.refuse()
    assert not proxy.stats.listening
    for _ in range(2):
        with pytest.raises(httpx.ConnectError) as refused:
            get_team(proxy, auth, SHORT)
        assert "refused" in str(refused.value).lower()
    assert reached(sandbox) == before

    proxy.accept()
    assert proxy.base_url == base_url
    assert proxy.stats.listening
    assert get_team(proxy, auth).status_code == 200
    assert reached(sandbox) == before + 1


def test_refuse_after_n_matching_requests_then_accept(sandbox, proxy, auth):
    credits = f"{proxy.base_url}/team/credits"
    proxy.refuse(match=r"^GET /team/credits$", after=2)
    assert httpx.get(credits, auth=auth, timeout=10).status_code == 200
    assert get_team(proxy, auth).status_code == 200  # not matching: not counted
    assert get_team(proxy, auth).status_code == 200
    assert httpx.get(credits, auth=auth, timeout=10).status_code == 200  # the 2nd: answered
    assert not proxy.stats.listening
    before = reached(sandbox)
    with pytest.raises(httpx.ConnectError):
        get_team(proxy, auth, SHORT)
    assert reached(sandbox) == before

    proxy.accept()
    assert httpx.get(credits, auth=auth, timeout=10).status_code == 200
    assert get_team(proxy, auth).status_code == 200  # the pending refusal was consumed


def test_reset_after_request_does_the_work_then_drops_the_connection(sandbox, proxy, auth):
    proxy.set_fault(NetworkFault.RESET_AFTER_REQUEST)
    before = reached(sandbox)
    with pytest.raises((httpx.ReadError, httpx.RemoteProtocolError)):
        get_team(proxy, auth)
    assert reached(sandbox) == before + 1
    assert proxy.stats.faulted[NetworkFault.RESET_AFTER_REQUEST.value] == 1
    assert proxy.stats.forwarded == 1


def test_read_timeout_does_the_work_and_never_answers(sandbox, proxy, auth):
    proxy.set_fault(NetworkFault.READ_TIMEOUT)
    before, started = reached(sandbox), time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        get_team(proxy, auth, SHORT)
    assert time.monotonic() - started < 4
    assert reached(sandbox) == before + 1


def test_held_connections_end_after_hold_seconds(sandbox, auth):
    with FaultProxy(sandbox.base_url, hold_seconds=0.5) as proxy:
        proxy.set_fault(NetworkFault.READ_TIMEOUT)
        started = time.monotonic()
        with pytest.raises(httpx.RemoteProtocolError):  # closed without any answer
            get_team(proxy, auth, 10)
        proxy.set_fault(NetworkFault.STALL_MID_BODY)
        with pytest.raises(httpx.RemoteProtocolError):  # closed with half a body
            get_team(proxy, auth, 10)
        assert time.monotonic() - started < 5


def test_proxy_502_is_an_html_page_and_nothing_is_forwarded(sandbox, proxy, auth):
    proxy.set_fault(NetworkFault.PROXY_502)
    before = reached(sandbox)
    response = get_team(proxy, auth)
    assert response.status_code == 502
    assert response.headers["content-type"] == "text/html"
    assert response.headers["connection"] == "close"
    assert "<title>502 Bad Gateway</title>" in response.text
    assert reached(sandbox) == before
    assert proxy.stats.forwarded == 0


def test_proxy_504_is_an_html_page_after_the_work_was_done(sandbox, proxy, auth):
    proxy.set_fault(NetworkFault.PROXY_504)
    before = reached(sandbox)
    response = get_team(proxy, auth)
    assert response.status_code == 504
    assert response.headers["content-type"] == "text/html"
    assert "<title>504 Gateway Time-out</title>" in response.text
    assert reached(sandbox) == before + 1


def test_stall_mid_body_sends_status_and_half_the_body(sandbox, proxy, auth):
    proxy.set_fault(NetworkFault.STALL_MID_BODY)
    before = reached(sandbox)
    with httpx.Client(auth=auth, timeout=SHORT) as client:
        with client.stream("GET", f"{proxy.base_url}/team") as response:
            assert response.status_code == 200  # the head arrived
            length = int(response.headers["content-length"])
            received = bytearray()
            with pytest.raises((httpx.ReadTimeout, httpx.RemoteProtocolError)):
                for chunk in response.iter_raw():
                    received += chunk
    assert len(received) == length // 2
    assert reached(sandbox) == before + 1
    with pytest.raises((httpx.ReadTimeout, httpx.RemoteProtocolError)):
        get_team(proxy, auth, SHORT)  # the plain way: the client times out reading the body


def test_after_match_and_times(sandbox, proxy, auth):
    credits = f"{proxy.base_url}/team/credits"
    proxy.set_fault(NetworkFault.PROXY_502, match=r"^GET /team/credits$", after=1, times=2)
    statuses = [
        httpx.get(url, auth=auth, params={"q": "1"}, timeout=10).status_code
        for url in (credits, f"{proxy.base_url}/team", credits, credits, credits)
    ]
    # 1st matching passes (`after`), /team does not match, 2 faulted (`times`), then normal.
    assert statuses == [200, 200, 502, 502, 200]
    assert proxy.stats.faulted == {"502": 2}

    proxy.set_fault(NetworkFault.PROXY_504, match="POST")  # until changed
    assert [get_team(proxy, auth).status_code for _ in range(2)] == [200, 200]
    assert httpx.post(f"{proxy.base_url}/team", auth=auth, timeout=10).status_code == 504
    proxy.heal()
    assert httpx.post(f"{proxy.base_url}/team", auth=auth, timeout=10).status_code != 504


def test_https_without_fault_and_tls_handshake_failure(sandbox, auth, monkeypatch):
    with FaultProxy(sandbox.base_url, tls=True, hold_seconds=5) as proxy:
        assert proxy.base_url.startswith("https://127.0.0.1:")
        monkeypatch.setenv("SSL_CERT_FILE", proxy.ca_file)
        before = reached(sandbox)
        assert get_team(proxy, auth).json()["_id"] == sandbox.team_id
        assert reached(sandbox) == before + 1

        proxy.set_fault(NetworkFault.TLS_HANDSHAKE_FAIL, times=2)
        for _ in range(2):
            with pytest.raises(httpx.ConnectError):
                get_team(proxy, auth, SHORT)
        assert reached(sandbox) == before + 1  # nothing of the request was read
        assert proxy.stats.faulted == {"tls_fail": 2}
        assert proxy.stats.requests_seen == 1
        assert get_team(proxy, auth).status_code == 200  # `times` used up

        proxy.set_fault(NetworkFault.TLS_HANDSHAKE_FAIL, after=1, times=1)  # counts handshakes
        assert get_team(proxy, auth).status_code == 200
        with pytest.raises(httpx.ConnectError):
            get_team(proxy, auth, SHORT)
        assert get_team(proxy, auth).status_code == 200
        assert proxy.stats.faulted == {"tls_fail": 3}

        proxy.set_fault(NetworkFault.RESET_AFTER_REQUEST)  # request faults work over TLS too
        with pytest.raises((httpx.ReadError, httpx.RemoteProtocolError)):
            get_team(proxy, auth)


def test_untrusted_certificate_is_a_connect_error(sandbox, auth, monkeypatch):
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    with FaultProxy(sandbox.base_url, tls=True) as proxy:
        with pytest.raises(httpx.ConnectError):
            get_team(proxy, auth, SHORT)
        assert proxy.stats.requests_seen == 0


async def test_works_from_an_async_test_with_its_own_loop(sandbox, proxy, auth):
    async with httpx.AsyncClient(auth=auth, timeout=SHORT) as client:
        assert (await client.get(f"{proxy.base_url}/team")).status_code == 200
        proxy.set_fault(NetworkFault.READ_TIMEOUT, times=1)
        with pytest.raises(httpx.ReadTimeout):
            await client.get(f"{proxy.base_url}/team")
        proxy.refuse()
        with pytest.raises(httpx.ConnectError):
            await client.get(f"{proxy.base_url}/team")
        proxy.accept()
        assert (await client.get(f"{proxy.base_url}/team/credits")).status_code == 200


def test_stop_ends_held_connections_quickly(sandbox, auth):
    proxy = FaultProxy(sandbox.base_url, hold_seconds=60).start()
    proxy.set_fault(NetworkFault.READ_TIMEOUT)
    errors: list[BaseException] = []

    def call() -> None:
        try:
            get_team(proxy, auth, 30)
        except httpx.HTTPError as exc:
            errors.append(exc)

    client = threading.Thread(target=call)
    client.start()
    deadline = time.monotonic() + 5
    while proxy.stats.forwarded == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    started = time.monotonic()
    proxy.stop()
    proxy.stop()  # idempotent
    client.join(5)
    assert time.monotonic() - started < 2
    assert not client.is_alive()
    assert len(errors) == 1
    assert isinstance(errors[0], httpx.RemoteProtocolError | httpx.ReadError)


def test_invalid_setups_are_refused(sandbox, proxy):
    with pytest.raises(ValueError):
        proxy.set_fault(NetworkFault.TLS_HANDSHAKE_FAIL)  # a plain-HTTP proxy
    with pytest.raises(ValueError):
        FaultProxy(sandbox.base_url, host="0.0.0.0")
    with pytest.raises(ValueError):
        FaultProxy("http://192.0.2.1:80")
    with pytest.raises(RuntimeError):
        FaultProxy(sandbox.base_url).refuse()  # not started
