"""Response header names on the wire, in Salesforce's spelling (``Content-Type``, ``Sforce-Limit-Info``,
``Sforce-Locator`` ...), read from the raw bytes of a TLS socket: requests and httpx normalise names, some
clients look them up case-sensitively."""

from __future__ import annotations

import socket
import ssl
from urllib.parse import urlsplit

import pytest

# every header name the emulator may send, as Salesforce spells it
SALESFORCE_SPELLING = {"Content-Type", "Content-Length", "Transfer-Encoding", "Connection", "Date",
                       "Sforce-Limit-Info", "Sforce-Locator", "Sforce-NumberOfRecords", "Retry-After"}


class RawResponse:
    def __init__(self, status: int, header_names: list[str], headers: dict[str, str], body: bytes):
        self.status, self.header_names, self.headers, self.body = status, header_names, headers, body


def _read_response(stream, method: str) -> RawResponse:
    status_line = stream.readline()
    assert status_line.startswith(b"HTTP/1.1 "), status_line
    names, headers = [], {}
    while (line := stream.readline()) != b"\r\n":
        name, _, value = line.decode("latin-1").rstrip("\r\n").partition(":")
        names.append(name)
        headers[name.lower()] = value.strip()
    status = int(status_line.split()[1])
    if method == "HEAD" or status in (204, 304):
        body = b""
    elif headers.get("transfer-encoding") == "chunked":
        parts = []
        while size := int(stream.readline().split(b";")[0], 16):
            parts.append(stream.read(size))
            assert stream.read(2) == b"\r\n"
        assert stream.readline() == b"\r\n"  # no trailers
        body = b"".join(parts)
    else:
        body = stream.read(int(headers["content-length"]))
    return RawResponse(status, names, headers, body)


@pytest.fixture
def raw(emulator, emulator_process):
    """``raw([(method, path, headers, body), ...]) -> [RawResponse]``: the requests sent one after the other
    on ONE kept-alive TLS connection, the answers parsed from the bytes as they arrived."""
    info = emulator_process.info
    url = urlsplit(info["instance_url"])
    context = ssl.create_default_context(cafile=info["ca_file"])

    def exchange(requests: list[tuple]) -> list[RawResponse]:
        with socket.create_connection((url.hostname, url.port), timeout=60) as plain, \
                context.wrap_socket(plain, server_hostname=url.hostname) as tls, tls.makefile("rb") as stream:
            answers = []
            for method, path, headers, body in requests:
                head = {"Host": url.netloc, "Authorization": f"Bearer {info['session_id']}",
                        "Content-Length": str(len(body)), **headers}
                lines = [f"{method} {path} HTTP/1.1", *(f"{k}: {v}" for k, v in head.items()), "", ""]
                tls.sendall("\r\n".join(lines).encode() + body)
                answers.append(_read_response(stream, method))
            return answers

    return exchange


def _one(raw, method: str, path: str, headers: dict | None = None, body: bytes = b"") -> RawResponse:
    return raw([(method, path, headers or {}, body)])[0]


def _assert_salesforce_spelling(response: RawResponse) -> None:
    assert set(response.header_names) <= SALESFORCE_SPELLING, response.header_names


V = "/services/data/v59.0/"


@pytest.mark.parametrize(("method", "path", "headers", "status"), [
    ("GET", V + "limits/", {}, 200),
    ("HEAD", V + "limits/", {}, 200),
    ("GET", V + "query/?q=SELECT+Id+FROM+Lead", {}, 200),
    ("GET", V + "query/?q=SELECT+Nope+FROM+Lead", {}, 400),
    ("GET", V + "limits/", {"Authorization": "Bearer wrong"}, 401),
    ("GET", V + "sobjects/Lead/00Q8d0000000001AAA", {}, 404),
    ("PUT", V + "sobjects/Lead/00Q8d0000000001AAA", {}, 405),
    ("GET", V + "sobjects/Lead/describe/", {"If-Modified-Since": "Mon, 01 Jan 2024 00:00:00 GMT"}, 304),
    ("GET", "/services/async/59.0/job/750000000000000AAA", {}, 400),
    ("GET", "/services/elsewhere", {}, 404),
])
def test_rest_and_error_answers_spell_header_names_like_salesforce(raw, method, path, headers, status):
    response = _one(raw, method, path, headers)
    assert response.status == status
    _assert_salesforce_spelling(response)
    assert {"Sforce-Limit-Info", "Date"} <= set(response.header_names)
    has_body = status != 304
    assert ("Content-Type" in response.header_names) is has_body
    assert ("Content-Length" in response.header_names) is has_body


