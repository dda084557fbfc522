"""Generated narrative prose: short past-tense stories with a consistent cast.

Why: narrative is the commonest genre of pretraining prose and its signals (a named protagonist,
pronoun chains, quoted speech, scene and time shifts) are what a probe for `narrative` should find.
A story is an opening, a themed complication, a few middle scenes drawn without repetition from
shared pools, and a themed ending; one story in three is told in the first person.
"""

from __future__ import annotations

import random

from .grammar import Grammar, L, P, W, draw, target_length, tidy
from .vocab import COMMON_RULES, character, town

RULES = {
    "years": P("two|three|four|five|six|eight|ten|twelve|fifteen|twenty|thirty"),
    "age_word": P("seven|eight|nine|ten|eleven|twelve|fourteen|sixteen|very small"),
    "age_num": P("eleven|sixteen|twenty|thirty|forty|fifty|sixty"),
    "ordinal": P("thirtieth|fortieth|twelfth|sixtieth|eighteenth|fiftieth|twenty-first"),
    "elder": P("grandmother|grandfather|aunt|uncle|mother|father|older cousin|godmother"),
    "sib": P("sister|brother|cousin|neighbour|oldest friend|landlady|former teacher"),
    "room": P("kitchen|attic|back porch|study|cellar|sewing room|glasshouse|box room"),
    "vehicle": P("bus|train|ferry|tram|night coach|delivery van|school bus"),
    "landmark": P(
        "clock tower|old cinema|footbridge|water mill|bandstand|signal box|lido|"
        "cannery|lighthouse|covered market|chapel on the hill|ice rink"
    ),
    "landmark_change": P(
        "closed|stopped working|burned down|been painted {colour}|"
        "been sold|fallen silent|been boarded up"
    ),
    "landmark_event": P(
        "closed|stopped working|burned down|was painted {colour}|"
        "was sold|fell silent|was boarded up"
    ),
    "town_spot": P(
        "station|harbour wall|market square|bus shelter|bridge|library|"
        "corner shop|car park|ferry landing|high street"
    ),
    "workplace": P(
        "bakery|print works|hospital|post office|boatyard|hotel|call centre|"
        "warehouse|school|garage|newspaper|laundry"
    ),
    "festival": P(
        "harvest fair|regatta|spring market|lantern festival|school play|"
        "town election|flower show|winter carnival|street party"
    ),
    "weather_adj": P("wet|grey|bitter|windless|sweltering|foggy|bright|blustery"),
    "sound": P(
        "telephone|dog next door|rain on the skylight|church bell|smoke alarm|"
        "knocking at the door|foghorn|radio downstairs|sound of breaking glass"
    ),
    "smell": P(
        "bread|engine oil|pine resin|turpentine|oranges|wet wool|bleach|woodsmoke|printer ink|fish"
    ),
    "container": P("biscuit tin|suitcase|shoebox|locked drawer|sea chest|envelope|toolbox"),
    "found_thing": P(
        "{colour} envelope|box of old photographs|bicycle with no owner|"
        "small wooden boat|basket of apples|set of keys|handwritten map"
    ),
    "collection": P(
        "bus tickets|broken clocks|postcards from places {he} had never been|"
        "the names of ships|recipes nobody cooked any more|lost gloves|"
        "pressed flowers|other people's arguments"
    ),
    "shop_kind": P("shop|workshop|café|stall|studio|pharmacy|bookshop|hardware store"),
    "time_open": P(
        """On the last {weekday} of {month}|Early one {season} morning|
        Late on a {weather_adj} {weekday}|A week after the {festival}|
        The year the {landmark} {landmark_event}|On the morning of {his} {ordinal} birthday|
        Just after {clock}|Halfway through a long {season}|On the first warm day of the year|
        The night the power went out|Two winters ago|That {season}"""
    ),
    "weather_open": P(
        """It had rained for three days when|The wind was still up when|
        Under a low {weather_adj} sky,|In the last of the light,|With the frost still on the fields,|
        Before the fog lifted,"""
    ),
    "open_act": P(
        """missed the last {vehicle} home|found a {found_thing} on the doorstep|
        decided to {decision}|locked the {shop_kind} for the last time|
        came back to {town} after {years} years away|heard {his} name called across the {town_spot}|
        opened a {container} that had not been opened in years|took the long way home|
        lost {his} job at the {workplace}|agreed to look after {fname}'s {animal}|
        started writing everything down|sold the car|knocked on the wrong door"""
    ),
    "decision": P(
        """learn to swim|leave {town}|paint the house {colour}|sell the {shop_kind}|
        write to {his} {elder}|stop answering the phone|walk to the coast|enter the {festival}|
        repair the old {vehicle} in the yard|say yes to everything for a month"""
    ),
    "first_notice": P(
        """noticed the {animal} that slept on the {town_spot}|learned the name of a single neighbour|
        visited the {landmark}|saw the {water} freeze|heard anyone sing in the street"""
    ),
    "water": P("river|harbour|lake|canal|estuary|millpond|sea"),
    "rumour": P(
        """the {landmark} was going to be torn down|someone had seen a {animal} in the {workplace}|
        the new {occupation} had come from prison|the {festival} would be cancelled|
        old {surname} had left everything to a stranger"""
    ),
    "habit": P(
        """done exactly what was expected|kept {his} opinions to {self}|been afraid of water|
        eaten the same breakfast|worked nights at the {workplace}|avoided the {town_spot}|
        believed {he} was unlucky|wanted to be a {occupation}"""
    ),
    "small_start": P(
        """a letter with no stamp|a wrong number|a {animal} in the kitchen|a crack in the ceiling|
        a missed {vehicle}|a bet {he} never meant to win|a name in the obituaries|
        a key that fitted no lock in the house"""
    ),
    "saying": P(
        """a house remembers everyone who has slept in it|you can tell a lot from a person's shoes|
        trouble always comes on a {weekday}|the sea gives back what it takes, eventually|
        nobody ever drowned in sweat|good bread cannot be hurried|
        the quietest person in the room is usually listening"""
    ),
    "arrival_state": P(
        """the crowd had already gone home|it was fully dark|the {vehicle} had left|
        {fname} was waiting with two cups of tea|the rain had turned to sleet|
        the shutters were down"""
    ),
    "noticed": P(
        """the silence|that the door was open|a smell of {smell}|the {colour} car outside|
        that the clocks had all stopped|a light in the {room} window|that the {animal} was gone"""
    ),
    "routine": P(
        """walked to the {town_spot} before work|bought a newspaper {he} never read|
        phoned {his} {elder} at exactly {clock}|swam in the {water}, whatever the weather|
        ate lunch on the same bench by the {landmark}"""
    ),
    "took_off": P("taken off {his} coat|closed the door|sat down|put down the shopping"),
    "fquirk": P(
        """never charged anyone who could not pay|talked to the radio as if it could hear|
        had opinions about everything|knew the tide tables by heart|
        whistled while {fhe} worked|kept a notebook of everyone's birthdays"""
    ),
    "later_claim": P(
        """it had been an accident|it was the best year of {his} life|
        {he} had known from the beginning|the {animal} had started it|
        none of it would have happened without {fname}"""
    ),
    "age_event": P(
        """the {landmark} {landmark_event}|{his} family moved to {town}|it did not stop raining|
        {his} {elder} taught {him} to drive|everything went wrong at once"""
    ),
    "town_kind_clause": P(
        """people still leave their doors unlocked|everyone knows whose dog is barking|
        the last {vehicle} leaves at nine|news travels faster than the post"""
    ),
    "arrival_clause": P("got to the {town_spot}|reached {fname}'s door|sat down to write"),
    "want": P("a quiet life|a new coat|to be left alone|nothing at all|to see the sea"),
    "s_line": P(
        """You look like you haven't slept|I thought you'd left {town} for good|
        It isn't what you think|Nobody's used that door in years|You'll want a coat|
        I kept it for you|We should have asked sooner|It's only a {animal}|
        I've been meaning to tell you something|That was your {elder}'s|
        Don't tell anyone yet"""
    ),
    "q_line": P(
        """Where have you been?|Did you hear about the {landmark}?|Is that what I think it is?|
        Can you keep a secret?|What time is it?|Have you eaten?|Who told you that?|
        Are you going to the {festival}?|Why didn't you call?"""
    ),
    "a_line": P(
        """Not yet|I'm not sure|Ask me tomorrow|Nobody, I just knew|Of course|
        Only if you come with me|It doesn't matter now|I didn't think you'd want to know"""
    ),
    "gesture": P(
        """shrugged|looked away|laughed|put the kettle on|folded {his} arms|said nothing|
        rubbed {his} eyes|nodded slowly"""
    ),
    "feeling": P(
        """relief|a small, stubborn hope|embarrassment|something close to anger|
        an old, familiar tiredness|gratitude|homesickness"""
    ),
}

