"""Generated narrative prose: short past-tense stories with a consistent cast.

Why: narrative is the commonest genre of pretraining prose and its signals (a named protagonist,
pronoun chains, quoted speech, scene and time shifts) are what a probe for `narrative` should find.
A story is an opening, a themed complication, a few middle scenes drawn without repetition from
shared pools, and a themed ending; one story in three is told in the first person. The pools and
themes are `data/narrative.yaml`.
"""

from __future__ import annotations

import random

from .grammar import Grammar, draw, lexicon, target_length, tidy
from .vocab import COMMON_RULES, character, town

_D = lexicon("narrative")
THEMES: tuple[dict, ...] = _D["themes"]  # bindings, then trouble, developments, turn and end
GRAMMAR = Grammar(COMMON_RULES, _D["rules"], _D["title_rules"])


def make_narrative(rng: random.Random) -> str:
    """One short story, 450-2400 characters."""
    bind = {"town": town(rng)}
    bind.update(character(rng, "", first_person=rng.random() < 0.3))
    bind.update(character(rng, "f"))
    for key in ("elder", "sib", "room", "workplace", "landmark", "town_spot", "water"):
        bind[key] = GRAMMAR.pick(key, rng, bind)
    theme = THEMES[rng.randrange(len(THEMES))]
    for key, alts in theme["bind"].items():
        bind[key] = GRAMMAR(rng.choice(alts), rng, bind)

    def say(templates: list[str]) -> str:
        return tidy(" ".join(GRAMMAR(t, rng, bind) for t in templates))

    target = target_length(rng, median=900, high=2400)
    develop: list[str] = list(theme["develop"])
    rng.shuffle(develop)
    opening = [rng.choice(_D["openings"])] + draw(rng, _D["intro"], rng.randint(1, 2))
    paras = [say(opening), say([rng.choice(theme["trouble"]), develop.pop()])]
    ending = say([rng.choice(theme["turn"]), rng.choice(theme["end"])])
    pools = [draw(rng, _D["scenes"], 4), draw(rng, _D["memories"], 2), draw(rng, _D["talks"], 3)]
    reflections = draw(rng, _D["reflections"], 3)
    size = sum(map(len, paras)) + len(ending)
    while size < target and any(pools):
        kind = rng.choice([p for p in pools if p])
        parts = [kind.pop()]
        if develop and rng.random() < 0.6:
            parts.append(develop.pop())
        if reflections and rng.random() < 0.3:
            parts.append(reflections.pop())
        paras.append(say(parts))
        size += len(paras[-1])
    paras.append(ending)
    if rng.random() < 0.25:
        paras.insert(0, GRAMMAR(rng.choice(_D["titles"]), rng, bind))
    return "\n\n".join(paras)
