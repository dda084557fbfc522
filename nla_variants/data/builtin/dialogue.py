"""Generated dialogue: chat logs, text threads, IRC logs, play scripts, interviews, call transcripts.

Why: dialogue is recognisable by turn structure (speaker labels, alternation, short replies,
questions answered in the next turn) rather than vocabulary, so the same everyday topics are
rendered in several transcript layouts; a probe must find turn-taking, not a topic or a format.
"""

from __future__ import annotations

import random

from .grammar import Grammar, L, P, W, render_document, tidy
from .vocab import COMMON_RULES, FEMALE, MALE

RULES = {
    "dish": P(
        "lasagne|banana bread|chicken curry|pancakes|bean chilli|fish cakes|shortbread|"
        "vegetable soup|roast potatoes|pizza dough"
    ),
    "swap": P("buttermilk|eggs|self-raising flour|caster sugar|fresh thyme|double cream|butter"),
    "device": P("laptop|printer|phone|router|tablet|desktop PC|smart TV"),
    "symptom": P(
        "keeps restarting|won't connect to the wifi|is really slow|shows a black screen|"
        "makes a clicking noise|won't charge|keeps dropping the connection"
    ),
    "fixture": P("boiler|shower|kitchen tap|front door lock|washing machine|radiator|fridge"),
    "parcel": P("a pair of boots|a blender|three books|a birthday present|a phone case|a lamp"),
    "plant": P("tomatoes|basil|roses|lemon tree|courgettes|orchid|strawberries|runner beans"),
    "pet_issue": P(
        "isn't eating|keeps scratching|is limping a bit|is sleeping all day|"
        "has started barking at night"
    ),
    "team": P("United|Rovers|City|the Harriers|the Hornets|Athletic|the Lions|the Tide"),
    "subject": P(
        "fractions|the French Revolution|photosynthesis|quadratic equations|"
        "the water cycle|persuasive essays|the periodic table|long division"
    ),
    "job_role": P(
        "{occupation}|office manager|junior analyst|warehouse supervisor|"
        "marketing assistant|support engineer"
    ),
    "book_kind": P(
        "a mystery|something funny|a long fantasy series|a short novel|"
        "non-fiction about the sea|a good thriller|poetry"
    ),
    "num": lambda rng: str(rng.randint(2, 12)),
    "pet": P("dog|cat|rabbit|hamster|parrot|tortoise|guinea pig|puppy|kitten"),
    "goals": lambda rng: str(rng.randint(2, 4)),
    "pct": lambda rng: str(rng.choice((10, 15, 20, 25, 30))),
    "price": lambda rng: f"{rng.randint(4, 180)}.{rng.choice(('00', '50', '99', '95'))}",
    "ref": lambda rng: f"{rng.choice('ABCDHKMPRTX')}{rng.randint(10000, 99999)}",
    "cuisine": P("Thai|Lebanese|pizza|ramen|Ethiopian|tapas|dumpling|Georgian|Sichuan|taco"),
    "meal": lambda rng: (
        f"{rng.randint(9, 35)} quid" if rng.random() < 0.5 else f"${rng.randint(9, 35)}"
    ),
    "ok": P("ok|okay|ah ok|right|got it|makes sense|perfect|cool|oh good|fair enough|sure"),
    "thanks": P("thanks|thank you|thanks a lot|cheers|that's really helpful|you're a star"),
    "hmm": P("hmm|let me think|good question|honestly|to be fair|well"),
}

