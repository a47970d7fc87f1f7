"""Seeds a running Provisor for the contract tests, through its own API.

Two domains with users, SIP accounts, devices, categories, codes, a rollout, templates,
webhooks, jobs, a firmware pin, innovaphone settings, automatic provisioning, console
admins and tokens. Everything of domain B carries the marker `MARKER` (its MACs are
markers too), so a response that shows any of it to domain A's admin is found.

Writes `state.json` (tokens, names, markers) and one schemathesis configuration per
role into the work directory. Usage: seed.py BASE_URL OPERATOR_TOKEN WORKDIR;
`seed.py snapshot BASE_URL OPERATOR_TOKEN FILE` writes what domain B holds.
"""

import json
import sys

import requests

MARKER = "zqxmarkb"
DOMAIN_A = "alpha.example.com"
DOMAIN_B = f"{MARKER}.example.net"
# The portal password of domain A's first user, for the self-service endpoints.
PORTAL_PASSWORD = "contract portal password"
# Deleted by DELETE /api/v1/domains/{domain} in the runs.
SPARE_DOMAIN = "spare.example.org"


class Api:
    def __init__(self, base, token):
        self.base = base.rstrip("/")
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"

    def call(self, method, path, expect=(200, 201, 204), **kwargs):
        r = self.session.request(method, self.base + path, timeout=30, **kwargs)
        if r.status_code not in expect:
            raise SystemExit(f"seed: {method} {path} answered {r.status_code}: {r.text}")
        return r.json() if r.content and "json" in r.headers.get("content-type", "") else r.text

    def post(self, path, body, **kw):
        return self.call("POST", path, json=body, **kw)


def mac_forms(mac):
    """The spellings a MAC may take in a response (searched case-insensitively)."""
    hexes = mac.replace(":", "").lower()
    pairs = [hexes[i : i + 2] for i in range(0, 12, 2)]
    return [hexes, ":".join(pairs), "-".join(pairs)]


