#!/usr/bin/env python3
"""Scrapes a metrics URL and checks the page with prometheus_client's own parser.

Usage: parse_exposition.py URL [FAMILY=LABEL_VALUE ...]
Each FAMILY=LABEL_VALUE argument requires a sample of that family with that label value, so
escaping is checked end to end. Exits non-zero with a message on any problem.
"""
import sys
import urllib.request

from prometheus_client.parser import text_string_to_metric_families


def main() -> int:
    url, wanted = sys.argv[1], sys.argv[2:]
    with urllib.request.urlopen(url, timeout=5) as response:
        content_type = response.headers.get("Content-Type", "")
        text = response.read().decode("utf-8")
    if not content_type.startswith("text/plain; version=0.0.4"):
        print(f"unexpected content type {content_type!r}")
        return 1

    families = {family.name: family for family in text_string_to_metric_families(text)}
    for family in families.values():
        if family.type != "histogram":
            continue
        series = {}
        for sample in family.samples:
            key = tuple(sorted((k, v) for k, v in sample.labels.items() if k != "le"))
            series.setdefault(key, {"buckets": [], "count": None})
            if sample.name.endswith("_bucket"):
                series[key]["buckets"].append((float(sample.labels["le"]), sample.value))
            elif sample.name.endswith("_count"):
                series[key]["count"] = sample.value
        for key, parts in series.items():
            counts = [value for _, value in parts["buckets"]]
            bounds = [bound for bound, _ in parts["buckets"]]
            if counts != sorted(counts) or bounds != sorted(bounds):
                print(f"{family.name}{key}: buckets not cumulative: {parts['buckets']}")
                return 1
            if bounds[-1] != float("inf") or counts[-1] != parts["count"]:
                print(f"{family.name}{key}: +Inf bucket {counts[-1]} != _count {parts['count']}")
                return 1

    for requirement in wanted:
        name, value = requirement.split("=", 1)
        family = families.get(name)
        if family is None:
            print(f"family {name} missing; have {sorted(families)}")
            return 1
        if not any(value in sample.labels.values() for sample in family.samples):
            print(f"no {name} sample has label value {value!r}")
            return 1

    print(f"parsed {len(families)} families: {', '.join(sorted(families))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
