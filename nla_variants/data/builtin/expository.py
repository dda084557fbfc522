"""Generated expository prose: local news, encyclopedia-style entries, explainers, reports.

Why: expository text is third-person, present/perfect tense, dense with numbers, dates, named
institutions and attributed quotes; it contrasts with narrative (past-tense scenes, a protagonist)
and dialogue (turns), so a probe must pick up register, not topic. News, reference entries and
explainers share the vocabulary of the other generated genres on purpose.
"""

from __future__ import annotations

import random

from .grammar import Grammar, L, P, cap, draw, render_document, tidy
from .vocab import COMMON_RULES

RULES = {
    "year": lambda rng: str(rng.randint(1850, 2023)),
    "old_year": lambda rng: str(rng.randint(1086, 1850)),
    "pop": lambda rng: f"{rng.randint(2, 180) * 100 + rng.randint(0, 99):,}",
    "pct": lambda rng: str(rng.randint(3, 68)),
    "num": lambda rng: str(rng.randint(3, 40)),
    "money": lambda rng: (
        rng.choice("£$€")
        + (
            f"{rng.randint(12, 950)},000"
            if rng.random() < 0.4
            else f"{rng.randint(11, 95) / 10:g} million"
        )
    ),
    "day": lambda rng: str(rng.randint(1, 28)),
    "role": P(
        "a spokesperson for the council|the head of the local residents' association|"
        "a senior engineer on the project|the school's head teacher|a local shop owner|"
        "the chair of the planning committee|a researcher involved in the study|"
        "the organisation's director|a regional fire officer|a long-time resident"
    ),
    "body": P(
        "city council|county council|regional transport authority|water board|"
        "health trust|parish council|harbour commission|education department"
    ),
    "project": P(
        "a new footbridge over the {river}|plans to pedestrianise the high street|"
        "a {money} upgrade to the water treatment works|a new primary school|"
        "an extension to the tram line|a cycle lane along {street}|"
        "the restoration of the old {building}|a solar farm on former farmland"
    ),
    "river": P("River {river_name}|{river_name} estuary|{river_name} canal"),
    "river_name": P("Wend|Alder|Colne|Ouse|Tarn|Esk|Lune|Brae|Severn|Aire|Wyre|Tamar|Dove"),
    "building": P(
        "corn exchange|railway station|public baths|town hall|cinema|library|"
        "market hall|lighthouse|grain store|assembly rooms"
    ),
    "storm_kind": P(
        "heavy rain|a severe gale|flash flooding|a late snowfall|a heatwave|thunderstorms"
    ),
    "business": P(
        "bakery|bicycle repair shop|bookshop|brewery|furniture workshop|"
        "software company|family-run hardware store|cinema|fish market"
    ),
    "company": P(
        "{surname} & {surname}|{town} {industry} Ltd|{surname} {industry}|"
        "{colour_cap} {thing_cap} Co."
    ),
    "industry": P("Engineering|Foods|Logistics|Textiles|Energy|Software|Ceramics|Print"),
    "colour_cap": P("Blue|Red|Green|Grey|White|Amber"),
    "thing_cap": P("Heron|Anchor|Lantern|Oak|Harbour|Bridge|Kettle"),
    "finding": P(
        "people who walk for twenty minutes a day sleep better|"
        "urban trees lower street temperatures by several degrees|"
        "children who read for pleasure do better in maths|"
        "shared gardens reduce loneliness among older residents|"
        "most household food waste comes from bread, fruit and vegetables|"
        "bees in towns travel shorter distances than bees in the countryside"
    ),
    "institution": P(
        "University of {city}|{town} Institute of Public Health|"
        "{city} Marine Laboratory|National Centre for Rural Studies|"
        "{town} College"
    ),
    "sport": P("football|rugby|hockey|netball|cricket|basketball|rowing"),
    "club": P("{town} {club_tail}"),
    "club_tail": P("United|Rovers|Athletic|Harriers|Town|Wanderers|Rangers|Albion"),
    "event": P(
        "food festival|book fair|folk music weekend|lantern parade|"
        "open gardens day|boat race|vintage car rally|street market"
    ),
    "animal_pl": P(
        "otters|barn owls|water voles|grey seals|red kites|salmon|hedgehogs|"
        "swifts|beavers|natterjack toads"
    ),
    "size": P("small|small|medium-sized|large|historic|former mining|coastal|market"),
    "kind": P("town|village|market town|port town|parish|city|settlement"),
    "industry_lc": P(
        "wool trade|fishing|coal mining|shipbuilding|brewing|quarrying|"
        "pottery|salt production|paper making|tourism"
    ),
    "feature": P(
        "a medieval bridge|a {building} dating from the {century} century|"
        "a ruined castle|a Georgian square|a working water mill|"
        "a long shingle beach|a Victorian pier|an unusually tall church spire"
    ),
    "century": P("twelfth|fourteenth|sixteenth|seventeenth|eighteenth|nineteenth"),
    "trend": P("rose|fell|remained broadly stable|increased sharply|declined slowly"),
}