def seed_domain(api, domain, tag, oui_byte):
    """One domain's data; `tag` is put in every name and text (B's is the marker)."""
    d = f"/api/v1/domains/{domain}"
    api.post("/api/v1/domains", {
        "name": domain,
        "description": f"{tag} tenant",
        "settings": {"ntp_server": f"ntp.{domain}", "timezone": "Europe/Berlin", "language": "de"},
    })
    sales = f"{tag}-sales"
    lobby = f"{tag}-lobby"
    api.post(f"{d}/categories", {"name": sales, "provisioning": True,
                                 "settings": {"recheck_minutes": 60}})
    api.post(f"{d}/categories", {"name": lobby, "provisioning": False})
    users = [f"{tag}-ann", f"{tag}-bob", f"{tag}-cy"]
    accounts = []
    for n, user in enumerate(users):
        api.post(f"{d}/users", {
            "username": user,
            "display_name": f"{tag.capitalize()} User {n}",
            "email": f"{user}@{domain}",
            "password": PORTAL_PASSWORD if n == 0 else f"{tag} password {n} long",
            "settings": {"language": "en"},
        })
        for line in range(2):
            sip_user = f"{tag}{n}{line}"
            acct = api.post(f"{d}/users/{user}/accounts", {
                "sip_user": sip_user,
                "auth_user": f"{sip_user}-auth",
                "password": f"{tag}-sip-secret-{n}{line}",
                "display_name": f"{tag} line {n}{line}",
                "registrar": f"sip.{domain}",
                "outbound_proxy": f"proxy.{domain}:5061",
                "transport": "tls" if line else "udp",
            })
            accounts.append((sip_user, acct["id"]))
    macs = [f"00:15:65:{oui_byte}:{oui_byte}:0{i}" for i in range(1, 4)]
    api.post(f"{d}/devices", {"mac": macs[0], "model": "T54W", "category": sales,
                              "user": users[0], "lines": [accounts[0][0], accounts[1][0]],
                              "settings": {"ntp_server": f"ntp2.{domain}"}})
    api.post(f"{d}/devices", {"mac": macs[1], "model": "T46U", "user": users[1],
                              "lines": [accounts[2][0]]})
    api.post(f"{d}/devices", {"mac": macs[2], "vendor": "snom", "model": "D785", "category": lobby})
    api.call("PUT", f"{d}/devices/{macs[0]}/firmware-pin", json={
        "firmware": None, "url": f"http://fw.{domain}/t54w.rom", "version": "96.86.0.110",
    }, expect=(200, 400))
    api.post(f"{d}/codes", {"user": users[0], "category": sales})
    rollout = api.post(f"{d}/rollouts", {"category": sales, "phone": f"{tag} Yealink T54W",
                                         "users": users[1:]})
    mac_cfg = api.call("GET", "/api/v1/vendors/yealink/templates/mac.cfg")
    api.call("PUT", f"{d}/templates/yealink/mac.cfg", data=f"#!version:1.0.0.1\n# {tag}\n" +
             mac_cfg.split("\n", 1)[1], headers={"content-type": "text/plain"})
    api.call("PUT", f"{d}/templates/yealink/cfg{{mac}}.xml?category={sales}",
             data=f"<!-- {tag} --><x>{{{{ device.mac }}}}</x>\n",
             headers={"content-type": "text/plain"})
    hook = api.post(f"{d}/webhooks", {"url": f"http://hooks.{domain}/{tag}", "secret": f"{tag}-hook-secret"})
    job = api.post(f"{d}/jobs", {"kind": "config", "config_type": "ntp", "category": sales,
                                 "params": {"server": f"ntp3.{domain}"}, "percent": 50})
    api.call("PUT", f"{d}/innovaphone", json={"app_password": f"{tag}-app-pw",
                                              "admin_password": f"{tag}-admin-pw",
                                              "default_category": sales})
    api.call("PUT", f"{d}/auto-provisioning?category={sales}", json={"token": f"{tag}autotoken1234567890"},
             expect=(200, 400))
    api.call("POST", f"{d}/users/{users[0]}/linphone")
    installs = api.call("GET", f"{d}/users/{users[0]}/installs")
    api.post("/api/v1/admins", {"name": f"{tag}-console", "role": "domain-admin",
                                "domain": domain, "password": f"{tag} console password"})
    # Spares, for the operations that delete or rename: deleting the objects above would
    # leave the operations after it nothing to reach.
    spare = f"{tag}-spare"
    api.post(f"{d}/categories", {"name": spare})
    api.post(f"{d}/users", {"username": spare, "display_name": f"{tag} spare"})
    spare_acct = api.post(f"{d}/users/{spare}/accounts", {"sip_user": f"{tag}9", "password": f"{tag}-sip-9"})
    spare_mac = f"00:15:65:{oui_byte}:{oui_byte}:09"
    api.post(f"{d}/devices", {"mac": spare_mac, "model": "T54W", "user": spare, "lines": [f"{tag}9"]})
    spare_hook = api.post(f"{d}/webhooks", {"url": f"http://hooks.{domain}/{tag}-spare"})
    api.post("/api/v1/admins", {"name": f"{tag}-spare-console", "role": "domain-admin",
                                "domain": domain, "password": f"{tag} console password 2"})
    return {
        "spare_users": [spare],
        "spare_categories": [spare],
        "spare_macs": [spare_mac],
        "spare_account_ids": [spare_acct["id"]],
        "spare_webhook_ids": [spare_hook["webhook"]["id"]],
        "spare_admins": [f"{tag}-spare-console"],
        # Every user but the portal login the self-service operations sign in with.
        "patchable_users": users[1:] + [spare],
        "domain": domain,
        "users": users,
        "categories": [sales, lobby],
        "macs": macs,
        "sip_users": [s for s, _ in accounts],
        "account_ids": [i for _, i in accounts],
        "job_ids": [job["id"]],
        "webhook_ids": [hook["webhook"]["id"]],
        "rollout_ids": [rollout["rollout"]["id"]],
        "install_ids": [i["id"] for i in installs],
        "admins": [f"{tag}-console"],
    }


def token(api, name, role, domain=None):
    body = {"name": name, "role": role}
    if domain:
        body["domain"] = domain
    return api.post("/api/v1/tokens", body)


def toml_str(v):
    return json.dumps(v)


def toml_list(values):
    return "[" + ", ".join(toml_str(v) for v in values) + "]"