# Each topic: A opens; B replies with a chain "B || A || B" (B asks, A answers, B advises); then
# self-contained "A || B" question-answer pairs; then A closes and B signs off.
TOPICS: tuple[dict[str, tuple[str, ...]], ...] = (
    {
        "open": L("""
            are you still up for {weekday}?
            what time are we meeting on {weekday}
            Hey, do you fancy getting food later this week?
            are we still on for {weekday} or did I dream that
        """),
        "reply": L("""
            yes! what time works for you || how about {clock} outside the station? || works for me. I might be five minutes late though
            Definitely. Where do you want to go? || that {cuisine} place on {street}? || good call, I've heard it's great
            sorry only just seen this, yes I'm in. this week or next? || next week is better for me || next week it is then
        """),
        "qa": L("""
            do we need to book? || probably, it gets busy. I'll ring them tomorrow
            is {first_name} coming too? || I asked, they said maybe. you know what that means
            should I bring anything? || just yourself. and maybe an umbrella, it's meant to rain
            want to walk or get the bus? || walk if it's dry, bus if it isn't
            is it expensive there? || not really, about {meal} each if we don't go mad
        """),
        "close": L("""
            great, see you then
            ok sorted. text me when you leave
            perfect, looking forward to it
        """),
        "bye": L("""
            see you {weekday}!
            will do. don't be late this time
            same. bye!
        """),
    },
    {
        "open": L("""
            How long should I cook {dish} for? The recipe doesn't say.
            I'm making {dish} and I've run out of {swap}. What can I use instead?
            Can I freeze {dish}, or does it go weird?
            Why does my {dish} always come out flat?
        """),
        "reply": L("""
            It depends on the oven. Is yours fan-assisted? || yes, it's a fan oven || Then about {num}0 minutes at 170 degrees. Check it a few minutes early.
            What else have you got in the cupboard? || milk, yoghurt, some lemons || Yoghurt thinned with a splash of milk will do the job nicely.
            Most of the time, yes. Is it already cooked? || yes, I made it last night || Then let it cool completely, wrap it well, and it'll keep for about three months.
            Are you measuring by weight or by cups? || cups, mostly || That's often the problem. Weighing is far more reliable, especially for flour.
        """),
        "qa": L("""
            How do I know when it's done? || Press the middle gently. If it springs back, or a skewer comes out clean, it's ready.
            It's looking a bit dry, is that bad? || Cover it with foil for the rest of the time and add a spoon of water or stock.
            Can I make it the night before? || Yes, and it often tastes better the next day. Reheat it gently and stir halfway.
            How much salt would you add? || Start with a pinch, taste, then add more. You can't take it back out.
            Can I double the recipe? || Yes, but use a bigger dish rather than a deeper one, or the middle won't cook.
        """),
        "close": L("""
            Brilliant, {thanks}.
            {ok}, I'll give that a go.
            Great, I'll let you know how it turns out.
        """),
        "bye": L("""
            Good luck, enjoy it!
            No problem. Happy cooking.
            You're welcome. Send a photo!
        """),
    },
    {
        "open": L("""
            I need to get to {city} on {weekday}, what's the cheapest way?
            Is it better to take the train or fly to {city}?
            Hi, I'd like to change my booking, reference {ref}.
        """),
        "reply": L("""
            The train, if you book ahead. Are your dates flexible? || I could leave a day early if it helps || That helps a lot. The {clock} departure is about {pct} percent cheaper.
            How much luggage will you have? || just a backpack || Then the train is easier. No bag fees and it drops you in the centre.
            Of course. Could you confirm the name on the booking, please? || {full_name} || Thank you. What would you like to change it to?
        """),
        "qa": L("""
            Do I need to print the ticket? || No, the code on your phone is enough. Keep your ID with you.
            Is there a direct connection? || Not on {weekday}. You change once, with about {num}0 minutes between trains.
            Can I get a refund if I cancel? || On the flexible fare, yes, up to 24 hours before. The saver fare can only be changed for a fee.
            Can I take my bike? || Yes, but bike spaces have to be reserved. There are only four per train.
            What time does it arrive? || Just before {clock}, if it's on time.
        """),
        "close": L("""
            {ok}, book me on that one please.
            That's everything, {thanks}.
            Fine, I'll take the earlier one.
        """),
        "bye": L("""
            Done. Your new reference is {ref}. Have a good trip!
            You're welcome. Safe travels.
            All booked. The confirmation is on its way to your email.
        """),
    },
    {
        "open": L("""
            My {device} {symptom}. Any idea what's going on?
            hi, my {device} {symptom} since the update yesterday
            Quick question: why would a {device} suddenly start acting up?
            help, my {device} {symptom} and I have a deadline tomorrow
        """),
        "reply": L("""
            Have you tried turning it off completely and starting it again? || yes, restarted it twice already || OK. Next, check for updates, install anything pending, then restart once more.
            Did anything change around the time it started? || I installed a new app || Try uninstalling that app first. If the problem goes away, that's your culprit.
            Is it happening all the time or only sometimes? || mostly in the evenings || That points to the network rather than the {device}. Try moving closer to the router, or use a cable.
        """),
        "qa": L("""
            is it worth just buying a new one? || Not yet. Most of these problems are software. A reset usually fixes it for a fraction of the cost.
            how do I do a reset without losing my files? || Back everything up first. Then look under Settings, System, Reset, and choose the option that keeps your files.
            could it be a virus? || Possible but unlikely. Run a full scan anyway; it only takes a few minutes.
            how old is too old for a {device}? || Five or six years is when updates usually stop. After that it's a matter of time.
        """),
        "close": L("""
            that seems to have fixed it!
            {ok}, I'll try that tonight.
            still the same, but I'll try the reset
        """),
        "bye": L("""
            Great. If it comes back, let me know and we'll dig deeper.
            Good luck. Come back if it doesn't help.
            Sounds like a plan. Back up first!
        """),
    },
    {
        "open": L("""
            Hi, the {fixture} has stopped working again.
            Sorry to bother you on a {weekday}, but the {fixture} is leaking.
            Hello, when can someone come and look at the {fixture}?
        """),
        "reply": L("""
            Sorry to hear that. What exactly is it doing? || It's making a banging noise and then cutting out || That sounds like the pressure. Is there a dial on the front you can read to me?
            I can get someone round this week. What days are you in? || I'm home all day {weekday} || Good, I'll ask the plumber to come between nine and one.
            Thanks for letting me know. Has it happened before? || This is the third time this {season} || I know, I'm sorry. I'll ask them to replace the part rather than patch it.
        """),
        "qa": L("""
            Is it safe to keep using it? || Better not until it's been checked. Turn it off at the switch for now.
            Do I need to be in when they come? || It's easier if you are, but you can leave a key with a neighbour.
            Who pays for this? || It's covered under the tenancy, so you won't be charged.
        """),
        "close": L("""
            {ok}, {thanks}.
            Fine, I'll wait in.
            Please let me know if that changes.
        """),
        "bye": L("""
            Will do. Sorry again for the hassle.
            No problem. They'll call before they come.
            Thanks for your patience.
        """),
    },
    {
        "open": L("""
            hiya, is there any chance you could help me with {subject}? I don't get it at all
            Can you explain {subject} like I'm twelve?
            I have a test on {subject} on {weekday} and I'm panicking a bit
        """),
        "reply": L("""
            Of course. Is it the idea that's confusing, or the questions? || the idea, the questions just look like random symbols || That's normal. Let's do one example slowly, and say out loud what each step is for.
            Sure. What do you already know about it? || not much, we only started last week || Then let's start with the basic idea and build up from there.
            Don't panic, there's time. Which bits feel shakiest? || all of it honestly || Fine. We'll go through it from the start, one piece a day.
        """),
        "qa": L("""
            what's the most important thing to remember? || Remember why it works, not just the steps. Then you can rebuild the steps.
            how should I revise? || Short sessions, {num} questions at a time, and check your answers straight away. Redo the wrong ones tomorrow.
            is it going to come up in the exam? || Almost certainly. It's one of the topics they like because it tests understanding.
            can you give me a practice question? || Sure. Try the first three on the sheet from {weekday} and tell me where you get stuck.
        """),
        "close": L("""
            oh, that actually makes sense now
            {ok} I'll try a few more on my own
            {thanks}, I feel a lot better about {weekday}
        """),
        "bye": L("""
            You've got this. Message me if you get stuck.
            Good luck! Remember to show your working.
            Any time.
        """),
    },
    {
        "open": L("""
            My parcel was supposed to arrive yesterday and it still hasn't. Order {ref}.
            The tracking says delivered but there's nothing here.
            I ordered {parcel} two weeks ago. Where is it?
        """),
        "reply": L("""
            I'm sorry about that. Could you check with your neighbours first? || I've checked, it's not with them || Thank you. I've opened an investigation with the courier, reference {ref}.
            Let me look into it. Can you confirm the delivery address? || It's {num} {street}, {town} || Thanks. The driver's note says it was left in a porch. Do you have one?
        """),
        "qa": L("""
            Can you just send another one? || Yes. If the courier can't find it in 48 hours, we'll send a replacement at no cost.
            I need it by {weekday} || I'll mark the replacement as priority. It should arrive a day earlier than standard.
            Can I get a refund instead? || Of course. It takes three to five working days to reach your account.
        """),
        "close": L("""
            {ok}, please keep me updated.
            Fine. {thanks} for sorting it.
            That works.
        """),
        "bye": L("""
            Of course. You'll get an email as soon as we hear back.
            You're welcome. Sorry again for the trouble.
            Have a good day.
        """),
    },
    {
        "open": L("""
            Any idea why my {plant} are going yellow?
            is it too late to plant {plant} this year
            My {plant} look really sad after the hot weather
        """),
        "reply": L("""
            Usually too much water or not enough food. How often are you watering? || every day, just a little || Try watering deeply twice a week instead. Little and often keeps the roots near the surface.
            Not necessarily. Do you have somewhere sheltered? || there's a south-facing wall || Perfect. Plant them against it and cover them on cold nights.
            Heat stress is common. Are they in pots or in the ground? || pots, on the balcony || Pots dry out fast. Move them out of the afternoon sun and add a layer of mulch.
        """),
        "qa": L("""
            should I feed them? || A liquid feed every two weeks will help, but only once they've recovered a bit.
            do I cut off the yellow leaves? || Yes, cut them back to the stem. It stops disease spreading.
            what about slugs? || Go out with a torch after rain and pick them off. It's grim but it works.
        """),
        "close": L("""
            {ok}, I'll try that
            {thanks}, fingers crossed
            I'll report back in a week
        """),
        "bye": L("""
            Good luck with them!
            They usually bounce back. Be patient.
            Happy gardening.
        """),
    },
    {
        "open": L("""
            My {pet} {pet_issue}, should I be worried?
            Quick one: our {pet} {pet_issue}. Normal?
            We just adopted a {pet} and it {pet_issue}
        """),
        "reply": L("""
            How long has it been going on? || about three days now || Then I'd book a vet appointment, just to be safe. Note when it eats and drinks.
            Has anything changed at home recently? || we moved house last week || That would explain it. Keep the routine steady and give it a quiet corner.
            Congratulations! How old is it? || about two, the shelter thinks || Some settling-in behaviour is normal at that age. Give it a couple of weeks.
        """),
        "qa": L("""
            the vet is really expensive || Some charities run low-cost clinics. It's worth calling around.
            should I change its food? || Not suddenly. If you change, mix the new food in gradually over a week.
            is it ok to leave it alone all day? || Not every day. A neighbour popping in at lunchtime makes a big difference.
        """),
        "close": L("""
            {ok}, I'll ring the vet in the morning
            that's reassuring, {thanks}
            {ok} we'll keep an eye on it
        """),
        "bye": L("""
            Hope it feels better soon.
            Good luck, keep us posted.
            You're welcome. Give it a scratch from me.
        """),
    },
    {
        "open": L("""
            I've got an interview for a {job_role} job on {weekday}. Any tips?
            How do I answer "what's your biggest weakness" without sounding fake?
            Should I apply for the {job_role} role even if I don't tick every box?
        """),
        "reply": L("""
            Congratulations! Have you read the advert again? || not since I applied || Do that tonight and pick out three things they clearly care about.
            Pick a real weakness that isn't central to the job. Do you have one in mind? || I'm bad at saying no || Good one. Say what you're doing about it, like agreeing priorities each week.
            How much of the advert do you match? || maybe two thirds || Then apply. Adverts are wish lists.
        """),
        "qa": L("""
            what should I wear? || Something one step smarter than what people wear there day to day. Comfortable shoes.
            what if they ask about the gap in my CV? || Be brief and honest, then move on to what you learned or did in that time.
            should I ask questions at the end? || Always. Ask what a good first three months would look like.
            how do I stop my voice shaking? || Slow down, breathe out before you answer, and practise your first two answers out loud.
        """),
        "close": L("""
            {ok}, I'll practise tonight
            {thanks}, I feel more prepared
            that's really useful
        """),
        "bye": L("""
            Good luck on {weekday}!
            You'll be great. Let me know how it goes.
            Fingers crossed for you.
        """),
    },
    {
        "open": L("""
            did you see the game last night??
            {team} were robbed on {weekday}
            can you believe that result
        """),
        "reply": L("""
            I saw the second half. what happened in the first? || they went {goals}-0 down in twenty minutes || ouch. the defence has been a mess all {season}
            robbed? they were lucky to get a draw || that penalty was never a penalty || {hmm}, from the replay it looked like a foul to me
            honestly no. I turned it off at half time || you missed the best bit || typical. who scored?
        """),
        "qa": L("""
            are you going to the next home game? || if I can get tickets. they're {price} now, it's ridiculous
            the new keeper is class though || yeah, he's the only reason it wasn't worse
            who do we play next? || {team}, away. I'm not optimistic
        """),
        "close": L("""
            anyway, same time next week?
            we'll see on {weekday}
            I need to stop watching, it's bad for my health
        """),
        "bye": L("""
            ha, see you then
            always. later
            you say that every week
        """),
    },
    {
        "open": L("""
            Can you recommend {book_kind}? I've got a long train journey coming up.
            I need a present for my {elder} who reads a lot. Ideas?
            What should I read next? I loved the last thing you lent me.
        """),
        "reply": L("""
            How long is the journey? || about {num} hours || Then something with short chapters, so you have places to stop when you change trains.
            What does your {elder} usually read? || mostly crime, and history sometimes || A historical mystery would cover both. There are good series set around old ports.
            Glad you liked it! More of the same or something different? || something different, surprise me || Then try a novel told in letters. It sounds odd but it's very easy to read.
        """),
        "qa": L("""
            nothing too sad please || Noted. I'll pick something where the dog definitely lives.
            is it a long one? || About three hundred pages. You'll finish it on the way back.
            can I borrow your copy? || If you give it back this time, yes.
        """),
        "close": L("""
            {ok}, adding it to my list
            sounds perfect, {thanks}
            I'll pick it up from the library
        """),
        "bye": L("""
            Enjoy it!
            Tell me what you think when you've finished.
            Happy reading.
        """),
    },
    {
        "open": L("""
            We're moving on {weekday} and I haven't packed anything
            how many boxes do you need for a two-bedroom flat?
            Do you still have that van? We're moving house
        """),
        "reply": L("""
            Oh no. How much stuff are we talking about? || mostly books and kitchen things || Start with the books. Pack the kitchen last and leave out one pan and two plates.
            More than you think. Do you have a lot of books? || far too many || Then probably {num}0 boxes, and small ones for the books or you won't lift them.
            I do! When do you need it? || {weekday} morning, if that's ok || That's fine. I'll drop it round the night before with a full tank.
        """),
        "qa": L("""
            the lift in the new place is tiny || Then take anything long apart before the day. Beds, shelves, the lot.
            can you help on the day? || I can do the morning. I'll bring tape and snacks.
            what do I do with the plants? || Move them last, in the car, not the van. They hate being bumped around.
        """),
        "close": L("""
            you're a lifesaver
            {ok}, I owe you one
            {thanks}, seriously
        """),
        "bye": L("""
            You owe me pizza.
            That's what friends are for.
            See you {weekday}, early!
        """),
    },
)