# News stories by kind: headlines, ledes, body paragraphs and things people say about it.
NEWS_KINDS: tuple[dict[str, tuple[str, ...]], ...] = (
    {
        "head": L("""
            {town} council approves {project}
            Residents divided over {project}
            Green light for {project} in {town}
        """),
        "lede": L("""
            Plans for {project} have been approved by {town} {body}, despite objections from some residents.
            Councillors in {town} have voted {num} to {num2} in favour of {project}, ending two years of debate.
        """),
        "body": L("""
            The decision followed a public consultation in which {pct} percent of respondents said they supported the proposal. Work is expected to begin in {month} and last around {num} months.
            According to figures released by the {body}, the cost of the scheme has risen by {pct} percent since it was first proposed in {year}.
            Opponents of the plan have collected more than {pop} signatures on a petition calling for the decision to be reviewed.
            Similar schemes elsewhere have had mixed results. In {city}, a comparable project was completed {num} months late and well over budget.
            Businesses on {street} have asked for compensation for the disruption expected during construction.
        """),
        "say": P(
            "This is exactly the kind of investment the area needs|We have listened carefully to people's concerns|"
            "Nobody asked the people who actually live here|There is still a lot of work to do|"
            "I would urge people to keep having their say"
        ),
    },
    {
        "head": L("""
            {storm_kind_cap} closes roads across {town}
            Clean-up begins after {storm_kind} hits {town}
            Hundreds without power as {storm_kind} sweeps the {region}
        """),
        "lede": L("""
            {storm_kind_cap} caused widespread disruption across {town} on {weekday}, with several roads closed and dozens of homes without power.
            Residents of {town} spent {weekday} clearing up after {storm_kind} left fallen trees and flooded cellars across the {region}.
        """),
        "body": L("""
            Emergency services said they had responded to more than {num} incidents overnight. No serious injuries were reported.
            The {river} burst its banks near the {building}, and sandbags were handed out from the fire station until late in the evening.
            Engineers worked through the night to restore electricity, and by {clock} most households had been reconnected.
            Forecasters said the {month} total had already exceeded the monthly average by {pct} percent.
            Schools in the area were closed as a precaution, and several bus routes were suspended.
        """),
        "say": P(
            "I have never seen anything like it|It has been a very difficult few days for everyone|"
            "We are asking people to be patient|Please do not drive through flood water|"
            "We are grateful to everyone who helped"
        ),
    },
    {
        "head": L("""
            {business_cap} in {town} to close after {num} years
            End of an era as {town} {business} shuts its doors
        """),
        "lede": L("""
            A {business} that has traded on {street} in {town} for {num} years will close at the end of {month}, its owners have announced.
            One of {town}'s best-known businesses, a {business} on {street}, is to close, blaming rising costs.
        """),
        "body": L("""
            The owners said rising rents and falling footfall had made the business impossible to sustain. The building's landlord has not commented.
            The shop was opened in {year} by the current owner's grandparents and has been run by the same family ever since.
            Regular customers have left cards and flowers in the window since the news broke on {weekday}.
            It is the {num2_word} business on the street to close in the past two years, according to the local traders' association.
            Staff will be offered redundancy pay, and the owners hope that a new tenant will keep the shopfront as it is.
        """),
        "say": P(
            "Nobody wanted it to end like this|We simply could not carry on as we were|"
            "It feels like losing a piece of the town|We want to thank every customer who came through that door"
        ),
    },
    {
        "head": L("""
            New study finds {finding}
            Researchers say {finding}
        """),
        "lede": L("""
            Researchers at the {institution} have found that {finding}, according to a study published this week.
            People who {habit_lc} may benefit more than previously thought, according to new research from the {institution}.
        """),
        "body": L("""
            The study followed {pop} people over {num} years. The effect held after the researchers accounted for age, income and general health.
            The authors caution that the study shows an association rather than proof of cause and effect.
            Previous research in {city} had reached a similar conclusion, but used a much smaller sample.
            The work was funded by a grant of {money} and has been published in a peer-reviewed journal.
            The team now plans a follow-up trial in {num2} schools and community centres across the {region}.
        """),
        "say": P(
            "The results were clearer than we expected|This is one piece of a much larger puzzle|"
            "Small changes in daily life can add up|We need larger trials before making recommendations"
        ),
    },
    {
        "head": L("""
            {club} win at last after {num}-match drought
            Late goal gives {club} victory in local derby
        """),
        "lede": L("""
            {club} ended a long run without a win on {weekday}, beating their rivals in front of a crowd of more than {pop}.
            A goal in the final minute gave {club} a {num2}-1 victory on {weekday}, lifting them off the bottom of the table.
        """),
        "body": L("""
            The home side started brightly and hit the post twice in the first twenty minutes.
            The visitors equalised early in the second half, and for a long spell it looked as if the drought would continue.
            The winning goal came from a corner, headed in at the back post by a seventeen-year-old making only his second start.
            The club's manager, appointed in {month}, has changed the formation three times this {season}.
            Attendances have {trend} this year, and the club hopes the result will bring supporters back.
        """),
        "say": P(
            "The lads deserved that|We have been knocking on the door for weeks|"
            "I told them at half time to keep going|The supporters never stopped singing"
        ),
    },
    {
        "head": L("""
            {event_cap} returns to {town} after {num}-year break
            Crowds expected as {town} {event} comes back
        """),
        "lede": L("""
            The annual {event} will return to {town} this {season} for the first time in {num} years, organisers have confirmed.
            After a {num}-year absence, {town}'s {event} is back, with more stalls and a longer programme than ever.
        """),
        "body": L("""
            Organisers expect around {pop} visitors over the weekend and have asked people to use public transport where possible.
            The event was cancelled in {year} after funding from the {body} was withdrawn. It is now run entirely by volunteers.
            This year's programme includes live music, a children's parade and a market with more than {num}0 stalls.
            Roads around the market square will be closed from {clock} on the Saturday.
        """),
        "say": P(
            "The whole town has pulled together to make this happen|It is a celebration of everything we love about the place|"
            "We could not do it without the volunteers|Bring a coat, just in case"
        ),
    },
    {
        "head": L("""
            Rare {animal_pl} spotted near {town}
            {animal_pl_cap} return to the {river}
        """),
        "lede": L("""
            Conservation volunteers have recorded {animal_pl} near {town} for the first time in living memory.
            {animal_pl_cap} have been seen along the {river} near {town}, raising hopes that the river is recovering.
        """),
        "body": L("""
            Sightings have been confirmed by the regional wildlife trust, which described the return as a sign that the river's health is improving.
            Water quality has improved since the {body} upgraded the sewage works upstream in {year}.
            Volunteers have planted more than {pop} trees along the banks over the past decade.
            Visitors are being asked to keep dogs on leads and stay on marked paths during the breeding season.
        """),
        "say": P(
            "It is the best news we have had in years|This shows what patient work can achieve|"
            "Please give them space|We never thought we would see this"
        ),
    },
    {
        "head": L("""
            Bus routes in {town} to be cut from {month}
            Anger over plans to reduce rural bus services
        """),
        "lede": L("""
            Bus services linking {town} with surrounding villages will be reduced from {month}, the {body} has confirmed.
            Campaigners in {town} have criticised plans to cut evening and weekend bus services across the {region}.
        """),
        "body": L("""
            The {body} said the changes were needed to close a funding gap of {money}. Campaigners argue that the cuts will hit older residents hardest.
            Under the proposals, the last bus from {city} will leave at {clock} instead of late evening.
            Passenger numbers on the affected routes {trend} over the past five years, according to the operator.
            A public meeting will be held at the {building} on {weekday} evening.
        """),
        "say": P(
            "For many people the bus is the only way to get to the doctor|We have had to make some very hard choices|"
            "This will leave whole villages cut off|We are open to alternative proposals"
        ),
    },
)