INTRO = L(
    """
    {He} was a {occupation} by trade, though lately there had been little work.
    The house on {street} had belonged to {his} {elder}, and it still smelled of {smell}.
    {town} was small enough that everyone knew the story of the {landmark}.
    {fname} {fsurname}, who ran the {shop_kind} next door, had warned {him} about this.
    {He} was not, by nature, someone who took chances.
    At that time {he} worked at the {workplace}, on the early shift.
    There had always been something a little unfinished about {his} life in {town}.
    {His} {sib} had moved away years before and rarely wrote.
    The {weather_adj} weather had kept most people indoors all week.
    """
)

SCENES = L(
    """
    The {town_spot} was almost empty. A {animal} picked at something by the bins, and somewhere a radio was playing.
    Outside, the light was going. The {landmark} stood black against the sky, and the first lamps came on along {street}.
    {He} walked the length of {street} twice without really seeing it. The shops were shutting; a man was hosing down the pavement outside the {shop_kind}.
    It was colder in the {room} than anywhere else in the house. {He} sat on the floor with the {container} open in front of {him} and did not touch anything for a long time.
    The {vehicle} was crowded and smelled of {smell}. {He} stood by the door and watched {town} slide past: the {workplace}, the {landmark}, the grey line of the {water}.
    By {clock} the rain had eased. Water ran in the gutters, and the {town_spot} shone under the streetlights.
    There was nobody at the {town_spot} except an old woman feeding a {animal}, who nodded at {him} as if they had arranged to meet.
    The kitchen clock ticked. A tap dripped. Somewhere upstairs a floorboard settled, and {he} held {his} breath until the house was quiet again.
    """
)