def test_refused_for_limits_answers_with_salesforce_spelling(raw, emulator):
    emulator.inject_fault("limit")
    response = _one(raw, "GET", V + "limits/")
    assert response.status == 403
    _assert_salesforce_spelling(response)


def test_retry_after_of_a_503_is_spelt_like_salesforce(raw, emulator):
    emulator.inject_fault("503")
    response = _one(raw, "GET", V + "limits/")
    assert response.status == 503 and "Retry-After" in response.header_names
    _assert_salesforce_spelling(response)


def test_bulk2_results_carry_content_type_and_sforce_headers_spelt_like_salesforce(raw, emulator, api):
    emulator.seed("Lead", [{"LastName": f"L{i}", "Company": "X"} for i in range(3)])
    job = api("POST", "jobs/query", json={"operation": "query",
                                          "query": "SELECT LastName FROM Lead ORDER BY LastName"}).json()
    response = _one(raw, "GET", f"{V}jobs/query/{job['id']}/results?maxRecords=2")
    assert response.status == 200
    _assert_salesforce_spelling(response)
    # streamed: chunked, without Content-Length
    assert {"Content-Type", "Sforce-Locator", "Sforce-NumberOfRecords", "Transfer-Encoding"} <= set(
        response.header_names)
    assert response.body == b'"LastName"\n"L0"\n"L1"\n'
    assert response.headers["content-type"].startswith("text/csv")
    assert response.headers["sforce-numberofrecords"] == "2"


def test_bulk2_ingest_answers_are_spelt_like_salesforce(raw, api):
    job = api("POST", "jobs/ingest", json={"object": "Lead", "operation": "insert"}).json()
    upload = _one(raw, "PUT", f"{V}jobs/ingest/{job['id']}/batches", {"Content-Type": "text/csv"},
                  b"LastName,Company\nJansen,X\n")
    assert upload.status == 201
    _assert_salesforce_spelling(upload)


def test_bulk1_answers_are_spelt_like_salesforce(raw, emulator_process):
    body = b'{"operation": "insert", "object": "Lead", "contentType": "JSON"}'
    response = _one(raw, "POST", "/services/async/59.0/job",
                    {"X-SFDC-Session": emulator_process.info["session_id"], "Content-Type": "application/json"}, body)
    assert response.status == 201
    _assert_salesforce_spelling(response)


def test_every_answer_on_a_kept_alive_connection_is_spelt_like_salesforce(raw):
    answers = raw([("GET", V + "limits/", {}, b""), ("GET", V + "sobjects/", {}, b""),
                   ("GET", V + "limits/", {}, b"")])
    assert [answer.status for answer in answers] == [200, 200, 200]
    for answer in answers:
        _assert_salesforce_spelling(answer)
        assert "Connection" not in answer.header_names  # kept open


def test_closing_answer_spells_connection_like_salesforce(raw):
    response = _one(raw, "GET", V + "limits/", {"Connection": "close"})
    assert response.header_names[-1] == "Connection" and response.headers["connection"] == "close"
    _assert_salesforce_spelling(response)


def test_no_content_answer_has_neither_content_type_nor_length(raw, emulator):
    [lead_id] = emulator.seed("Lead", [{"LastName": "Jansen", "Company": "X"}])
    response = _one(raw, "PATCH", f"{V}sobjects/Lead/{lead_id}", {"Content-Type": "application/json"},
                    b'{"City": "Ede"}')
    assert response.status == 204
    assert response.header_names == ["Sforce-Limit-Info", "Date"]