NEWS_QUOTES = L(
    """
    "{say}," said {full_name}, {role}.
    {full_name}, {role}, said: "{say}."
    "{say}," {full_name} told reporters. "{say2}."
    "{say}," said one {town} resident, who asked not to be named.
    """
)
NEWS_CLOSE = L(
    """
    A final decision is expected at the next meeting of the {body} in {month}.
    The {body} has said it will publish a full report later this year.
    Anyone affected is advised to check the {body}'s website for updates.
    More details are expected to be announced on {weekday}.
    """
)

ENTRY = {
    "lead": L("""
        {town} is a {size} {kind} in the {region} of {country}, on the banks of the {river}. At the {year} census it had a population of {pop}.
        {town} ({local_name}) is a {kind} and civil parish in the {region} of {country}. It lies about {num} kilometres from {city}.
        {town} is a {kind} in {country}, best known for {feature}. Its population was recorded as {pop} in {year}.
    """),
    "history": L("""
        The settlement is first recorded in {old_year}, when it appears in a list of holdings belonging to a local abbey. For much of its history it was a small farming community.
        The growth of {industry_lc} in the {century} century transformed {town} from a village into a busy market centre. The population {trend} over the following decades.
        A railway station opened in {rail_year}, linking {town} to {city} and bringing the first regular visitors. The line closed in the {decade}s.
        Much of the old centre was rebuilt after a fire in {old_year}. Several timber-framed buildings survived and are now protected.
        By the {decade}s the decline of {industry_lc} had left many residents without work, and the {kind}'s population {trend}.
    """),
    "economy": L("""
        Today the local economy depends largely on {industry_lc}, retail and public services. Around {pct} percent of residents commute to {city} for work.
        Small manufacturing firms and a growing number of {business}s have replaced the older industries. Tourism accounts for roughly {pct} percent of local jobs.
        A weekly market has been held on the main square since {old_year}, and still takes place every {weekday}.
    """),
    "culture": L("""
        Notable sights include {feature} and {feature2}. The town hosts an annual {event} each {season}.
        The local football club, {club}, was founded in {year} and plays in the regional league.
        The town has a small museum, housed in the former {building}, which holds a collection relating to {industry_lc}.
        {town} is twinned with {city}. A twinning association organises exchange visits every other year.
    """),
    "geography": L("""
        The {kind} sits in a shallow valley, sheltered from the prevailing westerly winds. The surrounding land is mostly pasture and woodland.
        The climate is temperate, with mild summers and cool, wet winters. Flooding along the {river} has been a recurring problem.
        The highest point in the parish is a hill known locally as {surname}'s Knoll, at about {num}0 metres above sea level.
    """),
}

