#!/usr/bin/env python3
"""Writes schema_cases.json: JSON Schemas with instances and their validity.

Validity comes from Python `jsonschema` (Draft 2020-12 validator with its FormatChecker; pinned in
requirements-test.txt). Schemas are hand-written (covering every supported keyword, recursive
$ref, and the unsupported keywords that must be compile errors) plus randomly generated ones.
Each instance is serialized in the three whitespace styles our grammar supports:
  compact  = json.dumps(x, separators=(",", ":"))   -> WhitespacePolicy::kCompact
  default  = json.dumps(x)                           -> WhitespacePolicy::kDefault
  indent   = json.dumps(x, indent=2)                 -> WhitespacePolicy::kFlexible (accepts all 3)
`canonical` marks instances generated in the grammar's canonical form (properties in schema
order, no undeclared properties unless additionalProperties allows them, integers without a
fraction): for those, acceptance must equal validity. For the other (mutated) instances only
soundness is checked: an invalid instance must be rejected.
Run: python3 tests/data/grammar/make_schema_cases.py
"""
import copy
import json
import os
import random
import string

import jsonschema
from jsonschema import Draft202012Validator

FORMAT_SAMPLES = {
    "date": ["2024-01-31", "1999-12-01", "2000-02-28"],
    "time": ["12:34:56Z", "23:59:59+02:00", "00:00:00.5Z"],
    "date-time": ["2024-01-31T12:34:56Z", "1999-12-01t00:00:00-05:30", "2000-02-28T23:59:59.123Z"],
    "email": ["joe@example.com", "a.b+c@x-y.org"],
    "uuid": ["123e4567-e89b-12d3-a456-426614174000", "00000000-0000-0000-0000-00000000000A"],
    "uri": ["https://example.com/a?b=c#d", "mailto:joe@example.com", "urn:isbn:0451450523"],
    "ipv4": ["192.168.0.1", "0.0.0.0", "255.255.255.255"],
}
FORMAT_BAD = {
    "date": ["2024-13-01", "2024-1-01", "24-01-01x"],
    "time": ["24:00:00Z", "12:34:56", "1:2:3Z"],
    "date-time": ["2024-01-31 12:34:56Z", "2024-01-31T12:34:56"],
    "email": ["no-at-sign"],
    "uuid": ["123e4567e89b12d3a456426614174000", "123e4567-e89b-12d3-a456-42661417400g"],
    "ipv4": ["256.1.1.1", "1.2.3", "01.2.3.4"],
    "uri": [],
}


def rand_str(rng, lo=0, hi=6):
    alphabet = string.ascii_letters + string.digits + " _-é€\"\\\n/"
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(lo, hi)))


