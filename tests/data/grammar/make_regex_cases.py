#!/usr/bin/env python3
"""Writes regex_cases.json: regexes with strings and the expected whole-string match answer.

The answers come from Python's `re.fullmatch(pattern, s, re.ASCII)` (re.ASCII: \\d \\w \\s have
their ASCII meaning, as in JSON Schema's ECMA-262 dialect and in our regex front end). Candidate
strings are hand-picked examples plus deterministic mutations (insert / delete / replace one
character) and random strings over the pattern's own characters, so each regex gets both matching
and non-matching strings. Run: python3 tests/data/grammar/make_regex_cases.py
"""
import json
import os
import random
import re

# (pattern, hand-picked strings)
CASES = [
    ("abc", ["abc", "ab", "abcd", ""]),
    ("a|b|c", ["a", "b", "c", "d", "ab"]),
    ("ab*c", ["ac", "abc", "abbbc", "abcc"]),
    ("ab+c", ["ac", "abc", "abbbbc"]),
    ("ab?c", ["ac", "abc", "abbc"]),
    ("a{3}", ["aaa", "aa", "aaaa"]),
    ("a{2,}", ["a", "aa", "aaaaaa"]),
    ("a{2,4}", ["a", "aa", "aaa", "aaaa", "aaaaa"]),
    ("a{,3}", ["", "a", "aaa", "aaaa"]),
    ("(ab){2}", ["abab", "ab", "ababab"]),
    ("(a|bc)+", ["a", "bc", "abca", "b", ""]),
    ("(?:x|yz)*w", ["w", "xw", "yzxw", "yw"]),
    ("(?P<year>\\d{4})-(?P<m>\\d{2})", ["2024-01", "24-01", "2024-1"]),
    ("\\d+", ["0", "123", "", "12a"]),
    ("\\D+", ["abc", "a1", "é"]),
    ("\\w+", ["abc_12", "a-b", "é"]),
    ("\\W*", ["", "-+", "a"]),
    ("\\s*x\\s*", ["x", "  x\t", "\nx\n", "y"]),
    ("\\S+", ["abc", "a b", ""]),
    ("[abc]+", ["abcabc", "abd", ""]),
    ("[a-z0-9]+", ["abc123", "ABC", "a_b"]),
    ("[^a-z]+", ["ABC123", "abc", "é€", "A\nB"]),
    ("[^\"\\\\]*", ["hello", "he\"llo", "back\\slash", "日本"]),
    ("[]a]+", ["]a]", "b"]),
    ("[a\\-z]+", ["a-z", "b"]),
    ("[-a]+", ["-a-", "b"]),
    ("[a-]+", ["-a-", "b"]),
    ("[\\d\\s]+", ["1 2", "a"]),
    ("[\\w.]+@[\\w.]+", ["a.b@c.d", "a@b", "@b"]),
    ("[\\D]+", ["ab", "a1"]),
    (".", ["a", "é", "€", "😀", "\n", "", "ab"]),
    (".*", ["", "anything at all", "with\nnewline", "日本語"]),
    ("a.c", ["abc", "a€c", "a\nc", "ac"]),
    ("\\.", [".", "a"]),
    ("\\*\\+\\?", ["*+?", "*+"]),
    ("\\(\\)\\[\\]\\{\\}", ["()[]{}", "()"]),
    ("\\x41\\u00e9\\U0001F600", ["Aé😀", "A"]),
    ("\\t\\n\\r", ["\t\n\r", "\t\n"]),
    ("é+", ["é", "ééé", "e"]),
    ("日本語?", ["日本", "日本語", "日"]),
    ("[à-ÿ]+", ["àéÿ", "a", "Ā"]),
    ("[α-ω]{2,3}", ["αβ", "αβγ", "α", "αβγδ"]),
    ("[\u4e00-\u9fff]+", ["中文", "abc", "中a"]),
    ("[😀-😏]", ["😀", "😏", "😐"]),
    ("[^a]", ["b", "a", "é", "😀", "\n"]),
    ("[^\\x00-\\x7f]+", ["éè", "a", "日本"]),
    ("^abc$", ["abc", "abcd"]),
    ("^a*", ["", "aaa", "b"]),
    ("a*$", ["", "aaa"]),
    ("(a|ab)(c|bcd)(d*)", ["abcd", "abcdd", "acd", "ab"]),
    ("(a*)*b", ["b", "aaab", "aaa"]),
    ("(a|b)*abb", ["abb", "aababb", "ab", "abba"]),
    ("((a|b)(c|d))+", ["ac", "bdac", "ab"]),
    ("x(a|)y", ["xy", "xay", "xaay"]),
    ("(|a)+", ["", "a", "aa"]),
    ("a??b", ["b", "ab"]),
    ("a*?b+?", ["ab", "b", "aabb"]),
    ("a{0}", ["", "a"]),
    ("a{1}b{0,1}", ["a", "ab", "abb"]),
    ("(abc){1,2}d", ["abcd", "abcabcd", "abcabcabcd"]),
    ("[0-9]{3}-[0-9]{4}", ["555-1234", "5551234", "55-1234"]),
    ("\\d{4}-\\d{2}-\\d{2}", ["2024-01-31", "2024-1-31"]),
    ("(0|[1-9][0-9]*)", ["0", "10", "01", "999"]),
    ("-?(0|[1-9]\\d*)(\\.\\d+)?([eE][+-]?\\d+)?", ["0", "-1.5", "1e10", "01", "1.", "2.5E-3"]),
    ("(true|false|null)", ["true", "false", "null", "nul", "truefalse"]),
    ("\"([^\"\\\\]|\\\\.)*\"", ["\"\"", "\"a\\\"b\"", "\"unterminated", "\"a\"b\""]),
    ("[A-Z][a-z]+ [A-Z][a-z]+", ["John Smith", "john smith", "John"]),
    ("(Mr|Mrs|Ms|Dr)\\. [A-Z][a-z]*", ["Dr. Who", "Mr.Who", "Prof. X"]),
    ("[a-f0-9]{8}-[a-f0-9]{4}", ["deadbeef-0123", "DEADBEEF-0123"]),
    ("(\\d{1,3}\\.){3}\\d{1,3}", ["192.168.0.1", "1.2.3", "1234.1.1.1"]),
    ("https?://[a-z.]+(/[a-z]*)*", ["http://a.b/c/d", "https://x.y", "ftp://x"]),
    ("[a-z]+(_[a-z]+)*", ["snake_case_name", "_bad", "bad_"]),
    ("([01]\\d|2[0-3]):[0-5]\\d", ["23:59", "24:00", "09:05", "9:05"]),
    ("(yes|no|maybe)", ["yes", "no", "maybe", "y"]),
    ("(ab|cd|ef)*", ["", "abcdef", "abc"]),
    ("a(b(c(d)?)?)?", ["a", "ab", "abc", "abcd", "abd"]),
    ("(a(b)?)+", ["a", "ab", "aba", "abb"]),
    ("[aeiou]{2}[^aeiou]", ["aeb", "aea", "ae"]),
    ("\\w+@\\w+\\.com", ["joe@mail.com", "joe@mail.org"]),
    ("[+-]?\\d+", ["+1", "-22", "+-1"]),
    ("[ \\t]*#.*", ["# comment", "  # x", "x # y"]),
    ("(\\w+\\s?)+", ["hello world ", "a", " a"]),
    ("x{2}y{3}z{0,2}", ["xxyyy", "xxyyyzz", "xxyyyzzz"]),
    ("(a|b){3,5}", ["aba", "ab", "ababa", "ababab"]),
    ("[A-Za-z_][A-Za-z0-9_]*", ["_x1", "1x", "abc"]),
    ("\\{\\s*\"a\"\\s*:\\s*\\d+\\s*\\}", ["{\"a\": 1}", "{ \"a\" :12 }", "{\"a\":}"]),
    ("[\\[\\]]+", ["[]", "[[", "()"]),
    ("a|", ["", "a", "b"]),
    ("|b", ["", "b"]),
    ("(?:)", ["", "a"]),
    ("a{2}{3}".replace("{2}{3}", "{6}"), ["aaaaaa", "aaaaa"]),
    ("\\\\", ["\\", "\\\\"]),
    ("[\\\\/]+", ["\\/", "a"]),
    ("\\$\\^", ["$^", "^$"]),
    ("a\\$", ["a$", "a"]),
    ("[$^]+", ["$^", "a"]),
    ("\\0", ["\0", "0"]),
    ("[\\x00-\\x1f]", ["\x01", " "]),
    ("[^\\n]*", ["abc", "a\nb"]),
    ("[\\s\\S]*", ["", "a\nb"]),
    ("(?:[^,]*,){2}[^,]*", ["a,b,c", "a,b", ",,"]),
    ("(ab|a)(bc|c)", ["abc", "abbc", "ac"]),
    ("(a+|b+)*c", ["aabbc", "c", "ab"]),
    ("\\d{2,3}(,\\d{3})*", ["12", "123,456", "1234"]),
    ("[qwerty]{3}|[asdfgh]{2}", ["qwe", "as", "qa"]),
    ("(?:a|b)(?:c|d)(?:e|f)", ["ace", "bdf", "abc"]),
    ("[ÀÁÂ]x", ["Àx", "Ax"]),
    ("Ω+|µ+", ["ΩΩ", "µµ", "Ωµ"]),
    ("[😀😃]+", ["😀😃😀", "😁"]),
    ("\\u4e2d\\u6587", ["中文", "中"]),
    ("(\\d|[a-f]){4}", ["1a2b", "1A2B"]),
    ("(?:\\d{3}){1,3}", ["123", "123456789", "1234"]),
    ("a.{2,3}b", ["axxb", "axxxb", "axb", "a日本b"]),
]