ENTRY_RULES = {
    "local_name": lambda rng: (
        rng.choice(("locally ", "historically ", "formerly ", ""))
        + "known as "
        + rng.choice(("Old ", "Great ", "Little ", ""))
        + rng.choice(COMMON_RULES["surname"])
        + "ton"
    ),
    "decade": lambda rng: str(rng.randint(195, 199) * 10),
    "rail_year": lambda rng: str(rng.randint(1838, 1912)),
    "storm_kind_cap": P("Heavy rain|A severe gale|Flash flooding|A late snowfall|Thunderstorms"),
    "business_cap": P("Bakery|Bookshop|Hardware store|Family butcher|Cinema|Bicycle shop"),
    "num2_word": P("third|fourth|fifth|sixth"),
    "habit_lc": P("walk to work|garden regularly|sleep eight hours|cook at home|volunteer"),
    "event_cap": P("Food festival|Book fair|Folk weekend|Lantern parade|Boat race|Street market"),
}

# Explainers: a topic is a title and a pool of sentences; paragraphs draw from the pool.
EXPLAINERS: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] = (
    (
        P("How tides work|Why the sea goes in and out|Tides, explained|A short guide to tides"),
        L("""
            Tides are caused mainly by the pull of the Moon's gravity on the oceans, with a smaller contribution from the Sun.
            Most coasts see two high tides and two low tides roughly every twenty-four hours and fifty minutes.
            When the Sun and Moon line up, their pulls combine and produce larger spring tides; when they are at right angles, the smaller neap tides follow.
            The shape of the coastline matters as much as the Moon. Narrow bays and estuaries can funnel the water and greatly increase the tidal range.
            Tide tables are calculated years in advance, but wind and air pressure can push the real water level above or below the prediction.
            For anyone walking on the shore, the practical lesson is simple: check the tide times before setting out, and know your way back.
        """),
    ),
    (
        P("How bread rises|Why dough rises|The science of a loaf|What yeast actually does"),
        L("""
            Bread rises because yeast, a single-celled fungus, feeds on sugars in the flour and releases carbon dioxide.
            The gas is trapped by gluten, a stretchy network of proteins that forms when wheat flour is mixed with water and kneaded.
            Warmth speeds the process up, which is why recipes ask for dough to be left somewhere warm, but a slow, cool rise often gives a better flavour.
            In the oven, the trapped gas expands, the yeast dies, and the structure sets as the proteins and starches cook.
            Sourdough relies on wild yeasts and bacteria instead of packet yeast. The bacteria produce acids that give the bread its sharp taste.
            Too little kneading leaves the gluten weak and the loaf flat; too much rising time lets the structure collapse.
        """),
    ),
    (
        P(
            "How composting works|Composting at home: the basics|Why compost heats up|Turning waste into soil"
        ),
        L("""
            Composting is the breakdown of plant and food waste by bacteria, fungi, worms and insects into a dark, crumbly material that improves soil.
            A healthy heap needs a mix of wet, nitrogen-rich material such as vegetable scraps and grass, and dry, carbon-rich material such as cardboard and leaves.
            As microbes work, the centre of a large heap can heat up to sixty degrees or more, which kills many weed seeds.
            Turning the heap every few weeks lets air in and keeps the process going; a heap without air turns slimy and starts to smell.
            Cooked food, meat and dairy are usually left out of home compost because they attract pests.
            Depending on the weather and the mix, compost can be ready in anywhere from three months to a year.
        """),
    ),
    (
        P(
            "How suspension bridges stay up|Why bridges do not fall down|Bridges, explained|The engineering of a long bridge"
        ),
        L("""
            A suspension bridge hangs its deck from vertical cables, which in turn hang from two main cables draped over tall towers.
            The main cables are anchored in huge blocks of concrete or rock at each end, which carry the enormous pulling force.
            The towers are pushed downwards, and because stone and concrete are strong in compression, they carry the load well.
            Engineers must also design for wind. A deck that is too flexible can twist and oscillate, so modern decks are shaped to let the wind pass.
            Steel expands in summer and contracts in winter, so bridges include joints that allow the deck to move by many centimetres.
            Regular inspection matters as much as design: cables are checked for corrosion, and bearings are replaced when they wear.
        """),
    ),
    (
        P(
            "How vaccines train the immune system|What a vaccine does|Vaccination, briefly|Why vaccines work"
        ),
        L("""
            A vaccine shows the immune system a harmless version or piece of a germ, so that the body learns to recognise it.
            After vaccination, the immune system produces antibodies and memory cells that remain long after the first response fades.
            If the real germ arrives later, the memory cells allow a faster and stronger response, often before the person feels ill.
            Some vaccines need booster doses because the memory fades over time or because the germ itself changes.
            When enough people in a community are immune, the germ struggles to spread, which also protects people who cannot be vaccinated.
            Side effects such as a sore arm or a mild fever are signs of the immune system responding and usually pass within a day or two.
        """),
    ),
    (
        P(
            "How interest on savings works|Compound interest in plain words|Why saving early matters|Interest rates, explained"
        ),
        L("""
            Interest is the price of borrowing money. When you save, the bank pays you interest for the use of your money.
            Simple interest is paid only on the original amount; compound interest is also paid on interest already earned.
            Over long periods compounding makes a large difference: money growing at five percent a year roughly doubles in fourteen years.
            Inflation works in the opposite direction. If prices rise faster than your interest rate, your savings buy less each year.
            Central banks raise or lower a base rate to influence borrowing and spending across the economy.
            The headline rate is not the whole story: fees, limits on withdrawals and how often interest is paid all change the real return.
        """),
    ),
    (
        P(
            "Why leaves change colour|The chemistry of autumn|What happens to leaves in autumn|Autumn colour, explained"
        ),
        L("""
            Leaves are green because of chlorophyll, the pigment that captures light for photosynthesis.
            As days shorten, many trees stop making chlorophyll and begin to break it down, recovering valuable nutrients before the leaves fall.
            Yellow and orange pigments, present all summer but hidden by the green, then become visible.
            Reds and purples are different: they are made fresh in autumn, especially when days are sunny and nights are cool.
            A layer of cells forms where each leaf joins the twig, sealing the wound and letting the leaf drop cleanly.
            A dry summer or an early frost can cut the display short, which is why some years are far more colourful than others.
        """),
    ),
    (
        P(
            "How recycling is sorted|What happens to your recycling|From bin to factory|Recycling, step by step"
        ),
        L("""
            Mixed recycling is taken to a materials recovery facility, where it is sorted by a combination of machines and people.
            Rotating screens separate flat cardboard and paper from bottles and cans, which roll or bounce in a different direction.
            Magnets pull out steel, while a reversed magnetic field, called an eddy current, throws aluminium cans off the belt.
            Optical sensors identify different plastics by how they reflect light and use jets of air to push them into the right stream.
            Food and liquid left in containers can spoil a whole bale of paper, which is why rinsing matters.
            The sorted material is pressed into bales and sold to mills and factories that turn it into new products.
        """),
    ),
)