def rand_any(rng, depth=0):
    k = rng.randint(0, 6 if depth < 2 else 4)
    if k == 0:
        return None
    if k == 1:
        return rng.choice([True, False])
    if k == 2:
        return rng.randint(-1000, 1000)
    if k == 3:
        return rng.choice([0.5, -2.25, 1e21, 3.0])
    if k == 4:
        return rand_str(rng)
    if k == 5:
        return [rand_any(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return {rand_str(rng, 1, 4): rand_any(rng, depth + 1) for _ in range(rng.randint(0, 3))}


def resolve(root, ref):
    assert ref.startswith("#")
    cur = root
    for tok in ref[1:].split("/")[1:]:
        tok = tok.replace("~1", "/").replace("~0", "~")
        cur = cur[int(tok)] if isinstance(cur, list) else cur[tok]
    return cur


class Gen:
    """Generates instances of a schema in the grammar's canonical form."""

    def __init__(self, root, rng):
        self.root = root
        self.rng = rng

    def value(self, s, depth=0):
        rng = self.rng
        if s is True or s == {}:
            return rand_any(rng)
        if "$ref" in s:
            return self.value(resolve(self.root, s["$ref"]), depth + 1)
        if "allOf" in s:
            raise NotImplementedError
        if "anyOf" in s or "oneOf" in s:
            key = "anyOf" if "anyOf" in s else "oneOf"
            subs = s[key]
            if depth > 6:
                subs = [x for x in subs if "$ref" not in json.dumps(x)] or subs[:1]
            base = {k: v for k, v in s.items() if k != key}
            sub = rng.choice(subs)
            if base and isinstance(sub, dict):
                merged = dict(base)
                for k, v in sub.items():
                    if k == "properties":
                        merged[k] = {**merged.get(k, {}), **v}
                    elif k == "required":
                        merged[k] = list(dict.fromkeys(merged.get(k, []) + v))
                    else:
                        merged[k] = v
                sub = merged
            return self.value(sub, depth + 1)
        if "const" in s:
            return copy.deepcopy(s["const"])
        if "enum" in s:
            return copy.deepcopy(rng.choice(s["enum"]))
        t = s.get("type")
        if isinstance(t, list):
            t = rng.choice(t)
        if t is None:
            if "properties" in s:
                t = "object"
            elif "items" in s or "prefixItems" in s:
                t = "array"
            else:
                return rand_any(rng)
        if t == "null":
            return None
        if t == "boolean":
            return rng.choice([True, False])
        if t == "integer":
            lo, hi = -10**6, 10**6
            if "minimum" in s:
                lo = s["minimum"]
            if "exclusiveMinimum" in s:
                lo = s["exclusiveMinimum"] + 1
            if "maximum" in s:
                hi = s["maximum"]
            if "exclusiveMaximum" in s:
                hi = s["exclusiveMaximum"] - 1
            if hi < lo:
                hi = lo
            c = rng.randint(0, 3)
            if c == 0:
                return int(lo)
            if c == 1:
                return int(hi)
            return rng.randint(int(lo), int(hi))
        if t == "number":
            bounded = any(k in s for k in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"))
            lo = s.get("minimum", s.get("exclusiveMinimum", -1000))
            hi = s.get("maximum", s.get("exclusiveMaximum", 1000))
            c = rng.randint(0, 4)
            if c == 0 and "minimum" in s:
                return s["minimum"]
            if c == 1 and "maximum" in s:
                return float(s["maximum"])
            if c == 2 and not bounded:
                return rng.choice([1e-07, 2.5e+30, -0.0])
            x = round(rng.uniform(lo, hi), 2)
            if ("exclusiveMinimum" in s and x <= lo) or ("exclusiveMaximum" in s and x >= hi):
                x = (lo + hi) / 2
            return x
        if t == "string":
            if "format" in s:
                return rng.choice(FORMAT_SAMPLES[s["format"]])
            if "pattern" in s:
                return rng.choice(s["x-samples"])
            lo = s.get("minLength", 0)
            hi = s.get("maxLength", lo + 6)
            return rand_str(rng, lo, hi)
        if t == "array":
            prefix = s.get("prefixItems", [])
            lo = s.get("minItems", 0)
            hi = s.get("maxItems", max(lo, len(prefix)) + 2)
            items = s.get("items", True)
            if items is False:
                hi = min(hi, len(prefix))
            if depth > 4:
                hi = lo
            n = rng.randint(lo, max(lo, hi))
            out = []
            for i in range(n):
                out.append(self.value(prefix[i] if i < len(prefix) else items, depth + 1))
            return out
        if t == "object":
            props = s.get("properties", {})
            req = set(s.get("required", []))
            out = {}
            for k, sub in props.items():
                if k in req or (depth < 4 and rng.random() < 0.5):
                    out[k] = self.value(sub, depth + 1)
            for k in s.get("required", []):
                if k not in out:
                    ap = s.get("additionalProperties", True)
                    out[k] = self.value(ap, depth + 1)
            ap = s.get("additionalProperties", False if "properties" in s else True)
            if ap is not False and rng.random() < 0.5:
                for _ in range(rng.randint(1, 2)):
                    key = "x" + rand_str(rng, 1, 3).replace("\\", "").replace('"', "")
                    if key not in props and key not in out:
                        out[key] = self.value(ap, depth + 1)
            return out
        raise ValueError(f"unknown type {t}")


def mutate(x, rng):
    """Random edits that usually break validity."""
    out = []
    out.append(rng.choice([None, True, 12345, -7.5, "str", [], {}]))
    if isinstance(x, dict):
        if x:
            y = dict(x)
            k = rng.choice(list(y))
            del y[k]
            out.append(y)
            y = dict(x)
            y[k] = rng.choice([None, "zz", 99, [1], {"q": 1}])
            out.append(y)
            y = dict(reversed(list(x.items())))
            out.append(y)
        y = dict(x)
        y["unexpected"] = 1
        out.append(y)
    elif isinstance(x, list):
        out.append(x + [rng.choice([1, "a", None])])
        if x:
            out.append(x[:-1])
            y = list(x)
            y[0] = rng.choice([None, "zz", 99, {"q": 1}])
            out.append(y)
    elif isinstance(x, str):
        out.append(x + "!")
        out.append(x[:-1])
        out.append(x * 3)
    elif isinstance(x, bool):
        out.append(not x)
    elif isinstance(x, int):
        out += [x + 1, x - 1, x * 1000 + 7, -x - 1, x + 0.5]
    elif isinstance(x, float):
        out += [x + 0.01, x - 0.01, x * 1000, -x - 1]
    return out


HAND = [
    # (schema, extra instances)
    ({"type": "string"}, ["", "a", 1]),
    ({"type": "integer"}, [0, -1, 1.5, "1"]),
    ({"type": "number"}, [0, -1.5, 1e100, "x"]),
    ({"type": "boolean"}, [True, False, 0]),
    ({"type": "null"}, [None, 0]),
    ({"type": ["string", "null"]}, ["a", None, 1]),
    ({"type": ["integer", "boolean"]}, [1, True, "x"]),
    ({"enum": ["red", "green", 3, None, [1, 2], {"a": 1}]}, ["red", "blue", 3, 4, [1, 2], {"a": 1}]),
    ({"type": "string", "enum": ["a", "b", 1]}, ["a", "b", 1]),
    ({"const": "fixed"}, ["fixed", "other"]),
    ({"const": {"k": [1, 2, {"z": None}]}}, [{"k": [1, 2, {"z": None}]}, {"k": []}]),
    ({"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]},
     [{"name": "x"}, {}, {"name": 1}]),
    ({"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "string"},
                                       "c": {"type": "boolean"}}, "required": ["b"]},
     [{"b": ""}, {"a": 1, "b": "x", "c": True}, {"a": 1, "c": True}, {"b": "x", "a": 1}]),
    ({"type": "object", "properties": {"a": {"type": "integer"}}, "additionalProperties": False},
     [{}, {"a": 1}, {"a": 1, "b": 2}]),
    ({"type": "object", "properties": {"a": {"type": "integer"}}, "additionalProperties": True},
     [{}, {"a": 1}, {"a": 1, "b": [1, {"c": None}]}, {"ab": 1}, {"a": "x"}]),
    ({"type": "object", "properties": {"id": {"type": "integer"}},
      "additionalProperties": {"type": "string"}},
     [{"id": 1, "x": "y"}, {"id": 1, "x": 2}, {"idx": "s"}, {"i": "s"}]),
    ({"type": "object"}, [{}, {"a": 1}, {"a": {"b": [1, 2]}}, []]),
    ({"type": "object", "required": ["must"]}, [{"must": 1}, {}, {"must": None, "z": 2}]),
    ({"type": "array", "items": {"type": "integer"}}, [[], [1, 2, 3], [1, "a"]]),
    ({"type": "array", "items": {"type": "string"}, "minItems": 2, "maxItems": 3},
     [["a"], ["a", "b"], ["a", "b", "c"], ["a", "b", "c", "d"]]),
    ({"type": "array", "prefixItems": [{"type": "integer"}, {"type": "string"}]},
     [[], [1], [1, "a"], [1, "a", None, {"x": 1}], ["a"]]),
    ({"type": "array", "prefixItems": [{"type": "integer"}, {"type": "string"}], "items": False},
     [[1, "a"], [1, "a", 2], [1]]),
    ({"type": "array", "prefixItems": [{"const": 1}], "items": {"type": "boolean"}, "minItems": 2},
     [[1, True], [1], [1, True, False], [2, True]]),
    ({"type": "array"}, [[], [1, "a", None, [], {}]]),
    ({"type": "array", "maxItems": 0}, [[], [1]]),
    ({"type": "string", "minLength": 2, "maxLength": 4}, ["a", "ab", "abcd", "abcde", "éé", "\u00e9\u20ac\U0001F600"]),
    ({"type": "string", "maxLength": 1}, ["", "a", "ab", "\U0001F600", "\n"]),
    ({"type": "string", "pattern": "^[a-z]+\\d{2}$", "x-samples": ["abc12", "x00"]},
     ["abc12", "ab1", "ABC12", "abc123"]),
    ({"type": "string", "pattern": "cat", "x-samples": ["cat", "concatenate", "cat!"]},
     ["cat", "dog", "a cat b"]),
    ({"type": "string", "pattern": "^(\\([0-9]{3}\\))?[0-9]{3}-[0-9]{4}$",
      "x-samples": ["555-1212", "(888)555-1212"]}, ["555-1212", "(888)555-1212", "5551212"]),
    ({"type": "string", "format": "date"}, ["2024-01-31", "2024-13-01", "x"]),
    ({"type": "string", "format": "time"}, ["12:34:56Z", "25:00:00Z"]),
    ({"type": "string", "format": "date-time"}, ["2024-01-31T12:34:56Z", "2024-01-31"]),
    ({"type": "string", "format": "email"}, ["joe@example.com", "nope"]),
    ({"type": "string", "format": "uuid"}, ["123e4567-e89b-12d3-a456-426614174000", "123"]),
    ({"type": "string", "format": "uri"}, ["https://example.com"]),
    ({"type": "string", "format": "ipv4"}, ["10.0.0.1", "10.0.0.256", "1.2.3"]),
    ({"type": "integer", "minimum": 0}, [0, 1, -1, 100000]),
    ({"type": "integer", "minimum": -5, "maximum": 5}, [-6, -5, 0, 5, 6]),
    ({"type": "integer", "exclusiveMinimum": 10, "exclusiveMaximum": 20}, [10, 11, 19, 20]),
    ({"type": "integer", "minimum": 17, "maximum": 4321}, [16, 17, 99, 100, 999, 1000, 4321, 4322]),
    ({"type": "integer", "maximum": -10}, [-10, -9, -11, -1000000]),
    ({"type": "integer", "minimum": -1234, "maximum": -99}, [-1235, -1234, -100, -99, -98, 0]),
    ({"type": "integer", "minimum": 1.5, "maximum": 3.5}, [1, 2, 3, 4]),
    ({"type": "number", "minimum": 0, "maximum": 1}, [0, 0.5, 1, 1.0, 1.01, -0.01, 2]),
    ({"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 10},
     [0, 0.0, 0.001, 9.999, 10, 10.0, 5]),
    ({"type": "number", "minimum": -3, "exclusiveMaximum": -1},
     [-3, -3.0, -3.01, -2.5, -1, -1.0, -0.99, 0]),
    ({"type": "number", "minimum": 5}, [5, 5.0, 4.999, 1000.25]),
    ({"type": "number", "maximum": -2}, [-2, -2.0, -1.999, -1000.5]),
    ({"type": "number", "exclusiveMinimum": -1, "maximum": 0}, [-1, -0.999, 0, 0.0, 0.001]),
    ({"anyOf": [{"type": "string"}, {"type": "integer", "minimum": 0}]}, ["a", 1, -1, None]),
    ({"oneOf": [{"type": "string", "maxLength": 2}, {"type": "boolean"}]}, ["ab", "abc", True, 1]),
    ({"type": "object", "properties": {"a": {"type": "integer"}},
      "anyOf": [{"required": ["a"]}, {"properties": {"b": {"type": "string"}}, "required": ["b"]}]},
     [{"a": 1}, {"b": "x"}, {}]),
    ({"allOf": [{"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]},
                {"properties": {"b": {"type": "string"}}, "required": ["b"]}]},
     [{"a": 1, "b": "x"}, {"a": 1}, {"b": "x"}]),
    ({"allOf": [{"type": "integer", "minimum": 0}, {"maximum": 10}]}, [0, 10, 11, -1]),
    ({"allOf": [{"$ref": "#/$defs/base"}, {"properties": {"extra": {"type": "boolean"}}}],
      "$defs": {"base": {"type": "object", "properties": {"id": {"type": "integer"}},
                         "required": ["id"]}}},
     [{"id": 1}, {"id": 1, "extra": True}, {"extra": True}]),
    ({"$defs": {"pos": {"type": "integer", "minimum": 1}},
      "type": "object", "properties": {"x": {"$ref": "#/$defs/pos"}, "y": {"$ref": "#/$defs/pos"}},
      "required": ["x", "y"]}, [{"x": 1, "y": 2}, {"x": 0, "y": 1}]),
    ({"definitions": {"s": {"type": "string"}}, "type": "array", "items": {"$ref": "#/definitions/s"}},
     [["a"], [1]]),
    # Recursive schemas (pushdown back end).
    ({"$defs": {"node": {"type": "object", "properties": {
        "value": {"type": "integer"},
        "children": {"type": "array", "items": {"$ref": "#/$defs/node"}}},
        "required": ["value"]}}, "$ref": "#/$defs/node"},
     [{"value": 1}, {"value": 1, "children": [{"value": 2, "children": []}]},
      {"value": 1, "children": [{"children": []}]}]),
    ({"type": "object", "properties": {"name": {"type": "string"},
                                       "next": {"anyOf": [{"$ref": "#"}, {"type": "null"}]}},
      "required": ["name", "next"]},
     [{"name": "a", "next": None}, {"name": "a", "next": {"name": "b", "next": None}},
      {"name": "a", "next": {"name": "b"}}]),
    ({"$defs": {"expr": {"anyOf": [{"type": "integer"},
                                   {"type": "array", "prefixItems": [{"enum": ["+", "*"]},
                                                                     {"$ref": "#/$defs/expr"},
                                                                     {"$ref": "#/$defs/expr"}],
                                    "items": False, "minItems": 3}]}},
      "$ref": "#/$defs/expr"},
     [1, ["+", 1, 2], ["*", ["+", 1, 2], 3], ["-", 1, 2], ["+", 1]]),
    (True, [1, "a", None, {"a": [1]}]),
    ({}, [1, [], {}]),
    ({"title": "annotated", "description": "d", "examples": [1], "default": 1, "$comment": "c",
      "$schema": "https://json-schema.org/draft/2020-12/schema", "type": "integer"}, [1, "1"]),
    ({"type": "object", "properties": {"a/b": {"type": "integer"}, "q\"uote": {"type": "string"},
                                       "ünï": {"type": "boolean"}}, "required": ["a/b"]},
     [{"a/b": 1}, {"a/b": 1, "q\"uote": "x", "ünï": True}]),
    ({"type": "object", "properties": {"deep": {"type": "object", "properties": {
        "deeper": {"type": "array", "items": {"type": "object", "properties": {
            "leaf": {"enum": [1, 2]}}, "required": ["leaf"]}}}, "required": ["deeper"]}},
      "required": ["deep"]},
     [{"deep": {"deeper": []}}, {"deep": {"deeper": [{"leaf": 1}, {"leaf": 2}]}},
      {"deep": {"deeper": [{"leaf": 3}]}}]),
    ({"type": "array", "uniqueItems": False, "items": {"type": "null"}}, [[None, None]]),
]

# Added after the random schemas (so those keep their random stream): fractional number bounds,
# oneOf with provably disjoint alternatives, pattern together with minLength/maxLength.
HAND_EXTRA = [
    ({"type": "number", "minimum": 0.1, "maximum": 2.75},
     [0.1, 0.09, 0.099999, 2.75, 2.7500001, 2.76, 3, 0, 1]),
    ({"type": "number", "exclusiveMinimum": -1.5, "exclusiveMaximum": 0.25},
     [-1.5, -1.49, -1.51, 0.25, 0.2499, 0.26, 0, -2]),
    ({"type": "number", "minimum": -0.005}, [-0.005, -0.0051, -0.004, 0, 5, -1]),
    ({"type": "number", "exclusiveMaximum": 0.001}, [0.001, 0.0009999, 0.00100001, -5, 1]),
    ({"type": "number", "minimum": 0.5, "maximum": 0.5}, [0.5, 0.49, 0.51, 0.500001]),
    ({"type": "number", "minimum": -7.25, "maximum": -0.125}, [-7.25, -7.26, -0.125, -0.12, 0, -3]),
    ({"type": "object", "properties": {"score": {"type": "number", "minimum": 0,
                                                 "exclusiveMaximum": 99.5}}, "required": ["score"]},
     [{"score": 99.5}, {"score": 99.49}, {"score": -0.5}]),
    ({"oneOf": [{"type": "object", "properties": {"kind": {"const": "a"}, "x": {"type": "integer"}},
                 "required": ["kind", "x"]},
                {"type": "object", "properties": {"kind": {"const": "b"}, "y": {"type": "string"}},
                 "required": ["kind", "y"]}]},
     [{"kind": "a", "x": 1}, {"kind": "b", "y": "s"}, {"kind": "a", "y": "s"}, {"kind": "c", "x": 1}]),
    ({"oneOf": [{"enum": ["x", "y"]}, {"enum": ["z", 1]}]}, ["x", "z", 1, 2, "w"]),
    ({"oneOf": [{"type": "integer"}, {"type": "string", "maxLength": 3}, {"type": "null"}]},
     [1, "abc", "abcd", None, 1.5, True]),
    ({"$defs": {"cat": {"type": "object", "properties": {"t": {"enum": ["cat"]},
                                                         "lives": {"type": "integer"}},
                        "required": ["t"]},
                "dog": {"type": "object", "properties": {"t": {"enum": ["dog", "puppy"]}},
                        "required": ["t"]}},
      "type": "array", "items": {"oneOf": [{"$ref": "#/$defs/cat"}, {"$ref": "#/$defs/dog"}]}},
     [[{"t": "cat"}], [{"t": "dog"}, {"t": "cat", "lives": 9}], [{"t": "cow"}]]),
    ({"type": "string", "pattern": "^[a-z]+$", "minLength": 2, "maxLength": 5,
      "x-samples": ["ab", "hello", "xyz"]}, ["a", "abcdef", "AB", "ab1", "abcde"]),
    ({"type": "string", "pattern": "[0-9]", "maxLength": 4, "x-samples": ["1", "a1", "ab12", "9zzz"]},
     ["abcde1", "abcd", "", "12345", "1234"]),
    # (json.dumps escapes non-ASCII, which pattern strings never use: code-point counting of
    # non-ASCII text is tested in json_schema_test.cpp.)
    ({"type": "string", "pattern": "^a+b?$", "minLength": 3,
      "x-samples": ["aaa", "aaab", "aaaaa"]}, ["a", "aa", "ab", "aab", "b", "aaaab"]),
    ({"type": "object", "properties": {"code": {"type": "string", "pattern": "^[A-Z]{2}[0-9]*$",
                                                "maxLength": 6,
                                                "x-samples": ["AB", "XY1234", "QQ9"]}},
      "required": ["code"]},
     [{"code": "AB12345"}, {"code": "A1"}, {"code": "ABC"}]),
]

UNSUPPORTED = [
    ({"type": "object", "patternProperties": {"^a": {}}}, "patternProperties", "#"),
    ({"type": "object", "properties": {"a": {"type": "object", "propertyNames": {"maxLength": 2}}}},
     "propertyNames", "#/properties/a"),
    ({"type": "object", "minProperties": 1}, "minProperties", "#"),
    ({"type": "object", "maxProperties": 1}, "maxProperties", "#"),
    ({"type": "array", "contains": {"type": "integer"}}, "contains", "#"),
    ({"type": "array", "uniqueItems": True}, "uniqueItems", "#"),
    ({"type": "integer", "multipleOf": 2}, "multipleOf", "#"),
    ({"not": {"type": "string"}}, "not", "#"),
    ({"if": {"type": "string"}, "then": {"minLength": 1}}, "if", "#"),
    ({"type": "object", "dependentRequired": {"a": ["b"]}}, "dependentRequired", "#"),
    ({"type": "object", "unevaluatedProperties": False}, "unevaluatedProperties", "#"),
    ({"type": "string", "format": "hostname"}, "hostname", "#/format"),
    ({"oneOf": [{"type": "string"}, {"minLength": 2}]}, "oneOf", "#/oneOf"),
    ({"type": "object", "properties": {"v": {"oneOf": [{"type": "number"}, {"type": "integer"}]}}},
     "oneOf", "#/properties/v/oneOf"),
    ({"type": "array", "items": [{"type": "integer"}]}, "prefixItems", "#/items"),
    ({"$ref": "http://example.com/schema"}, "$ref", "#/$ref"),
    ({"type": "array", "items": {"type": "string", "contentEncoding": "base64"}},
     "contentEncoding", "#/items"),
]


def rand_leaf(rng):
    k = rng.randint(0, 11)
    if k == 0:
        return {"type": "string"}
    if k == 1:
        s = {"type": "string", "minLength": rng.randint(0, 3)}
        s["maxLength"] = s["minLength"] + rng.randint(0, 4)
        return s
    if k == 2:
        return {"type": "string", "format": rng.choice(sorted(FORMAT_SAMPLES))}
    if k == 3:
        s = {"type": "integer"}
        if rng.random() < 0.7:
            s["minimum"] = rng.randint(-500, 500)
        if rng.random() < 0.7:
            s["maximum"] = s.get("minimum", -500) + rng.randint(0, 2000)
        if rng.random() < 0.3:
            s["exclusiveMinimum"] = s.pop("minimum", rng.randint(-50, 50))
            if "maximum" in s:
                s["maximum"] = max(s["maximum"], s["exclusiveMinimum"] + 1 + rng.randint(0, 50))
        return s
    if k == 4:
        s = {"type": "number"}
        if rng.random() < 0.6:
            s["minimum"] = rng.randint(-100, 100)
        if rng.random() < 0.6:
            s["maximum"] = s.get("minimum", -100) + rng.randint(1, 300)
        if rng.random() < 0.3 and "maximum" in s:
            s["exclusiveMaximum"] = s.pop("maximum")
        return s
    if k == 5:
        return {"type": "boolean"}
    if k == 6:
        return {"type": "null"}
    if k == 7:
        return {"enum": rng.sample(["a", "b", "c d", 1, 2.5, None, True, "é"], rng.randint(1, 4))}
    if k == 8:
        return {"const": rng.choice(["k", 7, False, [1, "x"]])}
    if k == 9:
        return {"type": rng.sample(["string", "integer", "null", "boolean"], 2)}
    if k == 10:
        return {"type": "string", "pattern": "^[A-Z]{2}-\\d{3}$", "x-samples": ["AB-123", "ZZ-000"]}
    return {"type": "integer"}


def rand_schema(rng, depth):
    if depth >= 3 or rng.random() < 0.35:
        return rand_leaf(rng)
    k = rng.randint(0, 3)
    if k == 0:
        n = rng.randint(1, 5)
        props = {f"p{i}_{rng.choice('abc')}": rand_schema(rng, depth + 1) for i in range(n)}
        s = {"type": "object", "properties": props,
             "required": [p for p in props if rng.random() < 0.5]}
        r = rng.random()
        if r < 0.15:
            s["additionalProperties"] = rand_leaf(rng)
        elif r < 0.3:
            s["additionalProperties"] = False
        return s
    if k == 1:
        s = {"type": "array", "items": rand_schema(rng, depth + 1)}
        if rng.random() < 0.5:
            s["minItems"] = rng.randint(0, 2)
        if rng.random() < 0.5:
            s["maxItems"] = s.get("minItems", 0) + rng.randint(0, 3)
        if rng.random() < 0.3:
            s["prefixItems"] = [rand_leaf(rng) for _ in range(rng.randint(1, 2))]
        return s
    if k == 2:
        return {"anyOf": [rand_schema(rng, depth + 1) for _ in range(rng.randint(2, 3))]}
    return {"type": "object", "properties": {"ref": {"$ref": "#/$defs/shared"},
                                             "other": rand_schema(rng, depth + 1)},
            "required": ["ref"]}


def main():
    rng = random.Random(20240601)
    fc = Draft202012Validator.FORMAT_CHECKER
    schemas = [(s, extra) for s, extra in HAND]
    for i in range(170):
        s = rand_schema(rng, 0)
        text = json.dumps(s)
        if "#/$defs/shared" in text:
            s = {"$defs": {"shared": rand_leaf(rng)}, **s}
        schemas.append((s, []))
    schemas += [(s, extra) for s, extra in HAND_EXTRA]
    cases = []
    n_inst = 0
    for schema, extra in schemas:
        Draft202012Validator.check_schema({k: v for k, v in schema.items() if k != "x-samples"}
                                          if isinstance(schema, dict) else schema)
        v = Draft202012Validator(schema, format_checker=fc)
        gen = Gen(schema, rng)
        instances = []
        for x in extra:
            instances.append((x, False))
        canon = []
        try:
            for _ in range(8):
                canon.append(gen.value(schema))
        except NotImplementedError:
            pass
        for x in canon:
            instances.append((x, True))
        for x in canon[:4]:
            for m in mutate(x, rng):
                instances.append((m, False))
        if isinstance(schema, dict) and "format" in schema:
            for b in FORMAT_BAD[schema["format"]]:
                instances.append((b, False))
        out = []
        seen = set()
        for x, canonical in instances:
            key = json.dumps(x)
            if key in seen:
                continue
            seen.add(key)
            valid = v.is_valid(x)
            if canonical:
                assert valid, (schema, x)
            out.append({
                "valid": valid,
                "canonical": canonical,
                "compact": json.dumps(x, separators=(",", ":")),
                "default": json.dumps(x),
                "indent": json.dumps(x, indent=2),
            })
        n_inst += len(out)
        cases.append({"schema": json.dumps(strip_samples(schema)), "instances": out})
    errors = [{"schema": json.dumps(s), "keyword": k, "pointer": p} for s, k, p in UNSUPPORTED]
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "schema_cases.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump({"cases": cases, "errors": errors}, f, indent=1)
    print(f"{len(cases)} schemas, {n_inst} instances, {len(errors)} unsupported-keyword cases "
          f"-> {path} (jsonschema {jsonschema_version()})")


def strip_samples(s):
    if isinstance(s, dict):
        return {k: strip_samples(v) for k, v in s.items() if k != "x-samples"}
    if isinstance(s, list):
        return [strip_samples(v) for v in s]
    return s


def jsonschema_version():
    from importlib.metadata import version
    return version("jsonschema")


if __name__ == "__main__":
    main()