MEMORIES = L(
    """
    {He} remembered being {age_word}, sitting outside the {town_spot} with {his} {elder} and eating {food} out of a paper bag.
    Years ago, {his} {elder} had taken {him} to the {festival} and lost {him} in the crowd for an hour. {He} had never quite forgiven the crowd.
    It reminded {him} of the summer {his} {sib} had worked at the {workplace}, when they had both been too young to know how little they knew.
    {He} thought of {his} {elder}'s hands, which had always smelled of {smell}, and of the way {his} {elder} used to hum while cooking {food}.
    The last time {he} had been inside the {landmark}, {he} had been {age_word}, and it had seemed enormous.
    {His} {elder} had kept a list of rules on the inside of the {room} door. The first one was: never leave a job half done.
    """
)

TALKS = L(
    """
    "{s_line}," {fname} said. {He} {gesture}. "{q_line}" {fname} asked. "{a_line}," {he} said at last.
    "{q_line}" {Name} asked. {fname} {gesture}. "{a_line}," {fhe} said. "{s_line}."
    {fname} was waiting by the {town_spot}. "{s_line}," {fhe} said, by way of hello.
    "{s_line}." {fname} held out a cup of tea. "{q_line}" "{a_line}," {Name} said, and took it.
    When {he} told {fname} about it, {fhe} was quiet for a while. Then {fhe} said, "{s_line}."
    """
)

REFLECTIONS = L(
    """
    {He} felt {feeling}, and underneath it, something {he} could not name.
    It was strange, {he} thought, how a single afternoon could change the shape of a year.
    None of it made sense yet, but {he} had the feeling that it would, given time.
    {He} had not expected to care this much.
    For the first time in weeks {he} was not tired.
    """
)