EXPLAIN_FRAMES = {
    "intro": L("""
        It is one of those things most of us never think about until someone asks.
        The short answer is simpler than you might expect, but the details are worth knowing.
        This guide explains the basics in plain language.
        Readers often write in to ask about this, so here is a brief explanation.
    """),
    "outro": L("""
        Next time, it may be worth a second look.
        Understanding the basics makes the everyday a little more interesting.
        For more detail, most public libraries have good introductory books on the subject.
    """),
}

# Reports: (opening paragraphs, follow-up paragraphs, things people say), one tuple per kind.
REPORTS: tuple[tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]], ...] = (
    (
        L("""
            A new report from the {institution} finds that {finding}. The authors surveyed {pop} households across the {region} between {year} and {year2}.
            According to the latest survey, {pct} percent of residents in {town} say they are satisfied with local services, compared with {pct} percent five years ago.
            The {body} has published its annual figures, showing that spending on maintenance {trend} by {pct} percent compared with the previous year.
        """),
        L("""
            The figures vary widely between areas. Rural districts reported the largest changes, while urban centres saw little movement.
            The report recommends more investment in transport and housing, and calls for a review of how funding is allocated.
            Critics say the sample was too small to draw firm conclusions, and have called for a larger follow-up study.
            A summary of the findings is available from the {body}, and the full data will be released in {month}.
            In the longer term, the authors expect the trend to continue unless policy changes significantly.
            Younger respondents were the most likely to say things had got worse; those over sixty-five were the most positive.
        """),
        P("""The picture is more complicated than the headlines suggest|These numbers should worry all of us|
            We are pleased with the progress but there is more to do|The data speaks for itself"""),
    ),
    (
        L("""
            {company} today announced plans to open a new site in {town}, creating around {num}0 jobs over the next {num2} years.
            {company}, the {town}-based manufacturer, has reported a {pct} percent rise in annual sales and plans to expand its workforce.
        """),
        L("""
            The company said it chose {town} because of its transport links and the availability of skilled workers.
            Construction of the new site is due to start in {month}, subject to planning permission from the {body}.
            {company} was founded in {year} and now employs more than {pop} people across the {region}.
            The {body} welcomed the announcement, saying it would bring much-needed investment to the area.
            Local unions said they would seek assurances about pay, training and conditions for the new roles.
            Shares in the company {trend} following the announcement.
        """),
        P("""This is a long-term investment in the area|We are proud of where we come from|
            Our people are the reason for this success|We expect to recruit locally wherever we can"""),
    ),
)