ERROR_CASES = [
    ("(a", 0), ("a)", 1), ("[abc", 0), ("*a", 0), ("a**", 2), ("a{2,1}", 1), ("(?=a)", 0),
    ("(?!a)", 0), ("(?<=a)b", 0), ("(a)\\1", 3), ("\\bword", 0), ("a^b", 1), ("a$b", 1),
    ("(?i)abc", 0), ("a++", 2), ("[z-a]", 2), ("\\q", 0), ("abc\\", 3),
]


def mutations(s, alphabet, rng):
    out = []
    for i in range(len(s) + 1):
        c = rng.choice(alphabet)
        out.append(s[:i] + c + s[i:])
    for i in range(len(s)):
        out.append(s[:i] + s[i + 1:])
        out.append(s[:i] + rng.choice(alphabet) + s[i + 1:])
    return out


def main():
    rng = random.Random(1234)
    cases = []
    for pattern, strings in CASES:
        re.compile(pattern, re.ASCII)  # must be valid Python syntax
        alphabet = sorted(set(c for c in pattern if c not in "\\()[]{}|*+?^$") | set("a0 _-é\n"))
        cands = list(strings)
        for s in strings:
            cands += mutations(s, alphabet, rng)[:12]
        for _ in range(10):
            cands.append("".join(rng.choice(alphabet) for _ in range(rng.randint(0, 6))))
        seen = set()
        items = []
        for s in cands:
            if s in seen:
                continue
            seen.add(s)
            items.append({"s": s, "match": re.fullmatch(pattern, s, re.ASCII) is not None})
        cases.append({"pattern": pattern, "strings": items})
    errors = [{"pattern": p, "offset": o} for p, o in ERROR_CASES]
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "regex_cases.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump({"cases": cases, "errors": errors}, f, ensure_ascii=False, indent=1)
    n = sum(len(c["strings"]) for c in cases)
    pos = sum(s["match"] for c in cases for s in c["strings"])
    print(f"{len(cases)} regexes, {n} strings ({pos} matching), {len(errors)} error cases -> {path}")


if __name__ == "__main__":
    main()
