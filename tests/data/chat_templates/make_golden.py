#!/usr/bin/env python3
"""Renders every chat template in this folder with Python jinja2, configured exactly as Hugging
Face transformers does in apply_chat_template (transformers/utils/chat_template_utils.py):

    ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                  extensions=[AssistantTracker, jinja2.ext.loopcontrols])
    filters["tojson"]  = json.dumps(x, ensure_ascii=False, indent=None, separators=None,
                                    sort_keys=False)   (keyword defaults as in transformers)
    globals["raise_exception"] = raise jinja2.exceptions.TemplateError(message)
    globals["strftime_now"]    = datetime.now().strftime(format)   (fixed date here)
    render(messages=..., tools=..., documents=None, add_generation_prompt=..., bos_token=...,
           eos_token=..., **extra_context)

and writes golden.json: the inputs of every case and either the expected output or the error
jinja2 raised ("raise": true when it came from raise_exception, with its exact message).

It also renders the interpreter snippets of jinja_cases_src.py (expressions, filters, tests,
whitespace control, loops, scoping, macros, errors) into jinja_cases.json, and checks that
every source listed there as a syntax error is one for jinja2 too.

Usage: python3 tests/data/chat_templates/make_golden.py   (needs jinja2 >= 3.1)
"""

import copy
import datetime
import json
import os
import sys

import jinja2
import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment

HERE = os.path.dirname(os.path.abspath(__file__))
NOW = datetime.datetime(2025, 3, 9, 14, 5, 9)


class AssistantTracker(jinja2.ext.Extension):
    """transformers' {% generation %} tag; for plain rendering it just renders its body."""

    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return jinja2.nodes.CallBlock(self.call_method("_generation_support"), [], [], body).set_lineno(lineno)

    def _generation_support(self, caller):
        return caller()


class RaisedByTemplate(Exception):
    pass


def make_env():
    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def strftime_now(format):
        return NOW.strftime(format)

    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[AssistantTracker, jinja2.ext.loopcontrols]
    )
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


# Special tokens per template (what the model's tokenizer config defines).
TEMPLATES = {
    "smollm2": ("<|im_start|>", "<|im_end|>"),
    "llama3_3": ("<|begin_of_text|>", "<|eot_id|>"),
    "llama3_2": ("<|begin_of_text|>", "<|eot_id|>"),
    "qwen2_5": ("", "<|im_end|>"),
    "qwen3": ("", "<|im_end|>"),
    "mixtral": ("<s>", "</s>"),
    "mistral_nemo": ("<s>", "</s>"),
    "gemma2": ("<bos>", "<eos>"),
    "gemma3": ("<bos>", "<eos>"),
    "phi3": ("<s>", "<|endoftext|>"),
    "phi3_5": ("<s>", "<|endoftext|>"),
    "deepseek_r1_distill": ("<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>"),
}

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_current_weather",
        "description": "Get the current weather in a given location",
        "parameters": {
            "type": "object",
            "properties": {
                "location": {"type": "string", "description": "The city and state, e.g. San Francisco, CA"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["location"],
        },
    },
}

STOCK_TOOL = {
    "type": "function",
    "function": {
        "name": "get_stock_price",
        "description": "Get the current stock price (in USD) — précis",
        "parameters": {
            "type": "object",
            "properties": {"symbol": {"type": "string", "description": "Ticker, e.g. \"AAPL\""}},
            "required": ["symbol"],
        },
        "return": {"type": "number"},
    },
}

SYSTEM = {"role": "system", "content": "You are a helpful assistant."}
USER = {"role": "user", "content": "Hello, how are you?"}
ASSISTANT = {"role": "assistant", "content": "I'm doing great. How can I help you today?"}
USER2 = {"role": "user", "content": "Tell me a joke about cats."}

TOOL_CALL_ASSISTANT = {
    "role": "assistant",
    "content": None,
    "tool_calls": [
        {
            "id": "call12345",
            "type": "function",
            "function": {"name": "get_current_weather", "arguments": {"location": "Paris, France", "unit": "celsius"}},
        }
    ],
}
TOOL_RESULT = {"role": "tool", "tool_call_id": "call12345", "name": "get_current_weather", "content": "{\"temperature\": 22, \"unit\": \"celsius\"}"}