GRAMMAR = Grammar(
    COMMON_RULES,
    RULES,
    ENTRY_RULES,
    {"year2": lambda rng: str(rng.randint(2015, 2024)), "num2": lambda rng: str(rng.randint(2, 6))},
)


def _news(rng: random.Random, target: int) -> str:
    kind = NEWS_KINDS[rng.randrange(len(NEWS_KINDS))]
    bind = {k: GRAMMAR.pick(k, rng) for k in ("town", "body", "project", "river", "month")}
    bind.update((k, GRAMMAR.pick(k, rng)) for k in ("storm_kind", "business", "event", "animal_pl"))
    bind["storm_kind_cap"], bind["animal_pl_cap"] = cap(bind["storm_kind"]), cap(bind["animal_pl"])
    bind["say"], bind["say2"] = draw(rng, kind["say"], 2)
    g = lambda t: tidy(GRAMMAR(t, rng, bind))  # noqa: E731
    lede = g(rng.choice(kind["lede"]))
    style = rng.random()
    if style < 0.35:
        lede = f"{bind['town'].upper()}, {bind['month']} {rng.randint(1, 28)} - {lede}"
    elif style < 0.5:
        lede = f"{bind['town']} ({rng.choice(('Reuters', 'AP', 'staff', 'PA'))}) - {lede}"
    paras = [g(rng.choice(kind["head"]))] if rng.random() < 0.6 else []
    paras.append(lede)
    bodies = draw(rng, kind["body"], 5)
    quote = g(rng.choice(NEWS_QUOTES))
    while sum(map(len, paras)) < target - 120 and bodies:
        paras.append(g(bodies.pop()))
        if quote and (len(paras) >= 3 and rng.random() < 0.5 or not bodies):
            paras.append(quote)
            quote = ""
    paras.append(g(rng.choice(NEWS_CLOSE)))
    return "\n\n".join(paras)


