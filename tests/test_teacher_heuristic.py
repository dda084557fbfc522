"""The heuristic teacher: valid format, determinism, genre and end-state rules, variety, speed."""

from __future__ import annotations

import json
import os
import random
import re
import string
import subprocess
import sys
import time

import pytest

from nla_variants.common.hashing import hash_obj
from nla_variants.data.builtin.apidocs import make_api_doc
from nla_variants.data.builtin.dialogue import make_dialogue
from nla_variants.data.builtin.expository import make_expository
from nla_variants.data.builtin.narrative import make_narrative
from nla_variants.data.builtin.snippets import make_code_snippet
from nla_variants.data.builtin.structured import make_structured
from nla_variants.data.teachers.base import parse_explanation
from nla_variants.data.teachers.heuristic import VERSION, HeuristicTeacher, _Doc
from nla_variants.data.teachers.heuristic.common import PHRASES

# Clear, hand-written examples of each genre, cut mid-way like real prefixes.
GENRE_EXAMPLES: dict[str, list[str]] = {
    "code": [
        "import os\nimport sys\n\n\nclass Loader:\n    def __init__(self, path):\n        self.path = path\n"
        "        self.cache = {}\n\n    def load(self, name):\n        if name in self.cache:\n"
        "            return self.cache[name]\n        full = os.path.join(self.path, name)\n        with open(",
        "def parse_args(argv=None):\n    parser = argparse.ArgumentParser(description='Train a model')\n"
        "    parser.add_argument('--epochs', type=int, default=10)\n    parser.add_argument('--lr', type=float,"
        " default=1e-3)\n    return parser.parse_args(argv)\n\n\ndef main():\n    args = parse_args()\n    for epoch in",
        "from dataclasses import dataclass\n\n\n@dataclass\nclass Point:\n    x: float\n    y: float\n\n"
        "    def norm(self) -> float:\n        return (self.x ** 2 + self.y ** 2) ** 0.5\n\n"
        "    def scale(self, k):\n        ",
        'def fib(n):\n    """Return the n-th Fibonacci number.\n\n    Uses an iterative loop so that',
        "    total = 0\n    for item in items:\n        if item.price > 0:\n            total += item.price * item.qty\n"
        '        else:\n            logger.warning("skipping %s", item.na',
        "import json\n\nCONFIG = {\n    'name': 'demo',\n    'retries': 3,\n    'hosts': ['a.example', 'b.example'],\n",
        ">>> import math\n>>> math.sqrt(16)\n4.0\n>>> [x ** 2 for x in range(5)]\n[0, 1, 4, 9, 16]\n>>> ",
    ],
    "dialogue": [
        "Mira: Did you bring the maps?\nTom: I thought you had them.\nMira: I gave them to you at the station.\n"
        "Tom: No, you gave me the tickets. The maps were in your bag.\nMira: ",
        "User: Can you help me write a cover letter for a nursing job?\nAssistant: Of course. Tell me about your "
        "experience and the hospital you are applying to.\nUser: I have five years in pediatrics and",
        "[10:02] anna: is the build green again?\n[10:03] raj: nope, the linter fails on main\n"
        "[10:03] anna: ugh, who merged that?\n[10:04] raj: no idea, checking the log now\n",
        "Interviewer: When did you first start painting?\nGuest: I was maybe seven. My grandmother had a box of "
        "oils she never used.\nInterviewer: And she just gave them to you?\nGuest: She did, and she said",
        '"Are you coming tonight?"\n"I can\'t. I have to work late again."\n"You always say that."\n'
        '"Because it\'s always true."\n"',
        "<mira> anyone around?\n<tom> yep\n<mira> the deploy script broke again\n<tom> which step\n<mira> ",
    ],
    "structured": [
        "| name | price | stock |\n|------|-------|-------|\n| apple | 0.50 | 120 |\n| pear | 0.65 | 80 |\n| plum | 0.",
        "id,name,city,age\n1,Alice,Paris,34\n2,Bob,Berlin,28\n3,Chen,Shanghai,41\n4,Dana,",
        "Ingredients:\n- 2 cups flour\n- 1 tsp baking soda\n- 1/2 tsp salt\n- 3 tbsp butter, melted\n- 1 cup ",
        '[\n  {"id": 1, "title": "Blue lamp", "price": 24.0},\n  {"id": 2, "title": "Oak shelf", "price": 89.5},\n'
        '  {"id": 3, "title": ',
        "Item: Hammer\nQty: 12\nLocation: Aisle 4\n\nItem: Screwdriver set\nQty: 30\nLocation: Aisle 2\n\nItem: Wrench\nQty:",
        "Shopping list\n- eggs\n- milk\n- bread\n- tomatoes\n- olive oil\n",
        "server:\n  host: 0.0.0.0\n  port: 8080\n  workers: 4\ndatabase:\n  url: postgres://db/app\n  pool: 10\n"
        "  timeout:",
        "date;store;item;units\n2024-01-02;North;apples;120\n2024-01-02;South;pears;80\n2024-01-03;North;",
    ],
    "technical": [
        "The load_config() function reads a YAML file and returns a dict. Its first argument is the path to the "
        "file; the optional strict parameter raises a ValueError when an unknown key is found. By default, "
        "missing keys fall back to",
        "To install the package, run pip install fastgrid in a fresh virtual environment. The command-line tool "
        "accepts a --workers flag that sets the number of threads, and a --cache-dir option that",
        "Each request to the /v1/items endpoint must include an API token in the Authorization header. The "
        "server returns a JSON response with the requested fields; the limit parameter caps the number of",
        "Configuration\n\nSet the environment variable APP_TIMEOUT to change the request timeout. The value is an "
        "integer number of seconds. If the variable is not set, the client uses the default of",
        "## Usage\n\nCreate a client and call `fetch()` with the resource name:\n\n```python\nfrom pkg import "
        'Client\n\nclient = Client(timeout=3)\nrows = client.fetch("users")\n```\n\nThe `fetch` method '
        "returns a list of dicts. Pass `limit=` to cap the",
    ],
    "narrative": [
        "She pushed the door open and stepped into the kitchen. The light was still on, and her father sat at "
        "the table with his hands around a cold cup of tea. He looked up when she came in, but he did not say",
        "The rain had not stopped for three days. Elias walked to the harbour every morning anyway, his collar "
        "turned up against the wind, and every morning the boats were gone. On the fourth day he saw",
        "I remember the summer we moved to the coast. My brother and I spent every afternoon on the rocks, and "
        "my mother called us in when the light turned orange. One evening she did not call, and we",
        '"Where were you?" Anna asked. Her voice was quiet, but her eyes followed him across the room. He '
        'dropped his coat on the chair and turned to the window. "Out," he said. She waited. He said nothing',
        "The wind comes off the lake and she pulls her coat tighter. Down the street, the lights of the bakery "
        "are still on. She thinks of her brother, who used to wait for her here every evening, and she",
    ],
    "expository": [
        "The city council approved a new budget on Tuesday, raising spending on public transport by 12 percent. "
        "According to the mayor's office, the plan will add 40 buses by March 2025. Officials said the",
        "Photosynthesis is the process by which plants convert light energy into chemical energy. It takes place "
        "mainly in the leaves, where chlorophyll absorbs light. The energy is used to turn carbon dioxide and",
        "Volcanoes form where magma rises through the crust. Most are found along the edges of tectonic plates, "
        "such as the Pacific Ring of Fire, which includes hundreds of active volcanoes. However, some volcanoes",
        "Unemployment fell to 4.1 percent in May, the lowest level in two years, the statistics agency reported "
        "on Friday. Economists had expected a rate of 4.3 percent. The agency said wages rose",
        "The Roman Empire reached its greatest extent under Trajan in 117 AD. Its territory stretched from "
        "Britain to Mesopotamia. Historians often divide its history into two periods: the Principate and the",
    ],
}

