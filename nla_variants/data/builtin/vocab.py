"""Shared vocabulary for the generated genres: people, places, times, things.

Why: every generated genre draws names, towns and everyday nouns from one place, so stories,
chats, news and tables talk about the same kind of world without each module repeating lists.
Town and street names are composed from parts, so there are thousands of them.
"""

from __future__ import annotations

import random

from .grammar import P, W

FEMALE = W(
    """Ada Alice Amara Ana Anika Beatrice Bianca Camille Carmen Chiara Clara Dana Daria Delia
    Elena Elif Emma Esther Fatima Freya Gloria Grace Hana Helen Imani Ines Irene Iris Jana Joan
    Julia Kaya Keiko Lea Leila Lina Lucia Lydia Maya Mei Mira Nadia Naomi Nina Noor Olga Paula
    Priya Rosa Ruth Sara Selin Sofia Tara Una Vera Wren Yara Zoe"""
)
MALE = W(
    """Aaron Adrian Ali Amir Andre Arjun Ben Bruno Carlos Cyril Daniel David Desmond Elias Emil
    Ethan Felix Finn Gabriel Hassan Hugo Ivan Jacob Jonas Jorge Kai Kenji Leo Liam Luca Malik
    Marco Mateo Max Milo Nico Noah Omar Oscar Owen Pablo Pedro Rafael Ravi Rui Samuel Silas
    Stefan Theo Tomas Victor Walter Yusuf"""
)
SURNAMES = W(
    """Abara Adeyemi Alvarez Andersen Baptiste Barros Becker Bell Brandt Calloway Castillo Chen
    Costa Dalton Daly Demir Dubois Duarte Eriksen Farrow Ferreira Fischer Fontaine Garcia Gray
    Haddad Hale Hartmann Holm Ibarra Ivanova Jensen Kader Kato Keller Kowalski Laine Lambert
    Larsen Lindqvist Lopes Marsh Mendes Moreau Morrow Nakamura Navarro Novak Nunez Okafor Okoye
    Oliveira Ortega Osei Park Pereira Petrov Quinn Ramos Reyes Rossi Sato Schmidt Serrano Shah
    Silva Sorensen Stone Tanaka Thorne Torres Vance Varga Vidal Walsh Weber Whitlock Yilmaz Zhou"""
)
_TOWN_HEAD = W(
    """Ash Alder Bar Bell Birch Black Bram Brook Cald Clay Cold Cran Crow Dun East Elm Fair Fern
    Glen Gold Grey Hart Hazel High Holly Iron Kings Lark Long Marl Mill Moss North Oak Pen Pine
    Red Rook Rose Salt Sand Stan Stone Sun Thorn West White Wick Willow Wolds"""
)
_TOWN_TAIL = W(
    """bridge brook bury by cliff combe dale den field ford gate ham haven hill hollow holme
    ington ley marsh mere minster mouth port stead stow thorpe ton vale wick wood worth"""
)
_STREET_KIND = W("Street Road Lane Avenue Row Terrace Close Way Crescent Hill Place Walk")
REGIONS = P(
    """northern uplands|southern hills|eastern lowlands|western valleys|river delta|central plain|
    lake district|high plateau|border country|northern islands|coastal marshes|hill country"""
)
COUNTRIES = W(
    """Portugal Norway Chile Japan Kenya Canada Ireland Poland Mexico Vietnam Ghana Scotland
    Finland Peru Morocco Greece Austria Uruguay Estonia Malaysia"""
)
CITIES = W(
    """Lisbon Oslo Valparaiso Osaka Nairobi Halifax Galway Gdansk Oaxaca Hanoi Accra Aberdeen
    Tampere Cusco Fez Thessaloniki Graz Montevideo Tartu Penang Porto Bergen Sapporo Mombasa
    Quebec Cork Krakow Hue Kumasi Dundee Turku Arequipa Tangier Patras Linz Salto Tallinn Ipoh"""
)
WEEKDAYS = W("Monday Tuesday Wednesday Thursday Friday Saturday Sunday")
MONTHS = W("January February March April May June July August September October November December")
SEASONS = W("spring summer autumn winter")
COLOURS = W("red blue green yellow grey white black brown orange violet amber teal ochre navy")
OCCUPATIONS = P(
    """baker|nurse|carpenter|schoolteacher|bus driver|librarian|electrician|ferry pilot|
    pharmacist|postal worker|mechanic|translator|surveyor|beekeeper|tailor|line cook|architect|
    bookbinder|night guard|radio engineer|veterinarian|florist|plumber|fisherman|journalist|
    accountant|gardener|piano tuner|locksmith|midwife|taxi driver|potter|welder|court clerk|
    software tester|dental hygienist|lighthouse keeper|market trader|bicycle mechanic|archivist"""
)
ANIMALS = W(
    """dog cat fox heron goat horse owl badger hare crow gull otter deer sparrow swan rabbit
    pigeon donkey magpie hedgehog"""
)
FOODS = P(
    """lentil soup|apple cake|fried rice|bean stew|fish pie|flatbread|tomato salad|roast chicken|
    mushroom risotto|potato dumplings|lemon tart|chickpea curry|oat porridge|grilled sardines|
    pumpkin soup|cheese omelette|noodle broth|plum jam|rye bread|spinach pie"""
)