def _entry(rng: random.Random, target: int) -> str:
    bind = {k: GRAMMAR.pick(k, rng) for k in ("town", "river", "kind", "industry_lc", "region")}
    bind["feature"], bind["feature2"] = (GRAMMAR(t, rng) for t in draw(rng, RULES["feature"], 2))
    g = lambda t: tidy(GRAMMAR(t, rng, bind))  # noqa: E731
    headings = rng.random() < 0.5
    paras = [bind["town"]] if headings and rng.random() < 0.5 else []
    paras.append(g(rng.choice(ENTRY["lead"])))
    sections = ["history", "geography", "economy", "culture"]
    for name in sections:
        if sum(map(len, paras)) >= target:
            break
        body = " ".join(g(t) for t in draw(rng, ENTRY[name], rng.randint(1, 3)))
        paras.append(f"{name.capitalize()}\n\n{body}" if headings else body)
    return "\n\n".join(paras)


def _explainer(rng: random.Random, target: int) -> str:
    titles, facts = EXPLAINERS[rng.randrange(len(EXPLAINERS))]
    order = draw(rng, facts[1:], len(facts) - 1)
    paras = [rng.choice(titles)] if rng.random() < 0.7 else []
    first = [facts[0]]
    if paras and rng.random() < 0.5:  # an intro needs the title to refer to
        first.insert(0, rng.choice(EXPLAIN_FRAMES["intro"]))
    paras.append(" ".join(first))
    while order and sum(map(len, paras)) < target:
        k = rng.randint(1, 3)
        paras.append(" ".join(order[:k]))
        order = order[k:]
    if rng.random() < 0.5:
        paras.append(rng.choice(EXPLAIN_FRAMES["outro"]))
    return "\n\n".join(paras)


def _report(rng: random.Random, target: int) -> str:
    openings, follow_ups, says = REPORTS[rng.randrange(len(REPORTS))]
    bind = {k: GRAMMAR.pick(k, rng) for k in ("town", "institution", "body", "company")}
    bind["say"], bind["say2"] = draw(rng, says, 2)
    g = lambda t: tidy(GRAMMAR(t, rng, bind))  # noqa: E731
    paras = [g(rng.choice(openings))]
    more = draw(rng, follow_ups, 6)
    quotes = [g(rng.choice(NEWS_QUOTES))]
    while sum(map(len, paras)) < target and (more or quotes):
        pool = quotes if quotes and rng.random() < 0.3 else (more or quotes)
        paras.append(pool.pop() if pool is quotes else g(pool.pop()))
    return "\n\n".join(paras)


_FORMATS = (_news, _news, _news, _entry, _entry, _explainer, _report)


def make_expository(rng: random.Random) -> str:
    """One news story, reference entry, explainer or report, 450-2400 characters."""
    return render_document(rng, _FORMATS, median=850, high=2000, grow=300)