INTERVIEW_QA = L(
    """
    How did you become a {occupation}? || Almost by accident. I was working at a {workplace_i} and someone asked if I'd ever thought about it. I hadn't, but I said yes.
    What does a normal day look like for you? || There isn't really a normal day. I start around {clock}, check what's come in overnight, and after that it depends on who walks through the door.
    What's the hardest part of the job? || The hours, probably, and knowing you can't fix everything. You learn to let some things go.
    What do people get wrong about your work? || They think it's quiet. It's not quiet. It's {num} different things happening at once.
    Has the job changed since you started? || Completely. When I started we did everything on paper. Now it's all screens, which is quicker and somehow more tiring.
    What would you say to someone starting out? || Ask questions, even the stupid ones. Especially the stupid ones.
    Do you ever think about doing something else? || Every {weekday}. And then {weekday} evening comes and I remember why I do it.
    What are you most proud of? || Training people who are now better at it than I am. That's the job, really.
    Where do you see yourself in ten years? || Still here, I hope, but maybe working fewer {weekday}s.
    """
)

INTRO_LINES = L(
    """
    Interview with {who}, {occupation}, recorded in {town} on {date}.
    Transcript: conversation with {who} ({occupation}), {month} {year}.
    The following interview has been edited for length and clarity.
    {who} has worked as a {occupation} in {town} for {num} years. We spoke in {month}.
    """
)