ODD_PREFIXES = [
    "",
    "   ",
    "\n\n\t\n",
    "x",
    "the",
    "word " * 30_000,  # very long
    "A" * 5000,  # one enormous token
    "Café naïve résumé — “quoted” ‘single’ déjà vu, ",
    "東京は日本の首都であり、世界で最も人口の多い都市の一つである。多くの人々が",
    "Москва — столица России, крупнейший по численности населения город страны. В",
    "```python\ndef f(x):\n    return x ** 2\n",
    "# Heading\n\n**Bold claim** and __underlined__ text with <b>tags</b> and `code`. Then ###",
    '<div class="a"><p>Hello <b>world</b></p>\n<ul>\n<li>one</li>\n<li>',
    "1. First\n2. Second\n3.",
    "- item\n* another\n# not a heading\n",
    "**",
    "```",
    "Feature 1: something\nFeature 2: else",
    "a\r\nb\r\nc: ",
    "emoji 😀🎉 and symbols ©®™ § ¶ • ",
    "\u200b\u200b zero width and \x00 nul",
    "__init__ __main__ __dunder__",
    "http://example.com/a/very/long/path/with_many_parts_and_underscores_and_more_stuff.html?q=1",
    "'",
    '"',
    "(",
    "{[(",
    "Line one.\n\n\n",
    "lone surrogate \udc80 and \ud800",
    "line\u2028separators\x85and\x0bvertical\x0ctabs\u2029",
    "\x1c\x1d\x1e control separators",
    "tab\tseparated\tvalues\n1\t2\t",
]


