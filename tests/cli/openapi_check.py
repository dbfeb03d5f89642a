#!/usr/bin/python3
"""Checks recorded HTTP responses against docs/openapi.yaml (used by test_serve_api.sh).

usage: openapi_check.py SPEC RECORDS
RECORDS: one JSON object per line {"method","path","status","content_type","body"} (body as text).
Each response must be documented for its path, method and status, have the documented content
type, and (JSON) match the schema: the subset of OpenAPI 3.0 schemas the spec uses (type,
nullable, properties, required, additionalProperties: false, items, enum, minimum, maximum,
oneOf, allOf, $ref). Then every documented (path, method, status) except 500 must have been
seen at least once. Prints one line per problem and "N responses checked"; exit 1 on any problem.
"""
import json
import sys

import yaml


def resolve(spec, node):
    while isinstance(node, dict) and "$ref" in node:
        ref = node["$ref"]
        assert ref.startswith("#/"), ref
        node = spec
        for part in ref[2:].split("/"):
            node = node[part]
    return node


def validate(spec, schema, value, where):
    """Problems (strings) of value against schema."""
    schema = resolve(spec, schema)
    if value is None:
        return [] if schema.get("nullable") else [f"{where}: null where {schema.get('type', 'a value')} expected"]
    if "allOf" in schema:
        out = []
        for s in schema["allOf"]:
            out += validate(spec, s, value, where)
        return out
    if "oneOf" in schema:
        fits = [i for i, s in enumerate(schema["oneOf"]) if not validate(spec, s, value, where)]
        if len(fits) != 1:
            return [f"{where}: matches {len(fits)} of the oneOf alternatives (needs exactly 1)"]
        return []
    t = schema.get("type")
    out = []
    if t == "object":
        if not isinstance(value, dict):
            return [f"{where}: expected an object"]
        props = schema.get("properties", {})
        for r in schema.get("required", []):
            if r not in value:
                out.append(f"{where}: missing required '{r}'")
        for k, v in value.items():
            if k in props:
                out += validate(spec, props[k], v, f"{where}.{k}")
            elif schema.get("additionalProperties") is False:
                out.append(f"{where}: undocumented member '{k}'")
    elif t == "array":
        if not isinstance(value, list):
            return [f"{where}: expected an array"]
        for i, v in enumerate(value):
            out += validate(spec, schema.get("items", {}), v, f"{where}[{i}]")
    elif t == "integer":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
            return [f"{where}: expected an integer, got {value!r}"]
    elif t == "number":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return [f"{where}: expected a number, got {value!r}"]
    elif t == "string":
        if not isinstance(value, str):
            return [f"{where}: expected a string, got {value!r}"]
    elif t == "boolean":
        if not isinstance(value, bool):
            return [f"{where}: expected a boolean, got {value!r}"]
    if "enum" in schema and value not in schema["enum"]:
        out.append(f"{where}: {value!r} not among {schema['enum']}")
    if "minimum" in schema and isinstance(value, (int, float)) and value < schema["minimum"]:
        out.append(f"{where}: {value} < minimum {schema['minimum']}")
    if "maximum" in schema and isinstance(value, (int, float)) and value > schema["maximum"]:
        out.append(f"{where}: {value} > maximum {schema['maximum']}")
    return out


def main():
    spec = yaml.safe_load(open(sys.argv[1]))
    problems, seen, n = [], set(), 0
    for line in open(sys.argv[2]):
        if not line.strip():
            continue
        rec = json.loads(line)
        n += 1
        m, p, st = rec["method"].lower(), rec["path"], str(rec["status"])
        tag = f"{rec['method']} {p} {st}"
        op = spec["paths"].get(p, {}).get(m)
        if op is None:
            problems.append(f"{tag}: path/method not documented")
            continue
        resp = op["responses"].get(st)
        if resp is None:
            problems.append(f"{tag}: status not documented")
            continue
        seen.add((p, m, st))
        resp = resolve(spec, resp)
        ctype = rec["content_type"].split(";")[0].strip()
        content = resp.get("content", {})
        if ctype not in content:
            problems.append(f"{tag}: content type {ctype} not documented ({list(content)})")
            continue
        schema = content[ctype].get("schema", {})
        if m == "head":  # GET's headers; no body is ever sent
            if rec["body"]:
                problems.append(f"{tag}: a body in the answer to HEAD")
            continue
        if ctype == "application/json":
            try:
                body = json.loads(rec["body"])
            except ValueError as e:
                problems.append(f"{tag}: body is not JSON ({e})")
                continue
            problems += [f"{tag}: {x}" for x in validate(spec, schema, body, "body")]
    for p, ops in spec["paths"].items():
        for m, op in ops.items():
            for st in op["responses"]:
                if st != "500" and (p, m, st) not in seen:
                    problems.append(f"{m.upper()} {p} {st}: documented but never exercised by the test")
    for x in problems:
        print("FAIL: openapi:", x)
    print(f"{n} responses checked, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