GRAMMAR = Grammar(
    COMMON_RULES,
    RULES,
    {
        "workplace_i": P("hotel|hospital|garage|bakery|warehouse|school|radio station"),
        "year": lambda rng: str(rng.randint(1995, 2024)),
        "elder": P("grandmother|grandfather|aunt|uncle|mum|dad"),
    },
)


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


CHAT_ROLES = (
    ("User", "Assistant"),
    ("Customer", "Agent"),
    ("Human", "AI"),
    ("Q", "A"),
    ("Guest", "Support"),
    ("Tenant", "Landlord"),
    ("Student", "Tutor"),
    ("Me", "Bot"),
    ("Caller", "Operator"),
)


def _chat(rng: random.Random, target: int) -> str:
    a, b = rng.choice(CHAT_ROLES) if rng.random() < 0.5 else _names(rng, 2)
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
        out.append(
            f"*** {nicks[2]} has joined #{rng.choice(W('general offtopic help random chat lobby'))}"
        )
    for s, t in _conversation(rng, target):
        m += rng.randint(0, 3)
        h, m = (h + m // 60) % 24, m % 60
        out.append(f"[{h:02d}:{m:02d}] <{nicks[s]}> {t}")
        if rng.random() < 0.08:
            out.append(f"[{h:02d}:{m:02d}] <{nicks[2]}> {GRAMMAR.pick('ok', rng)}")
    return "\n".join(out)


STAGE = P(
    """(beat)|(looking up)|(quietly)|(putting down the cup)|(laughing)|(not turning round)|
    (sighs)|(to herself)|(pause)|(too quickly)"""
)
SCENE = P("KITCHEN|BUS STOP|HOSPITAL CORRIDOR|CAR|LAUNDERETTE|OFFICE|BACK GARDEN|CAFE|STAIRWELL")


def _script(rng: random.Random, target: int) -> str:
    a, b = (n.upper() for n in _names(rng, 2))
    out = []
    if rng.random() < 0.5:
        place = rng.choice(SCENE)
        out.append(
            f"{'EXT.' if place in ('BUS STOP', 'BACK GARDEN') else 'INT.'} {place} - "
            f"{rng.choice(W('DAY NIGHT MORNING EVENING CONTINUOUS'))}"
        )
        out.append(f"{a} and {b} {rng.choice(P('sit in silence|are mid-argument|wait|eat'))}.")
    for s, t in _conversation(rng, target):
        stage = f" {rng.choice(STAGE)}" if rng.random() < 0.2 else ""
        out.append(f"{(a, b)[s]}{stage}\n{t}" if rng.random() < 0.5 else f"{(a, b)[s]}:{stage} {t}")
    return "\n\n".join(out)


def _interview(rng: random.Random, target: int) -> str:
    who = GRAMMAR.pick("full_name", rng)
    bind = {"who": who, "occupation": GRAMMAR.pick("occupation", rng)}
    q_label, a_label = rng.choice(
        (("Q", "A"), ("INTERVIEWER", who.split()[0].upper()), ("Interviewer", who.split()[-1]))
    )
    out = [tidy(GRAMMAR(rng.choice(INTRO_LINES), rng, bind))] if rng.random() < 0.7 else []
    pairs = list(INTERVIEW_QA)
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