# (name, messages, add_generation_prompt, tools, extra_context)
COMMON_CASES = [
    ("system_user", [SYSTEM, USER], True, None, {}),
    ("user_only", [USER], True, None, {}),
    ("multi_turn", [USER, ASSISTANT, USER2], False, None, {}),
    ("multi_turn_system_gen", [SYSTEM, USER, ASSISTANT, USER2], True, None, {}),
    ("assistant_last", [USER, ASSISTANT], False, None, {}),
    ("unicode", [{"role": "user", "content": "Café, naïve, 中文, Ελληνικά, emoji 🎉🚀, ümlaut ß"}], True, None, {}),
    (
        "quotes_newlines_braces",
        [
            {"role": "user", "content": "He said \"hi\" & it's {{ not }} a {% tag %} {# c #}\n\tline two \\ backslash\n\n  "},
            {"role": "assistant", "content": "  Trimmed?  \n"},
            {"role": "user", "content": "[INST] <<SYS>> </s> <|im_end|> ok"},
        ],
        True,
        None,
        {},
    ),
    ("non_alternating", [USER, USER2], True, None, {}),
    ("empty", [], True, None, {}),
    ("system_only", [SYSTEM], True, None, {}),
]

TOOL_CASES = [
    ("tools_user", [SYSTEM, {"role": "user", "content": "What's the weather in Paris?"}], True, [WEATHER_TOOL, STOCK_TOOL], {}),
    (
        "tools_full_cycle",
        [{"role": "user", "content": "What's the weather in Paris?"}, TOOL_CALL_ASSISTANT, TOOL_RESULT],
        True,
        [WEATHER_TOOL],
        {},
    ),
]

EXTRA_CASES = {
    "llama3_3": [
        ("date_string", [SYSTEM, USER], True, None, {"date_string": "01 Jan 2025"}),
        ("tools_in_system", [SYSTEM, USER], True, [WEATHER_TOOL], {"tools_in_user_message": False}),
        ("builtin_tools", [SYSTEM, USER], True, None, {"builtin_tools": ["brave_search", "code_interpreter", "wolfram_alpha"]}),
        (
            "builtin_tool_call",
            [
                USER,
                {
                    "role": "assistant",
                    "content": "",
                    "tool_calls": [{"type": "function", "function": {"name": "brave_search", "arguments": {"query": "weather"}}}],
                },
                {"role": "ipython", "content": {"result": "sunny"}},
            ],
            True,
            None,
            {"builtin_tools": ["brave_search"]},
        ),
        (
            "two_tool_calls",
            [USER, {"role": "assistant", "tool_calls": [TOOL_CALL_ASSISTANT["tool_calls"][0]] * 2}],
            True,
            [WEATHER_TOOL],
            {},
        ),
        ("tools_no_user", [SYSTEM], True, [WEATHER_TOOL], {}),
        ("custom_tools", [USER], True, None, {"custom_tools": [STOCK_TOOL]}),
    ],
    "llama3_2": [
        ("date_string", [USER], True, None, {"date_string": "01 Jan 2025"}),
        ("tools_in_system", [SYSTEM, USER], True, [WEATHER_TOOL], {"tools_in_user_message": False}),
    ],
    "qwen3": [
        ("no_thinking", [USER], True, None, {"enable_thinking": False}),
        (
            "reasoning",
            [USER, {"role": "assistant", "content": "<think>\nLet me think.\n</think>\n\nThe answer is 4."}, USER2],
            True,
            None,
            {},
        ),
        (
            "reasoning_last",
            [USER, {"role": "assistant", "content": "<think>\nHmm.\n</think>\n\nDone."}],
            False,
            None,
            {},
        ),
        (
            "reasoning_field",
            [USER, {"role": "assistant", "content": "Done.", "reasoning_content": "Because."}],
            False,
            None,
            {},
        ),
        (
            "tools_cycle",
            [
                {"role": "user", "content": "What's the weather in Paris?"},
                dict(TOOL_CALL_ASSISTANT, content=""),
                TOOL_RESULT,
                dict(TOOL_RESULT, content="second result"),
            ],
            True,
            [WEATHER_TOOL],
            {},
        ),
        (
            "tool_response_user",
            [{"role": "user", "content": "<tool_response>\nx\n</tool_response>"}, USER2],
            True,
            None,
            {},
        ),
    ],
    "mistral_nemo": [
        (
            "bad_tool_call_id",
            [USER, {"role": "assistant", "tool_calls": [{"id": "short", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}],
            True,
            None,
            {},
        ),
    ],
    "gemma3": [
        (
            "content_parts",
            [
                {"role": "system", "content": [{"type": "text", "text": "Be brief."}]},
                {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "  Describe this.  "}]},
            ],
            True,
            None,
            {},
        ),
        ("invalid_content", [{"role": "user", "content": 42}], True, None, {}),
    ],
    "deepseek_r1_distill": [
        (
            "think_split",
            [USER, {"role": "assistant", "content": "<think>secret</think>Visible answer."}, USER2],
            True,
            None,
            {},
        ),
        (
            "tool_calls",
            [
                USER,
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {"type": "function", "function": {"name": "get_current_weather", "arguments": "{\"location\": \"Paris\"}"}},
                        {"type": "function", "function": {"name": "get_stock_price", "arguments": "{\"symbol\": \"AAPL\"}"}},
                    ],
                },
                {"role": "tool", "content": "22C"},
                {"role": "tool", "content": "$200"},
                {"role": "assistant", "content": "It is 22C and AAPL is $200."},
            ],
            True,
            None,
            {},
        ),
    ],
}