# Each theme: bindings chosen once per story, then the complication, developments, turn and end.
THEMES: tuple[dict[str, object], ...] = (
    {
        "bind": {
            "item": P(
                "brass key|wedding ring|notebook|grandfather's watch|spare glasses|"
                "red scarf|passport|letter from {his} {elder}|tin whistle|photograph"
            )
        },
        "trouble": L(
            """
            The {item} was gone. {He} looked in the {room}, under the bed, in every coat pocket, and then in the {room} again.
            It was only when {he} reached the {town_spot} that {he} realised the {item} was no longer in {his} pocket.
            """
        ),
        "develop": L(
            """
            {He} retraced {his} steps: the {workplace}, the {shop_kind}, the bench by the {landmark}. Nobody had seen the {item}.
            {fname} suggested putting a notice in the window of the {shop_kind}. {He} wrote it out three times before it sounded right.
            That night {he} dreamed of the {item} lying at the bottom of the {water}.
            """
        ),
        "turn": L(
            """
            It was {fname}, in the end, who found the {item}, wedged between the seat cushions of the {vehicle}.
            On the fourth day a child knocked on the door holding the {item} in both hands, as if it might break.
            """
        ),
        "end": L(
            """
            {He} kept the {item} closer after that, and sometimes, for no reason, took it out just to check.
            Afterwards {he} could not explain why losing the {item} had frightened {him} so much. {He} only knew that it had.
            """
        ),
    },
    {
        "bind": {
            "visitor": P(
                "stranger in a {colour} coat|young man with a guitar case|"
                "woman who said she was a cousin|surveyor from the council|"
                "boy with a {animal} on a string|retired {occupation}"
            )
        },
        "trouble": L(
            """
            The {visitor} arrived on the {vehicle} from {place} and asked for {him} by name.
            Nobody in {town} had ever seen the {visitor} before, but the {visitor} seemed to know everyone.
            """
        ),
        "develop": L(
            """
            The {visitor} took a room above the {shop_kind} and spent every afternoon at the {town_spot}, writing in a notebook.
            {fname} was convinced the {visitor} was from the council. {He} was less sure.
            The {visitor} asked a great many questions about the {landmark}, and answered none.
            """
        ),
        "turn": L(
            """
            On the last evening the {visitor} came to the house and put an envelope on the table. Inside was a photograph of {his} {elder} as a young {occupation}, standing outside the {landmark}.
            The truth, when it came out, was simpler than anyone had guessed: the {visitor} had been born in {town} and had only wanted to see it once more.
            """
        ),
        "end": L(
            """
            The {visitor} left on the early {vehicle}. {He} watched it go from the {town_spot} and found {he} was sorry.
            After that, whenever a stranger stepped off the {vehicle}, {he} looked twice.
            """
        ),
    },
    {
        "bind": {
            "dest": P(
                "the coast|{place}|the lake house|the mountains|{his} {elder}'s village|"
                "the border|the island"
            )
        },
        "trouble": L(
            """
            The plan was simple: {fname} would drive, {Name} would read the map, and they would reach {dest} by dark. Nothing about it turned out to be simple.
            {fname} and {Name} left {town} before dawn, with a map, a flask of coffee and no clear idea of the road to {dest}.
            """
        ),
        "develop": L(
            """
            Somewhere past the {water} the car began to make a noise like a {animal} in pain. They stopped in a village whose name neither of them could pronounce.
            {fname} drove; {he} read the map upside down and refused to admit it.
            They ate {food} at a roadside place where the owner insisted on telling them about his {sib}.
            """
        ),
        "turn": L(
            """
            When they finally reached {dest}, it was smaller than {he} remembered, and more beautiful.
            At the last turning before {dest} they found the road closed, and had to walk the final two miles in the dark.
            """
        ),
        "end": L(
            """
            On the way home neither of them spoke much. There was no need.
            For years afterwards {he} kept the map, folded wrong, in the drawer of the {room}.
            """
        ),
    },
    {
        "bind": {"storm": P("storm|flood|blizzard|gale|heatwave")},
        "trouble": L(
            """
            The {storm} came in faster than the forecast said. By {clock} the {town_spot} was closed and the {vehicle} had stopped running.
            Everyone had known the {storm} was coming, but nobody had expected it to take the roof off the {workplace}.
            """
        ),
        "develop": L(
            """
            {He} spent the night filling sandbags with {fname} and a dozen people {he} had never spoken to before.
            The power went out at midnight. They lit candles and played cards, and {fname} told the story of the last {storm}, which got worse with every telling.
            In the morning the {town_spot} was unrecognisable, and the {landmark} was leaning at an angle that made everyone uneasy.
            """
        ),
        "turn": L(
            """
            By the third day the water was going down, and people came out to count what they had lost.
            When the {storm} finally passed, the sky was clean and very blue, as if nothing had happened.
            """
        ),
        "end": L(
            """
            Later the council put up a plaque. {He} never read it; {he} did not need to.
            For years afterwards, {fname} and {Name} nodded to the people from that night, as if they shared a secret.
            """
        ),
    },
    {
        "bind": {
            "contest": P(
                "baking contest|chess tournament|rowing race|talent show|"
                "marrow-growing competition|quiz night|crossword final"
            )
        },
        "trouble": L(
            """
            {fname} entered {him} in the {contest} without asking, and by the time {he} found out, {his} name was on the poster.
            For {years} years running, the {contest} had been won by the same family, and {Name} had decided this would be the year it stopped.
            """
        ),
        "develop": L(
            """
            {He} practised every evening, badly at first and then less badly.
            The favourite was a retired {occupation} who had won the {contest} so often that people had stopped counting.
            {fname} made {him} a schedule and pinned it to the fridge, which did not help.
            """
        ),
        "turn": L(
            """
            On the day of the {contest}, everything went wrong in the first ten minutes, and then, unaccountably, everything went right.
            {He} came second, by a margin so narrow that the judges had to confer for half an hour.
            """
        ),
        "end": L(
            """
            The ribbon is still pinned above the {room} door, slightly faded.
            Next year, {he} told {fname}, {he} would win outright. {fname} said {fhe} had heard that before.
            """
        ),
    },
    {
        "bind": {
            "letter_from": P(
                "{his} {elder}|a lawyer in {place}|someone called {full_name}|"
                "the council|an old school friend|{his} {sib}"
            )
        },
        "trouble": L(
            """
            The letter was from {letter_from}, and it had taken, according to the postmark, eleven years to arrive.
            {He} read the letter from {letter_from} three times standing in the hall before {he} understood what it was asking.
            """
        ),
        "develop": L(
            """
            {He} showed it to {fname}, who read it slowly, put it down, and said, "Well. That changes things."
            It asked {him} to go to the {landmark} on the first {weekday} of {month} and wait.
            The handwriting was careful and old-fashioned, the kind nobody is taught any more.
            """
        ),
        "turn": L(
            """
            {He} went, of course. Nobody came, but tucked behind a loose brick {he} found a second envelope.
            In the end {he} wrote back, a long letter that said everything {he} had not said for years.
            """
        ),
        "end": L(
            """
            {He} kept both letters in the {container} under the bed, and for a long time could not decide whether to answer.
            Whatever {letter_from} had hoped for, {he} thought, this would have to do.
            """
        ),
    },
    {
        "bind": {
            "broken": P("boat|piano|clock in the hall|old {vehicle}|radio|roof|bicycle|greenhouse")
        },
        "trouble": L(
            """
            The {broken} had not worked since {his} {elder} died, and everyone agreed it could not be fixed.
            The {broken} gave out on a {weekday}, with a noise {he} would remember for a long time.
            """
        ),
        "develop": L(
            """
            {He} borrowed tools from {fname} and a manual from the library that was missing its last twenty pages.
            Every evening after work {he} took the {broken} apart a little further, laying the pieces out on newspaper in careful rows.
            A retired {occupation} from {street} came by to offer advice, most of it wrong, all of it kind.
            """
        ),
        "turn": L(
            """
            On a {weekday} in {month}, almost by accident, the {broken} worked.
            The missing part turned up in the {container}, wrapped in a page of a newspaper from {years} years before.
            """
        ),
        "end": L(
            """
            It was not as good as new. It was better than that: it was theirs again.
            {fname} said it had been a waste of a {season}. {He} did not think so.
            """
        ),
    },
    {
        "bind": {
            "job": P(
                "{occupation}|night manager at the {workplace}|assistant to a {occupation}|"
                "harbourmaster's clerk|relief {occupation}"
            )
        },
        "trouble": L(
            """
            The new job as a {job} started on a {weekday}, and by {clock} {he} had already made three mistakes.
            Nobody had told {him} that being a {job} meant starting at five in the morning.
            """
        ),
        "develop": L(
            """
            {His} supervisor was a tall, tired person called {full_name} who said very little and noticed everything.
            {He} learned the names of the regulars, the ones who tipped, and the one who had to be watched.
            {fname} asked every evening how it was going, and every evening {he} said fine.
            """
        ),
        "turn": L(
            """
            Six weeks in, {full_name} left {him} in charge for a whole afternoon, and nothing caught fire.
            The day the inspector came, {he} was the only one who knew where the old records were kept.
            """
        ),
        "end": L(
            """
            {He} stayed a {job} for years after that. Some days {he} even liked it.
            When people asked what {he} did, {he} said {job}, and did not apologise for it any more.
            """
        ),
    },
)

