"""Schemathesis hooks of the contract tests (loaded through SCHEMATHESIS_HOOKS).

- `no_foreign_domain_data`, a check: in the domain admin's run no response (body or
  headers) holds data of domain B. Every name and text of B carries the marker
  (`state.json`'s `marker`), so B's data shows as words holding it (`zqxmarkb-ann`,
  `sip.zqxmarkb.example.net`), and B's MACs are markers in every spelling
  (`state.json`'s `macs`). A word the request itself carried does not count (an error
  may echo what it was sent, and asking for /domains/B/... is allowed, if refused); any
  other is B's data.
- an `after_call` hook that writes one line per response to the call log: operation,
  status, and for the operator's run the markers seen, so scripts/contract can tell that
  the run reached the seeded data and that the markers are there to be found.
"""

import json
import os
import re
import urllib.parse

import schemathesis

ROLE = os.environ["PROVISOR_CONTRACT_ROLE"]  # operator | domain-admin
with open(os.environ["PROVISOR_CONTRACT_STATE"]) as _f:
    _state = json.load(_f)
MACS = [m.lower() for m in _state["macs"]]
WORD = re.compile(r"[a-z0-9._@+-]*" + re.escape(_state["marker"].lower()) + r"[a-z0-9._@+-]*")
_LOG = open(os.environ["PROVISOR_CONTRACT_LOG"], "a", buffering=1)


def _text(data):
    if data is None:
        return ""
    if isinstance(data, bytes):
        return data.decode("utf-8", "replace")
    if isinstance(data, str):
        return data
    return str(data)


def _request_text(request):
    url = request.url or ""
    body = _text(request.body)
    return "\n".join([url, urllib.parse.unquote(url), body, urllib.parse.unquote_plus(body)]).lower()


def _response_text(response):
    headers = "\n".join(f"{k}: {v}" for k, vs in response.headers.items() for v in vs)
    return (headers + "\n" + _text(response.content)).lower()


def markers_in(response):
    """Domain B's words and MACs in the response that the request did not carry."""
    sent = _request_text(response.request)
    got = _response_text(response)
    sent_words = set(WORD.findall(sent))
    words = sorted({w for w in WORD.findall(got) if w not in sent_words})
    return words + [m for m in MACS if m in got and m not in sent]


@schemathesis.check
def no_foreign_domain_data(ctx, response, case):
    """Domain A's admin never gets to see domain B's data."""
    if ROLE != "domain-admin":
        return None
    found = markers_in(response)
    if found:
        raise AssertionError(
            f"the response holds domain B's data ({', '.join(found)}): "
            f"{_text(response.content)[:500]}"
        )
    return None


@schemathesis.hook
def after_call(context, case, response):
    path = urllib.parse.unquote(urllib.parse.urlsplit(response.request.url or "").path)
    record = {"op": case.operation.label, "status": response.status_code,
              "foreign": f"/domains/{_state['b']['domain']}" in path}
    if ROLE == "operator":
        record["markers"] = markers_in(response)
    _LOG.write(json.dumps(record) + "\n")