def _all_examples() -> list[str]:
    return [p for ps in GENRE_EXAMPLES.values() for p in ps] + ODD_PREFIXES


def _lines(text: str) -> list[str]:
    return text.split("\n")


@pytest.fixture(scope="module")
def teacher() -> HeuristicTeacher:
    return HeuristicTeacher(seed=0)


def test_every_output_passes_the_validator(teacher):
    prefixes = _all_examples()
    outs = teacher.explain(prefixes)
    assert "rule_errors" not in teacher.stats.extra  # no prefix fell back to the generic answer
    assert len(outs) == len(prefixes)
    for p, out in zip(prefixes, outs, strict=True):
        assert out is not None, p[:80]
        assert parse_explanation(out) == out, (p[:80], out)
        feats = _lines(out)
        assert 2 <= len(feats) <= 3
        for f in feats:
            assert len(f.split()) <= 25, f
            assert not re.search(r"[*#<>`]", f), f
            assert f.isprintable(), f  # no control or line-separator characters
        out.encode("utf-8")  # no lone surrogates


def test_every_cut_of_every_example_is_valid(teacher):
    # Cut each example at many points, like the truncation sampler does.
    prefixes = []
    for p in _all_examples()[:40]:
        step = max(1, len(p) // 25)
        prefixes += [p[:i] for i in range(0, min(len(p), 2000), step)]
    for p, out in zip(prefixes, teacher.explain(prefixes), strict=True):
        assert out is not None and parse_explanation(out) == out, (p[-80:], out)
        assert all(len(f.split()) <= 25 for f in _lines(out))
    assert "rule_errors" not in teacher.stats.extra


def test_stats_and_fingerprint():
    t = HeuristicTeacher(seed=3)
    t.explain(["a", "b", ""])
    assert t.stats.requested == 3 and t.stats.produced == 3 and t.stats.dropped == 0
    assert t.fingerprint() == {"name": "heuristic", "version": VERSION, "seed": 3}


def test_deterministic_and_seeded():
    prefixes = _all_examples()
    a = HeuristicTeacher(seed=0).explain(prefixes)
    b = HeuristicTeacher(seed=0).explain(prefixes)
    assert a == b
    assert HeuristicTeacher(seed=0).explain(list(reversed(prefixes))) == list(reversed(a))
    c = HeuristicTeacher(seed=1).explain(prefixes)
    assert sum(x != y for x, y in zip(a, c, strict=True)) >= len(prefixes) // 3


def test_deterministic_across_processes(tmp_path):
    # Python salts str hashes per process: no choice may depend on set or hash order.
    prefixes = [p for ps in GENRE_EXAMPLES.values() for p in ps]
    src = tmp_path / "prefixes.json"
    src.write_text(json.dumps(prefixes))
    code = (
        "import json, sys; from nla_variants.data.teachers.heuristic import HeuristicTeacher; "
        "print(json.dumps(HeuristicTeacher().explain(json.load(open(sys.argv[1])))))"
    )
    runs = []
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        out = subprocess.run(
            [sys.executable, "-c", code, str(src)],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        runs.append(json.loads(out.stdout))
    assert runs[0] == runs[1] == HeuristicTeacher().explain(prefixes)


@pytest.mark.parametrize("genre", sorted(GENRE_EXAMPLES))
def test_genre_inference(genre):
    for p in GENRE_EXAMPLES[genre]:
        assert _Doc(p).genre == genre, (genre, p[:80], _Doc(p).scores)


def _last(teacher, prefix: str) -> str:
    return _lines(teacher.explain([prefix])[0])[-1]


@pytest.mark.parametrize(
    "prefix, pattern",
    [
        ('He turned to her and said, "I never wanted to', r"double quote|quoted speech"),
        ("“We should leave before the", r"double quote|quoted speech"),
        ("The results (shown in the second", r"parenthesis"),
        ("The values [see the appendix for", r"square bracket"),
        ("She walked along the river until she reached the brid", r'word.*"brid"|"brid".*word'),
        ("The committee will publish its recommenda", r'"recommenda"'),
        (
            "The storm passed before midnight.",
            r"new (capitalised )?sentence|next sentence|sentence boundary",
        ),
        ("Was it worth the trouble?", r"question"),
        ("He opened the", r"noun"),
        ("They argued for hours, ", r"comma|clause"),
    ],
)
def test_prose_end_states(teacher, prefix, pattern):
    assert re.search(pattern, _last(teacher, prefix), re.I), _last(teacher, prefix)


@pytest.mark.parametrize(
    "prefix, pattern",
    [
        (
            'def area(r):\n    return math.pi * r ** 2\n\n\ndef greet(name):\n    msg = "Hello, ',
            r"string",
        ),
        ("def f(x):\n    '''Compute the", r"triple-quoted|docstring"),
        (
            "import os\n\ndef walk(root):\n    for dirpath, dirs, files in os.walk(root):\n        print(dirpath,",
            r"parenthesis|argument",
        ),
        ("def f(x):\n    y = [1, 2,\n         3, ", r"square bracket"),
        ("class A:\n    def run(self):\n        if self.ready:\n", r"indent|block"),
        (
            "import sys\n\ndef main():\n    args = sys.argv[1:]\n    return len(args)\n",
            r"line|statement",
        ),
        (
            "Example:\n\n```python\nfrom pkg import Client\nclient = Client(timeout=3)\nclient.fe",
            r"identifier|name",
        ),
    ],
)
def test_code_end_states(teacher, prefix, pattern):
    assert re.search(pattern, _last(teacher, prefix), re.I), _last(teacher, prefix)


def test_code_context_names_function_and_class(teacher):
    out = teacher.explain([GENRE_EXAMPLES["code"][0]])[0]
    assert "load" in out and "Loader" in out, out


def test_structured_and_dialogue_context(teacher):
    table = teacher.explain([GENRE_EXAMPLES["structured"][0]])[0]
    assert "price" in table, table
    chat = teacher.explain([GENRE_EXAMPLES["dialogue"][0]])[0]
    assert "Mira" in chat and "Tom" in chat, chat


@pytest.mark.parametrize(
    "prefix, pattern",
    [
        (
            "| name | price |\n|---|---|\n| tea | 2.0 |\n| coffee | ",
            r"price",
        ),  # the next cell's column
        ("id,name,city\n1,Ann,Oslo\n2,Bo,", r"city"),  # the CSV field being written
        (
            '[{"id": 1, "name": "a"},\n {"id": 2, "name": ',
            r'"name"',
        ),  # the JSON key awaiting a value
        ("Name: Hammer\nQty: 12\nBin: A4\n\nName: Saw\nQty: 3\n", r"Bin"),  # the next field
        ("- eggs\n- milk\n", r"item"),  # end of a list line
        (
            "Mira: Where is it?\nTom: In the car, I think.\nMira: Which car?\nTom: ",
            r"speaker tag.*Tom",
        ),
        ("Mira: Where is it?\nTom: In the car.\n", r"Mira"),  # turn ended: the other speaker next
    ],
)
def test_structured_and_dialogue_end_states(teacher, prefix, pattern):
    assert re.search(pattern, _last(teacher, prefix)), _last(teacher, prefix)


def _skeleton(feature: str) -> str:
    """A feature with quoted text and digits removed: what is left is the template."""
    return re.sub(r"\d+", "N", re.sub(r'"[^"]*"', "Q", feature))


def test_phrasing_varies(teacher):
    base = [p for ps in GENRE_EXAMPLES.values() for p in ps]
    prefixes = []
    for p in base:
        prefixes += [p[: len(p) * k // 3] for k in (1, 2)]
    prefixes = (prefixes + base)[:50]
    outs = teacher.explain(prefixes)
    last = {_skeleton(_lines(o)[-1]) for o in outs}
    first = {_skeleton(_lines(o)[0]).split(" about ")[0] for o in outs}
    assert len(last) >= 5 and len(first) >= 5, (last, first)
    # Even one fixed situation (a sentence just ended) gets several phrasings.
    same = [f"The {w} arrived late, and nobody in town noticed it." for w in "abcdefghijklmnopqrst"]
    assert len({_skeleton(_lines(o)[-1]) for o in teacher.explain(same)}) >= 3


def test_throughput():
    # 2,000 distinct prefixes of 100-3,000 characters, cut at varied points.
    docs = ["\n\n".join(ps * 4) for ps in GENRE_EXAMPLES.values()]
    prefixes = [docs[i % len(docs)][: 100 + (i * 997) % 2900] for i in range(2000)]
    t = HeuristicTeacher()
    # CPU time of this process, not wall time: other processes on a busy machine do not count.
    # A regression guard with a wide margin: about 0.3 s measured on a 2-core machine.
    start = time.process_time()
    outs = t.explain(prefixes)
    elapsed = time.process_time() - start
    assert all(outs)
    assert elapsed < 10.0, f"{len(prefixes) / elapsed:.0f} prefixes/s of CPU time"


# sha256 of the answers (seed 0) on every example above and on generated documents of each genre
# cut at fixed points. A change to a rule, word list or template must update it on purpose (and
# bump VERSION, which is part of every dataset address).
ANSWERS_HASH = "d7f2cd755874daee55d7c0d23dafd8358a80341b8ca36270b233af5dfa4e3fde"


def test_answers_are_unchanged():
    makers = (
        make_narrative,
        make_dialogue,
        make_expository,
        make_structured,
        make_code_snippet,
        make_api_doc,
    )
    prefixes = _all_examples()
    for i, make in enumerate(makers):
        rng = random.Random(i)
        for _ in range(40):
            text = make(rng)
            prefixes += [text[: len(text) * k // 5] for k in (1, 2, 3, 4)]
    assert hash_obj(HeuristicTeacher(seed=0).explain(prefixes)) == ANSWERS_HASH


def test_phrase_book_fills_every_template():
    # Every alternative is a str.format template (or a [template, fallback] pair).
    for key, options in PHRASES.items():
        for option in options:
            for template in (option,) if isinstance(option, str) else option:
                assert isinstance(template, str), key
                list(string.Formatter().parse(template))  # raises on a malformed template
