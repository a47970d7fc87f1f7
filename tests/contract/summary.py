"""Checks that a contract run tested what it claims to, from the call logs of the hooks.

A schemathesis run that reaches nothing (a wrong token, every request refused, a route
left out) would pass every check. This refuses such a run:
- every operation of the served document was called, in both runs;
- in each run, a share of the operations answered 2xx at least once (they reached data);
- in the operator's run, domain B's markers were seen in responses of several operations,
  so the domain admin's check searched for something that is there to be found;
- in the domain admin's run, domain B's paths were asked for in many operations.

Usage: summary.py OPENAPI_JSON OPERATOR_LOG DOMAIN_ADMIN_LOG
"""

import collections
import json
import sys

# At least this share of the operations must have answered 2xx at least once.
MIN_REACHED = {"operator": 0.75, "domain-admin": 0.65}
# The operator must have seen B's markers in the answers of at least this many operations.
MIN_MARKED_OPERATIONS = 15
# Domain A's admin must have asked for domain B's paths in at least this many operations.
MIN_FOREIGN_OPERATIONS = 40


def operations(doc):
    methods = {"get", "put", "post", "delete", "patch", "head", "options"}
    return {f"{m.upper()} {path}" for path, item in doc["paths"].items() for m in item if m in methods}


def load(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def main():
    doc_path, operator_log, admin_log = sys.argv[1:4]
    with open(doc_path) as f:
        ops = operations(json.load(f))
    failed = []
    for role, path in (("operator", operator_log), ("domain-admin", admin_log)):
        calls = load(path)
        called = {c["op"] for c in calls}
        reached = {c["op"] for c in calls if 200 <= c["status"] < 300}
        statuses = collections.Counter(c["status"] for c in calls)
        print(f"{role}: {len(calls)} requests, {len(called & ops)} of {len(ops)} operations called, "
              f"{len(reached & ops)} answered 2xx; statuses {dict(sorted(statuses.items()))}")
        missing = ops - called
        if missing:
            failed.append(f"{role}: operations never called: {', '.join(sorted(missing))}")
        if len(reached & ops) < MIN_REACHED[role] * len(ops):
            failed.append(f"{role}: only {len(reached & ops)} of {len(ops)} operations answered 2xx "
                          f"(at least {MIN_REACHED[role]:.0%} must); never 2xx: "
                          f"{', '.join(sorted(ops - reached))}")
        if role == "domain-admin":
            foreign = {c["op"] for c in calls if c.get("foreign")}
            print(f"domain-admin: domain B's paths asked for in {len(foreign)} operations")
            if len(foreign) < MIN_FOREIGN_OPERATIONS:
                failed.append(f"domain-admin: domain B's paths were asked for in only {len(foreign)} "
                              f"operations (at least {MIN_FOREIGN_OPERATIONS} must)")
        if role == "operator":
            marked = {c["op"] for c in calls if c.get("markers")}
            print(f"operator: domain B's markers seen in the answers of {len(marked)} operations")
            if len(marked) < MIN_MARKED_OPERATIONS:
                failed.append(f"operator: domain B's data was seen in only {len(marked)} operations' "
                              f"answers (at least {MIN_MARKED_OPERATIONS} must): the seeded data or "
                              f"the markers are not what the leak check looks for")
    for f in failed:
        print(f"contract: {f}", file=sys.stderr)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