TITLES = P(
    """The {landmark_t}|What the {animal_t} Knew|A {season_t} in {town}|{name}'s {noun_t}|
    The Last {vehicle_t} from {town}|Notes from {town}|The {colour_t} {noun_t}|Low Tide at {town}|
    {noun_t}|After the {festival_t}"""
)
TITLE_RULES = {
    "landmark_t": P("Clock Tower|Footbridge|Lido|Signal Box|Cannery|Lighthouse|Bandstand"),
    "animal_t": W("Heron Fox Crow Otter Gull Hare Owl"),
    "season_t": W("Spring Summer Autumn Winter"),
    "noun_t": P("Inheritance|Key|Map|Letter|Boat|Garden|Summer|Promise|Silence|Visitor"),
    "vehicle_t": W("Bus Train Ferry Tram"),
    "colour_t": W("Red Blue Green Grey White Black"),
    "festival_t": P("Regatta|Harvest Fair|Flood|Storm|Carnival|Election"),
}

OPENINGS = L(
    """
    {time_open}, {Name} {open_act}.
    {Name} had lived in {town} for {years} years before {he} {first_notice}.
    Nobody in {town} could say exactly when the {landmark} had {landmark_change}.
    When {Name} was {age_word}, {his} {elder} took {him} to see the {landmark}.
    {weather_open} {Name} {open_act}.
    There was a rumour going around {town} that {rumour}.
    For most of {his} life, {Name} had {habit}.
    It started, as these things often do, with {small_start}.
    {His} {elder} used to say that {saying}.
    By the time {Name} reached the {town_spot}, {arrival_state}.
    The first thing {Name} noticed was {noticed}.
    Every {weekday} {Name} {routine}.
    "{s_line}," said {fname}, before {Name} had even {took_off}.
    At {clock} on a {weekday} in {month}, {Name} {open_act}.
    {fname} {fsurname} was the only {occupation} in {town}, and {fhe} {fquirk}.
    Later, {Name} would tell people that {later_claim}.
    Of all the rooms in {his} {elder}'s house, {Name} liked the {room} best.
    The {season} {Name} turned {age_num}, {age_event}.
    {town} is the kind of place where {town_kind_clause}.
    Some people collect stamps; {Name} collected {collection}.
    In the end it was the {sound} that woke {him}.
    No one had used the {landmark} for {years} years.
    Three days before the {festival}, {Name} {open_act}.
    {His} hands still smelled of {smell} when {he} {arrival_clause}.
    That morning, if anyone had asked, {Name} would have said {he} wanted {want}.
    """
)