def first_name(rng: random.Random) -> str:
    return rng.choice(FEMALE if rng.random() < 0.5 else MALE)


def full_name(rng: random.Random) -> str:
    return f"{first_name(rng)} {rng.choice(SURNAMES)}"


def town(rng: random.Random) -> str:
    return rng.choice(_TOWN_HEAD) + rng.choice(_TOWN_TAIL)


def street(rng: random.Random) -> str:
    head = rng.choice(SURNAMES) if rng.random() < 0.4 else rng.choice(_TOWN_HEAD)
    return f"{head} {rng.choice(_STREET_KIND)}"


def place(rng: random.Random) -> str:
    """A real city (for variety) or a composed town."""
    return rng.choice(CITIES) if rng.random() < 0.35 else town(rng)


def date_text(rng: random.Random) -> str:
    return f"{rng.randint(1, 28)} {rng.choice(MONTHS)} {rng.randint(1978, 2024)}"


def clock(rng: random.Random) -> str:
    return f"{rng.randint(5, 22)}:{rng.choice(('00', '05', '10', '15', '20', '30', '40', '45', '50', '55'))}"


PRONOUNS = {
    "she": {"he": "she", "He": "She", "his": "her", "His": "Her", "him": "her", "self": "herself"},
    "he": {"he": "he", "He": "He", "his": "his", "His": "His", "him": "him", "self": "himself"},
    "I": {"he": "I", "He": "I", "his": "my", "His": "My", "him": "me", "self": "myself"},
}


def character(rng: random.Random, prefix: str = "", first_person: bool = False) -> dict[str, str]:
    """Bindings for one character: name, surname and pronoun slots, keys prefixed by `prefix`."""
    female = rng.random() < 0.5
    name = rng.choice(FEMALE if female else MALE)
    pron = PRONOUNS["I" if first_person else ("she" if female else "he")]
    out = {f"{prefix}{k}": v for k, v in pron.items()}
    out[f"{prefix}name"] = name
    out[f"{prefix}surname"] = rng.choice(SURNAMES)
    out[f"{prefix}Name"] = "I" if first_person else name
    return out


COMMON_RULES = {
    "weekday": WEEKDAYS,
    "month": MONTHS,
    "season": SEASONS,
    "colour": COLOURS,
    "occupation": OCCUPATIONS,
    "animal": ANIMALS,
    "food": FOODS,
    "country": COUNTRIES,
    "region": REGIONS,
    "city": CITIES,
    "surname": SURNAMES,
    "town": town,
    "street": street,
    "place": place,
    "first_name": first_name,
    "full_name": full_name,
    "date": date_text,
    "clock": clock,
}