def write_config(path, *, bearer, portal_user, a, b, spare_token_id, firmware):
    """The schemathesis configuration of one run: its credentials, and path parameters
    drawn, most of the time, from the seeded objects of both domains (so requests reach
    real data, and a domain admin's reach into B is tried), otherwise generated."""
    both = lambda key: a[key] + b[key]  # noqa: E731
    dictionaries = {
        "domains": [a["domain"], b["domain"]],
        "users": both("users"),
        "categories": both("categories"),
        "macs": both("macs"),
        "account_ids": both("account_ids"),
        "job_ids": [str(i) for i in both("job_ids")],
        "webhook_ids": both("webhook_ids"),
        "rollout_ids": [str(i) for i in both("rollout_ids")] + [f"{i}.csv" for i in both("rollout_ids")],
        "install_ids": both("install_ids") or [1],
        "vendors": ["yealink", "snom", "poly", "grandstream", "cisco", "fanvil"],
        "template_names": ["mac.cfg", "cfg{mac}.xml", "model.cfg", "common.boot"],
        "admins": both("admins"),
        "firmware": [firmware],
        "spare_users": both("spare_users"),
        "spare_categories": both("spare_categories"),
        "spare_macs": both("spare_macs"),
        "spare_account_ids": both("spare_account_ids"),
        "spare_webhook_ids": both("spare_webhook_ids"),
        "spare_admins": both("spare_admins"),
        "patchable_users": both("patchable_users"),
    }
    lines = [
        "# Written by tests/contract/seed.py for one run of scripts/contract.",
        "[auth.openapi.bearer]",
        f"bearer = {toml_str(bearer)}",
        "[auth.openapi.portal]",
        f"username = {toml_str(portal_user)}",
        f"password = {toml_str(PORTAL_PASSWORD)}",
        "",
    ]
    lines += [
        # Relaxed: schema-valid input may still be refused with a problem document. The
        # server checks what the document cannot say as JSON Schema: character classes of
        # names, cross-field rules (a domain admin needs a domain; `firmware` belongs to
        # software jobs), references to other objects (a category, a user), templates that
        # must compile (422), CSV rows (422). What it must never do for such input, a 5xx
        # or an undocumented answer, the other checks still catch.
        "[checks.positive_data_acceptance]",
        'expected-statuses = ["2XX", "3XX", 400, 401, 403, 404, 409, 422, 429]',
    ]
    for name, values in dictionaries.items():
        lines += [f"[dictionaries.{name}]", f"values = {toml_list(values)}", ""]
    lines += [
        "[parameters]",
        '"path.domain" = { dictionary = "domains", probability = 0.9 }',
        '"path.username" = { dictionary = "users", probability = 0.8 }',
        '"path.mac" = { dictionary = "macs", probability = 0.8 }',
        '"path.category" = { dictionary = "categories", probability = 0.8 }',
        '"path.vendor" = { dictionary = "vendors", probability = 0.8 }',
        '"query.category" = { dictionary = "categories", probability = 0.5 }',
        "",
    ]

    def op(label, params):
        out = ["[[operations]]", f"include-name = {toml_str(label)}"]
        out += ["[operations.parameters]"] + [f'"{k}" = {v}' for k, v in params.items()]
        return out + [""]

    dict_of = lambda name, p=0.8: f'{{ dictionary = "{name}", probability = {p} }}'  # noqa: E731
    for label in ["GET /api/v1/domains/{domain}/accounts/{id}", "PATCH /api/v1/domains/{domain}/accounts/{id}"]:
        lines += op(label, {"path.id": dict_of("account_ids")})
    # What deletes or renames takes the spares (see seed_domain).
    lines += op("DELETE /api/v1/domains/{domain}/accounts/{id}", {"path.id": dict_of("spare_account_ids")})
    lines += op("DELETE /api/v1/domains/{domain}/users/{username}", {"path.username": dict_of("spare_users")})
    lines += op("PATCH /api/v1/domains/{domain}/users/{username}", {"path.username": dict_of("patchable_users")})
    lines += op("DELETE /api/v1/domains/{domain}/devices/{mac}", {"path.mac": dict_of("spare_macs")})
    for label in ["PATCH /api/v1/domains/{domain}/categories/{category}",
                  "DELETE /api/v1/domains/{domain}/categories/{category}"]:
        lines += op(label, {"path.category": dict_of("spare_categories")})
    for label in ["GET /api/v1/domains/{domain}/jobs/{id}", "PATCH /api/v1/domains/{domain}/jobs/{id}",
                  "GET /api/v1/domains/{domain}/jobs/{id}/devices"]:
        lines += op(label, {"path.id": dict_of("job_ids")})
    lines += op("DELETE /api/v1/domains/{domain}/webhooks/{id}", {"path.id": dict_of("spare_webhook_ids")})
    lines += op("GET /api/v1/domains/{domain}/webhooks/{id}/deliveries", {"path.id": dict_of("webhook_ids")})
    lines += op("GET /api/v1/domains/{domain}/rollouts/{id}", {"path.id": dict_of("rollout_ids")})
    for label in ["DELETE /api/v1/domains/{domain}/users/{username}/installs/{id}",
                  "DELETE /api/v1/self/installs/{id}"]:
        lines += op(label, {"path.id": dict_of("install_ids")})
    for label in ["GET /api/v1/domains/{domain}/templates/{vendor}/{name}",
                  "PUT /api/v1/domains/{domain}/templates/{vendor}/{name}",
                  "DELETE /api/v1/domains/{domain}/templates/{vendor}/{name}",
                  "GET /api/v1/vendors/{vendor}/templates/{name}"]:
        lines += op(label, {"path.name": dict_of("template_names")})
    lines += op("PUT /api/v1/admins/{name}/password", {"path.name": dict_of("admins")})
    lines += op("DELETE /api/v1/admins/{name}", {"path.name": dict_of("spare_admins")})
    for label in ["PUT /api/v1/firmware/{name}", "DELETE /api/v1/firmware/{name}"]:
        lines += op(label, {"path.name": dict_of("firmware", 0.5)})
    # Exclusion: revoking a token by id would revoke the very token under test (ids are
    # small integers, which schemathesis tries first). The operation is still tested,
    # always on a spare token made for it.
    lines += op("DELETE /api/v1/tokens/{id}", {"path.id": spare_token_id})
    # Exclusion: deleting domain A or B would leave every later request nothing to reach;
    # the operation deletes a spare domain with data of its own instead.
    lines += op("DELETE /api/v1/domains/{domain}", {"path.domain": toml_str(SPARE_DOMAIN)})
    # Exclusion: `wait` is a long-poll of up to 60 s per request; the run would spend its
    # time waiting. 0 asks without waiting; everything else about the operation is tested.
    lines += op("GET /api/v1/domains/{domain}/events", {"query.wait": 0})
    with open(path, "w") as f:
        f.write("\n".join(lines))