# Templates that print `tools`; the others ignore it and get only the common cases.
USES_TOOLS = {"llama3_3", "llama3_2", "qwen2_5", "qwen3", "mistral_nemo"}


def render_case(env, source, case):
    name, messages, agp, tools, extra = case
    bos, eos = TEMPLATES[case_template]
    ctx = dict(
        messages=copy.deepcopy(messages),
        tools=copy.deepcopy(tools),
        documents=None,
        add_generation_prompt=agp,
        bos_token=bos,
        eos_token=eos,
    )
    ctx.update(copy.deepcopy(extra))
    try:
        return {"expected": env.from_string(source).render(**ctx)}
    except jinja2.exceptions.TemplateSyntaxError:
        raise
    except jinja2.exceptions.TemplateError as e:
        if type(e) is jinja2.exceptions.TemplateError:  # raise_exception()
            return {"error": {"raise": True, "message": str(e)}}
        return {"error": {"raise": False, "message": f"{type(e).__name__}: {e}"}}
    except Exception as e:  # noqa: BLE001 - any runtime failure is an expected error
        return {"error": {"raise": False, "message": f"{type(e).__name__}: {e}"}}


def main():
    global case_template
    env = make_env()
    out = {
        "generator": "tests/data/chat_templates/make_golden.py",
        "jinja2_version": jinja2.__version__,
        "now": NOW.isoformat(),
        "cases": [],
    }
    for template in TEMPLATES:
        with open(os.path.join(HERE, template + ".jinja"), encoding="utf-8", newline="") as f:
            source = f.read()
        cases = list(COMMON_CASES)
        if template in USES_TOOLS:
            cases += TOOL_CASES
        cases += EXTRA_CASES.get(template, [])
        case_template = template
        for case in cases:
            name, messages, agp, tools, extra = case
            result = render_case(env, source, case)
            bos, eos = TEMPLATES[template]
            entry = {
                "template": template,
                "name": name,
                "messages": messages,
                "add_generation_prompt": agp,
                "bos_token": bos,
                "eos_token": eos,
                "tools": tools,
                "extra_context": extra,
            }
            entry.update(result)
            out["cases"].append(entry)
    path = os.path.join(HERE, "golden.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, indent=1)
        f.write("\n")
    n_err = sum(1 for c in out["cases"] if "error" in c)
    print(f"wrote {len(out['cases'])} cases ({n_err} expected errors) to {path}", file=sys.stderr)


def render_snippets():
    sys.dont_write_bytecode = True  # keep __pycache__ out of the data folder
    sys.path.insert(0, HERE)
    import jinja_cases_src as src  # noqa: E402

    env = make_env()
    cases = []
    for entry in src.CASES:
        template, context = entry[0], entry[1]
        case = {"template": template, "context": context}
        try:
            case["expected"] = env.from_string(template).render(**copy.deepcopy(context))
        except jinja2.exceptions.TemplateSyntaxError as e:
            raise SystemExit(f"snippet is a syntax error for jinja2: {template!r}: {e}")
        except jinja2.exceptions.TemplateError as e:
            raised = type(e) is jinja2.exceptions.TemplateError
            case["error"] = {"raise": raised, "message": str(e) if raised else f"{type(e).__name__}: {e}"}
        except Exception as e:  # noqa: BLE001
            case["error"] = {"raise": False, "message": f"{type(e).__name__}: {e}"}
        if "expected" in case and " at 0x" in case["expected"]:
            raise SystemExit(f"nondeterministic output for {template!r}")
        cases.append(case)
    for template in src.SYNTAX_ERRORS:
        try:
            env.from_string(template)
        except (jinja2.exceptions.TemplateSyntaxError, SyntaxError):
            # SyntaxError: jinja2 compiles {% break %} outside a loop to invalid Python.
            continue
        raise SystemExit(f"jinja2 accepts {template!r}, which is listed as a syntax error")
    out = {
        "generator": "tests/data/chat_templates/make_golden.py",
        "jinja2_version": jinja2.__version__,
        "now": NOW.isoformat(),
        "cases": cases,
        "syntax_errors": src.SYNTAX_ERRORS,
    }
    path = os.path.join(HERE, "jinja_cases.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, indent=1)
        f.write("\n")
    n_err = sum(1 for c in cases if "error" in c)
    print(f"wrote {len(cases)} snippets ({n_err} expected errors) to {path}", file=sys.stderr)


case_template = None

if __name__ == "__main__":
    main()
    render_snippets()
