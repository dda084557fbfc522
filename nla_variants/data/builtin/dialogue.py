"""Generated dialogue: chat logs, text threads, IRC logs, play scripts, interviews, call logs.

Why: dialogue is recognisable by turn structure (speaker labels, alternation, short replies,
questions answered in the next turn) rather than vocabulary, so the same everyday topics are
rendered in several transcript layouts; a probe must find turn-taking, not a topic or a format.
Topics, question-answer pairs and stage directions are `data/dialogue.yaml`.
"""

from __future__ import annotations

import random

from .grammar import Grammar, lexicon, number, render_document, tidy
from .vocab import COMMON_RULES, FEMALE, MALE

_D = lexicon("dialogue")
# Each topic: A opens; B replies with a chain "B || A || B" (B asks, A answers, B advises); then
# self-contained "A || B" question-answer pairs; then A closes and B signs off.
TOPICS: tuple[dict[str, tuple[str, ...]], ...] = _D["topics"]
_NUMBERS = {
    "num": number(2, 12),
    "goals": number(2, 4),
    "pct": lambda rng: str(rng.choice((10, 15, 20, 25, 30))),
    "price": lambda rng: f"{rng.randint(4, 180)}.{rng.choice(('00', '50', '99', '95'))}",
    "ref": lambda rng: f"{rng.choice('ABCDHKMPRTX')}{rng.randint(10000, 99999)}",
    "meal": lambda rng: (
        f"{rng.randint(9, 35)} quid" if rng.random() < 0.5 else f"${rng.randint(9, 35)}"
    ),
    "year": number(1995, 2024),
}
GRAMMAR = Grammar(COMMON_RULES, _D["rules"], _NUMBERS)


def _names(rng: random.Random, n: int) -> list[str]:
    pool = list(FEMALE + MALE)
    return rng.sample(pool, n)


def _conversation(rng: random.Random, target: int) -> list[tuple[int, str]]:
    """(speaker index 0/1, text) turns on one topic, long enough to approach `target` chars."""
    topic = TOPICS[rng.randrange(len(TOPICS))]
    bind: dict[str, str] = {}
    for key in (
        "dish",
        "device",
        "fixture",
        "plant",
        "pet",
        "city",
        "subject",
        "job_role",
        "weekday",
    ):
        bind[key] = GRAMMAR.pick(key, rng)

    def say(t: str) -> str:
        return tidy(GRAMMAR(t, rng, bind))

    turns = [(0, say(rng.choice(topic["open"])))]
    b_ask, a_answer, b_advice = rng.choice(topic["reply"]).split("||")
    turns += [(1, say(b_ask.strip())), (0, say(a_answer.strip())), (1, say(b_advice.strip()))]
    pairs = list(topic["qa"])
    rng.shuffle(pairs)
    size = sum(len(t) for _, t in turns)
    for pair in pairs:
        if size > target and len(turns) >= 4:
            break
        q, a = pair.split("||")
        turns += [(0, say(q.strip())), (1, say(a.strip()))]
        if rng.random() < 0.2:
            turns.append((0, say("{ok}")))
        size += len(turns[-1][1]) + len(turns[-2][1]) + 20
    turns += [(0, say(rng.choice(topic["close"]))), (1, say(rng.choice(topic["bye"])))]
    return turns


def _chat(rng: random.Random, target: int) -> str:
    a, b = rng.choice(_D["chat_roles"]) if rng.random() < 0.5 else _names(rng, 2)
    sep = rng.choice((": ", ": ", " > ", ":\n"))
    lines = [f"{(a, b)[s]}{sep}{t}" for s, t in _conversation(rng, target)]
    head = rng.random()
    if head < 0.15:
        lines.insert(0, f"Chat started {GRAMMAR.pick('date', rng)}, {GRAMMAR.pick('clock', rng)}")
    elif head < 0.3:
        lines.insert(0, f"Ticket #{rng.randint(10000, 999999)} - conversation transcript")
    return ("\n\n" if rng.random() < 0.6 else "\n").join(lines)


def _texts(rng: random.Random, target: int) -> str:
    a, b = _names(rng, 2)
    h, m = rng.randint(7, 22), rng.randint(0, 59)
    out = []
    lower = rng.random() < 0.4
    for s, t in _conversation(rng, target):
        m += rng.randint(0, 6)
        h, m = (h + m // 60) % 24, m % 60
        text = t.lower() if lower else t
        out.append(f"[{h:02d}:{m:02d}] {(a, b)[s]}: {text}")
    return "\n".join(out)


def _irc(rng: random.Random, target: int) -> str:
    nicks = [
        n.lower() + rng.choice(("", "", "_", str(rng.randint(1, 99)), "x")) for n in _names(rng, 3)
    ]
    h, m = rng.randint(0, 23), rng.randint(0, 59)
    out = []
    if rng.random() < 0.4:
        out.append(f"*** {nicks[2]} has joined #{rng.choice(_D['channel'])}")
    for s, t in _conversation(rng, target):
        m += rng.randint(0, 3)
        h, m = (h + m // 60) % 24, m % 60
        out.append(f"[{h:02d}:{m:02d}] <{nicks[s]}> {t}")
        if rng.random() < 0.08:
            out.append(f"[{h:02d}:{m:02d}] <{nicks[2]}> {GRAMMAR.pick('ok', rng)}")
    return "\n".join(out)


def _script(rng: random.Random, target: int) -> str:
    a, b = (n.upper() for n in _names(rng, 2))
    out = []
    if rng.random() < 0.5:
        place = rng.choice(_D["scene"])
        out.append(
            f"{'EXT.' if place in ('BUS STOP', 'BACK GARDEN') else 'INT.'} {place} - "
            f"{rng.choice(_D['scene_time'])}"
        )
        out.append(f"{a} and {b} {rng.choice(_D['scene_action'])}.")
    for s, t in _conversation(rng, target):
        stage = f" {rng.choice(_D['stage'])}" if rng.random() < 0.2 else ""
        out.append(f"{(a, b)[s]}{stage}\n{t}" if rng.random() < 0.5 else f"{(a, b)[s]}:{stage} {t}")
    return "\n\n".join(out)


def _interview(rng: random.Random, target: int) -> str:
    who = GRAMMAR.pick("full_name", rng)
    bind = {"who": who, "occupation": GRAMMAR.pick("occupation", rng)}
    q_label, a_label = rng.choice(
        (("Q", "A"), ("INTERVIEWER", who.split()[0].upper()), ("Interviewer", who.split()[-1]))
    )
    out = [tidy(GRAMMAR(rng.choice(_D["intro_lines"]), rng, bind))] if rng.random() < 0.7 else []
    pairs = list(_D["interview_qa"])
    rng.shuffle(pairs)
    size = 0
    for pair in pairs:
        if size > target and len(out) >= 6:
            break
        q, a = (tidy(GRAMMAR(x.strip(), rng, bind)) for x in pair.split("||"))
        out += [f"{q_label}: {q}", f"{a_label}: {a}"]
        size += len(q) + len(a)
    return "\n\n".join(out)


FORMATS = ((_chat, 3), (_texts, 2), (_irc, 1), (_script, 2), (_interview, 1))
_FORMAT_CHOICES = tuple(f for f, w in FORMATS for _ in range(w))


def make_dialogue(rng: random.Random) -> str:
    """One transcript, 450-2400 characters."""
    return render_document(rng, _FORMAT_CHOICES, median=800, high=2200, grow=400)