def snapshot(base, operator_token, out):
    """What domain B holds, as the operator sees it: its admin's run must leave it as it
    was (the leak check reads answers; this catches writes across domains)."""
    api = Api(base, operator_token)
    d = f"/api/v1/domains/{DOMAIN_B}"
    taken = {path: api.call("GET", d + path) for path in [
        "", "/export?passwords=true", "/categories", "/users", "/accounts", "/devices",
        "/templates", "/webhooks", "/jobs", "/innovaphone", "/auto-provisioning",
    ]}
    taken["tokens"] = [t for t in api.call("GET", "/api/v1/tokens?limit=1000")["items"]
                       if t.get("domain") == DOMAIN_B]
    taken["admins"] = [a for a in api.call("GET", "/api/v1/admins") if a.get("domain") == DOMAIN_B]
    with open(out, "w") as f:
        json.dump(taken, f, indent=1, sort_keys=True)


def main():
    if sys.argv[1] == "snapshot":
        snapshot(*sys.argv[2:5])
        return
    base, operator_token, workdir = sys.argv[1:4]
    op = Api(base, operator_token)
    firmware = "contract-t54w.rom"
    op.call("PUT", f"/api/v1/firmware/{firmware}", data=b"\x00firmware\xff" * 64,
            headers={"content-type": "application/octet-stream"})
    a = seed_domain(op, DOMAIN_A, "alpha", "a5")
    b = seed_domain(op, DOMAIN_B, MARKER, "b5")
    seed_domain(op, SPARE_DOMAIN, "spare", "c5")
    admin_a = token(op, "alpha admin", "domain-admin", DOMAIN_A)
    token(op, f"{MARKER} admin", "domain-admin", DOMAIN_B)
    spare_operator = token(op, "spare operator", "operator")
    spare_a = token(op, "alpha spare", "domain-admin", DOMAIN_A)
    macs = [form for mac in b["macs"] + b["spare_macs"] for form in mac_forms(mac)]
    state = {"base": base, "a": a, "b": b, "marker": MARKER, "macs": macs,
             "operator_token": operator_token, "admin_token": admin_a["token"]}
    with open(f"{workdir}/state.json", "w") as f:
        json.dump(state, f, indent=1)
    portal_user = f"{a['users'][0]}@{DOMAIN_A}"
    write_config(f"{workdir}/operator.toml", bearer=operator_token, portal_user=portal_user,
                 a=a, b=b, spare_token_id=spare_operator["id"], firmware=firmware)
    write_config(f"{workdir}/domain-admin.toml", bearer=admin_a["token"], portal_user=portal_user,
                 a=a, b=b, spare_token_id=spare_a["id"], firmware=firmware)
    print(f"seeded {DOMAIN_A} and {DOMAIN_B}")


if __name__ == "__main__":
    main()