GRAMMAR = Grammar(COMMON_RULES, RULES, TITLE_RULES)


def make_narrative(rng: random.Random) -> str:
    """One short story, 450-2400 characters."""
    bind = {"town": town(rng)}
    bind.update(character(rng, "", first_person=rng.random() < 0.3))
    bind.update(character(rng, "f"))
    for key in ("elder", "sib", "room", "workplace", "landmark", "town_spot", "water"):
        bind[key] = GRAMMAR.pick(key, rng, bind)
    theme = THEMES[rng.randrange(len(THEMES))]
    for key, alts in theme["bind"].items():  # type: ignore[union-attr]
        bind[key] = GRAMMAR(rng.choice(alts), rng, bind)

    def say(templates: list[str]) -> str:
        return tidy(" ".join(GRAMMAR(t, rng, bind) for t in templates))

    target = target_length(rng, median=900, high=2400)
    develop: list[str] = list(theme["develop"])  # type: ignore[call-overload]
    rng.shuffle(develop)
    opening = [rng.choice(OPENINGS)] + draw(rng, INTRO, rng.randint(1, 2))
    paras = [say(opening), say([rng.choice(theme["trouble"]), develop.pop()])]  # type: ignore[arg-type]
    ending = say([rng.choice(theme["turn"]), rng.choice(theme["end"])])  # type: ignore[arg-type]
    pools = [draw(rng, SCENES, 4), draw(rng, MEMORIES, 2), draw(rng, TALKS, 3)]
    reflections = draw(rng, REFLECTIONS, 3)
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
        paras.insert(0, GRAMMAR(rng.choice(TITLES), rng, bind))
    return "\n\n".join(paras)
