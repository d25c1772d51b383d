"""A deterministic generator of English reviews: the text the embedded default model learns from.

Four domains (films, books, restaurants, products), each with its own items, aspects and vocabulary. A review
has a sentiment (positive, negative or mixed) that decides, aspect by aspect, which opinion words it uses; VADER
(the reviews task's gold judge) scores positive reviews above negative ones, which is what makes the task a
meaningful target for RLHF. Sentences are assembled from many structures and word lists, so a corpus of a few
thousand reviews holds tens of thousands of distinct sentences.

Everything is driven by `random.Random(seed)`: the same seed always yields the same corpus.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

SENTIMENTS = ("positive", "negative", "mixed")

# --- Items -------------------------------------------------------------------------------------------------

_TITLE_ADJ = [
    "Silent",
    "Broken",
    "Golden",
    "Hidden",
    "Last",
    "Crimson",
    "Distant",
    "Quiet",
    "Burning",
    "Frozen",
    "Lost",
    "Hollow",
    "Bright",
    "Restless",
    "Secret",
    "Wild",
    "Gentle",
    "Forgotten",
    "Electric",
    "Midnight",
    "Northern",
    "Paper",
    "Velvet",
    "Iron",
    "Salt",
    "Glass",
    "Second",
    "Lonely",
    "Endless",
    "Little",
]
_TITLE_NOUN = [
    "Harbor",
    "River",
    "Garden",
    "Letter",
    "Mountain",
    "Kingdom",
    "Summer",
    "Winter",
    "Station",
    "Lighthouse",
    "Orchard",
    "Bridge",
    "Island",
    "Tide",
    "Forest",
    "Engine",
    "Mirror",
    "Promise",
    "Road",
    "Valley",
    "Signal",
    "Storm",
    "Window",
    "Compass",
    "Crown",
    "Shore",
    "Lantern",
    "Echo",
    "Horizon",
    "Meadow",
]
_PLACE = ["Lisbon", "Vienna", "Cairo", "Oslo", "Havana", "Kyoto", "Dublin", "Prague", "Marseille", "Montreal"]
_PERSON = [
    "Anna",
    "Marco",
    "Elena",
    "Tomas",
    "Yuki",
    "Sofia",
    "Daniel",
    "Amira",
    "Jonah",
    "Clara",
    "Felix",
    "Nadia",
    "Oscar",
    "Ines",
    "Hugo",
    "Maya",
    "Leo",
    "Rosa",
    "Theo",
    "Lena",
]
_RESTAURANT_KIND = [
    "Kitchen",
    "Bistro",
    "Grill",
    "Cafe",
    "Trattoria",
    "Diner",
    "Brasserie",
    "Noodle Bar",
    "Taqueria",
    "Bakery",
    "Steakhouse",
    "Tavern",
]
_RESTAURANT_ANIMAL = ["Fox", "Heron", "Olive", "Lemon", "Pepper", "Oak", "Sparrow", "Fig", "Anchor", "Copper"]
_BRAND = ["Lumo", "Vexa", "Nordel", "Kiro", "Zephyr", "Orbix", "Trello", "Astra", "Pixon", "Brava", "Halden", "Quilo"]
_PRODUCT_KIND = [
    "headphones",
    "blender",
    "backpack",
    "desk lamp",
    "coffee maker",
    "keyboard",
    "vacuum",
    "speaker",
    "kettle",
    "smartwatch",
    "tent",
    "phone case",
    "air fryer",
    "monitor",
    "rice cooker",
    "electric toothbrush",
]


@dataclass(frozen=True)
class Item:
    """A reviewable thing: its domain ("film", "book", "restaurant", "product") and its name."""

    domain: str
    name: str

    @property
    def label(self) -> str:
        """How a prompt names it, e.g. 'the film The Silent Harbor'."""
        if self.domain == "product":
            return self.name  # already reads 'the Lumo X2 headphones'
        return f"the {self.domain} {self.name}"


def all_items() -> list[Item]:
    """Every item of every domain, in a fixed order (a few thousand in all)."""
    items: list[Item] = []
    for adj in _TITLE_ADJ:
        for noun in _TITLE_NOUN:
            items.append(Item("film", f"The {adj} {noun}"))
            items.append(Item("book", f"{noun}s of the {adj} Sea" if len(noun) % 2 else f"A {adj} {noun}"))
    for noun in _TITLE_NOUN:
        for place in _PLACE:
            items.append(Item("film", f"{noun} in {place}"))
            items.append(Item("book", f"The {noun} of {place}"))
    for person in _PERSON:
        for kind in _RESTAURANT_KIND:
            items.append(Item("restaurant", f"{person}'s {kind}"))
    for animal in _RESTAURANT_ANIMAL:
        for kind in _RESTAURANT_KIND:
            items.append(Item("restaurant", f"The {animal} {kind}"))
        for place in _PLACE:
            items.append(Item("restaurant", f"{animal} of {place}"))
    for brand in _BRAND:
        for kind in _PRODUCT_KIND:
            for model in ("", " Pro", " Mini", " 2", " X"):
                items.append(Item("product", f"the {brand}{model} {kind}"))
    # Deduplicate while keeping order (a few book titles can coincide).
    seen: set[Item] = set()
    return [i for i in items if not (i in seen or seen.add(i))]


# --- Vocabulary --------------------------------------------------------------------------------------------

_ASPECTS = {
    "film": [
        "acting",
        "plot",
        "soundtrack",
        "cinematography",
        "pacing",
        "ending",
        "dialogue",
        "lead performance",
        "script",
        "visual effects",
        "supporting cast",
        "direction",
        "score",
        "final act",
        "editing",
    ],
    "book": [
        "prose",
        "characters",
        "plot",
        "pacing",
        "ending",
        "dialogue",
        "world building",
        "narrator",
        "opening chapter",
        "writing",
        "main character",
        "middle section",
        "themes",
        "translation",
    ],
    "restaurant": [
        "food",
        "service",
        "atmosphere",
        "prices",
        "dessert",
        "wine list",
        "staff",
        "portions",
        "menu",
        "pasta",
        "coffee",
        "bread",
        "decor",
        "seating",
        "soup",
    ],
    "product": [
        "battery life",
        "build quality",
        "price",
        "design",
        "setup",
        "sound",
        "instructions",
        "buttons",
        "material",
        "app",
        "warranty",
        "packaging",
        "performance",
        "charging cable",
        "handle",
    ],
}
_WORK = {"film": "film", "book": "book", "restaurant": "place", "product": "product"}
_EXPERIENCE = {
    "film": ["watching it", "the screening", "the first half hour", "the whole two hours", "the premiere"],
    "book": ["reading it", "the first fifty pages", "the last chapter", "a long weekend with it", "the audiobook"],
    "restaurant": ["dinner there", "our visit", "a Friday lunch", "the tasting menu", "brunch last weekend"],
    "product": ["the first week", "a month of daily use", "unboxing it", "setting it up", "a long trip with it"],
}
_WHO = ["my partner", "my sister", "a friend", "my dad", "my roommate", "my kids", "my colleague", "my neighbor"]
_WHEN = [
    "last week",
    "on Saturday",
    "yesterday",
    "over the holidays",
    "a few days ago",
    "last month",
    "recently",
    "this spring",
    "on a rainy evening",
    "after work",
]

_POS_ADJ = [
    "wonderful",
    "excellent",
    "great",
    "brilliant",
    "delightful",
    "superb",
    "lovely",
    "fantastic",
    "charming",
    "beautiful",
    "impressive",
    "outstanding",
    "solid",
    "enjoyable",
    "fresh",
    "perfect",
    "memorable",
    "remarkable",
    "warm",
    "clever",
    "pleasant",
    "amazing",
    "terrific",
    "strong",
]
_NEG_ADJ = [
    "terrible",
    "awful",
    "boring",
    "dull",
    "disappointing",
    "weak",
    "bland",
    "poor",
    "messy",
    "flat",
    "tedious",
    "clumsy",
    "forgettable",
    "frustrating",
    "cheap",
    "mediocre",
    "lifeless",
    "annoying",
    "horrible",
    "sloppy",
    "lazy",
    "painful",
    "useless",
    "bad",
]
_INTENS = [
    "",
    "",
    "",
    "really ",
    "truly ",
    "very ",
    "quite ",
    "genuinely ",
    "incredibly ",
    "surprisingly ",
    "remarkably ",
    "rather ",
    "pretty ",
    "absolutely ",
]
_POS_VERB = ["loved", "enjoyed", "adored", "appreciated", "admired", "liked", "was impressed by", "was won over by"]
_NEG_VERB = [
    "hated",
    "disliked",
    "was bored by",
    "was annoyed by",
    "could not stand",
    "regretted",
    "was let down by",
    "was disappointed by",
]
_POS_FEEL = ["happy", "delighted", "pleased", "thrilled", "glad", "grateful", "satisfied"]
_NEG_FEEL = ["disappointed", "frustrated", "bored", "annoyed", "sad", "unhappy", "irritated"]
_POS_NOUN = ["a joy", "a treat", "a pleasure", "a highlight", "a real gem", "a triumph", "a delight"]
_NEG_NOUN = ["a mess", "a letdown", "a chore", "a disaster", "a waste of time", "a failure", "a bore"]
_CONTRAST = ["but", "although", "though", "yet", "while", "even if"]


def _adj(rng: random.Random, positive: bool) -> str:
    return rng.choice(_INTENS) + rng.choice(_POS_ADJ if positive else _NEG_ADJ)


_PLURAL_ASPECTS = {"characters", "prices", "portions", "buttons", "instructions", "themes", "visual effects", "staff"}


def _was(aspect: str) -> str:
    return "were" if aspect in _PLURAL_ASPECTS else "was"


def _is(aspect: str) -> str:
    return "are" if aspect in _PLURAL_ASPECTS else "is"


def _cap(text: str) -> str:
    return text[0].upper() + text[1:] if text else text


# --- Sentences ---------------------------------------------------------------------------------------------
# Each builder takes (rng, item, aspect, positive) and returns one sentence. Structures vary in word order,
# subject, tense and length so that the model learns language, not one template.


def _aspect_sentence(rng: random.Random, item: Item, aspect: str, positive: bool) -> str:
    work = _WORK[item.domain]
    pick = rng.randrange(14)
    if pick == 0:
        return f"The {aspect} {_was(aspect)} {_adj(rng, positive)}."
    if pick == 1:
        return f"I {rng.choice(_POS_VERB if positive else _NEG_VERB)} the {aspect}."
    if pick == 2:
        return f"The {aspect} {_is(aspect)} {_adj(rng, positive)} and {rng.choice(_POS_ADJ if positive else _NEG_ADJ)}."
    if pick == 3:
        feel = rng.choice(_POS_FEEL if positive else _NEG_FEEL)
        return f"I was {feel} with the {aspect}."
    if pick == 4:
        return f"The {aspect} felt {_adj(rng, positive)} from start to finish."
    if pick == 5:
        noun = rng.choice(_POS_NOUN if positive else _NEG_NOUN)
        return f"Honestly, the {aspect} {_was(aspect)} {noun}."
    if pick == 6:
        return f"What stood out was the {_adj(rng, positive)} {aspect}."
    if pick == 7:
        who = rng.choice(_WHO)
        verb = "agreed" if rng.random() < 0.5 else "said"
        return f"Even {who} {verb} that the {aspect} {_was(aspect)} {_adj(rng, positive)}."
    if pick == 8:
        return f"The {aspect} of this {work} {_is(aspect)} {_adj(rng, positive)}."
    if pick == 9:
        if positive:
            return f"I cannot say enough good things about the {aspect}."
        return f"I cannot say anything good about the {aspect}."
    if pick == 10:
        return f"As for the {aspect}, {'they were' if aspect in _PLURAL_ASPECTS else 'it was'} {_adj(rng, positive)}."
    if pick == 11:
        adv = rng.choice(["simply", "just", "frankly", "mostly", "somehow"])
        plural = aspect in _PLURAL_ASPECTS
        if positive:
            return f"The {aspect} {adv} {'work' if plural else 'works'}."
        return f"The {aspect} {adv} {'do' if plural else 'does'} not work."
    if pick == 12:
        return f"There is something {_adj(rng, positive)} about the {aspect}."
    extra = rng.choice(_POS_ADJ if positive else _NEG_ADJ)
    return (
        f"The {aspect}? {_cap(extra)}, {_adj(rng, positive)} and worth mentioning."
        if positive
        else f"The {aspect}? {_cap(extra)} and {_adj(rng, positive)}."
    )


def _contrast_sentence(rng: random.Random, item: Item, good: str, bad: str) -> str:
    """One sentence that praises one aspect and criticises another: the voice of a mixed review."""
    link = rng.choice(_CONTRAST)
    good_part = f"the {good} {_was(good)} {_adj(rng, True)}"
    bad_part = f"the {bad} {_was(bad)} {_adj(rng, False)}"
    if rng.random() < 0.5:
        good_part, bad_part = bad_part, good_part
    if link in ("although", "though", "while", "even if"):
        return f"{_cap(link)} {good_part}, {bad_part}."
    return f"{_cap(good_part)}, {link} {bad_part}."


def _opening(rng: random.Random, item: Item, sentiment: str) -> str:
    experience = rng.choice(_EXPERIENCE[item.domain])
    when = rng.choice(_WHEN)
    who = rng.choice(_WHO)
    positive = sentiment == "positive"
    pick = rng.randrange(9)
    if pick == 0:
        verb = {"film": "watched", "book": "read", "restaurant": "tried", "product": "bought"}[item.domain]
        return f"I {verb} {item.name} {when} with {who}." if item.domain != "book" else f"I read {item.name} {when}."
    if pick == 1:
        return f"{_cap(experience)} was {_adj(rng, positive) if sentiment != 'mixed' else 'a mixed experience'}."
    if pick == 2:
        hope = rng.choice(["high hopes", "low expectations", "no expectations", "mixed feelings"])
        return f"I went into {item.name} with {hope}."
    if pick == 3:
        return f"{_cap(who)} recommended {item.name} to me."
    if pick == 4:
        if sentiment == "mixed":
            return f"{_cap(item.name)} is a bit of a puzzle."
        verb = "are" if item.name.endswith("phones") else "is"
        return f"{_cap(item.name)} {verb} {_adj(rng, positive)}."
    if pick == 5:
        return f"After {experience}, I have a lot to say."
    if pick == 6:
        return f"This is my honest review of {item.name}."
    if pick == 7:
        feel = {"positive": rng.choice(_POS_FEEL), "negative": rng.choice(_NEG_FEEL), "mixed": "torn"}[sentiment]
        return f"I am {feel} about {item.name}."
    return f"So, {item.name}."


def _verdict(rng: random.Random, item: Item, sentiment: str) -> str:
    work = _WORK[item.domain]
    if sentiment == "positive":
        return rng.choice(
            [
                f"I would recommend it to anyone.",
                f"Highly recommended.",
                f"Overall, a {_adj(rng, True)} {work}.",
                f"I will happily go back to it.",
                f"Five stars from me.",
                f"It was worth every minute.",
                f"Easily one of the best I have seen this year."
                if item.domain == "film"
                else f"Easily one of the best this year.",
                f"I loved it and I am glad I found it.",
                f"A {_adj(rng, True)} surprise, and I want more.",
            ]
        )
    if sentiment == "negative":
        return rng.choice(
            [
                "I would not recommend it.",
                "Save your money.",
                f"Overall, a {_adj(rng, False)} {work}.",
                "I will not be going back to it.",
                "One star from me.",
                "It was a waste of my time.",
                "Avoid it if you can.",
                "I wanted to like it, but I could not.",
                f"A {_adj(rng, False)} experience, sadly.",
            ]
        )
    return rng.choice(
        [
            "Good in parts, bad in others.",
            f"Overall, a decent but uneven {work}.",
            "I have mixed feelings about it.",
            "Three stars, maybe.",
            "Worth a try if your expectations are modest.",
            "Not bad, not great.",
            "Some parts were good and some were not.",
            "I am not sure I would recommend it.",
        ]
    )


def generate_review(rng: random.Random, item: Item, sentiment: str) -> str:
    """One review of `item` with the given sentiment ("positive", "negative" or "mixed")."""
    if sentiment not in SENTIMENTS:
        raise ValueError(f"sentiment must be one of {SENTIMENTS}, got {sentiment!r}")
    aspects = rng.sample(_ASPECTS[item.domain], 4)
    sentences = []
    if rng.random() < 0.7:
        sentences.append(_opening(rng, item, sentiment))
    if sentiment == "mixed":
        sentences.append(_contrast_sentence(rng, item, aspects[0], aspects[1]))
        if rng.random() < 0.6:
            sentences.append(_aspect_sentence(rng, item, aspects[2], rng.random() < 0.5))
    else:
        positive = sentiment == "positive"
        for aspect in aspects[: rng.choice((1, 2, 2, 3))]:
            sentences.append(_aspect_sentence(rng, item, aspect, positive))
    if rng.random() < 0.8:
        sentences.append(_verdict(rng, item, sentiment))
    return " ".join(sentences)


# --- Instructions ------------------------------------------------------------------------------------------

_PROMPT_TEMPLATES = [
    "Write a short review of {label}.",
    "Write a review of {label}.",
    "Review {label} in a few sentences.",
    "What did you think of {label}? Write a short review.",
    "Share your opinion of {label}.",
    "Give a brief review of {label}.",
    "Tell me about {label} in a short review.",
]


def prompt_for(rng: random.Random, item: Item) -> str:
    """An instruction asking for a review of `item`."""
    return rng.choice(_PROMPT_TEMPLATES).format(label=item.label)


def all_prompts_for(item: Item) -> list[str]:
    """Every instruction the generator can write for `item` (one per template)."""
    return [t.format(label=item.label) for t in _PROMPT_TEMPLATES]


def split_items(items: list[Item], eval_every: int = 10) -> tuple[list[Item], list[Item]]:
    """A fixed train/eval split of items: every `eval_every`-th item is held out, so eval prompts never name
    an item the model was trained on."""
    train = [item for i, item in enumerate(items) if i % eval_every != 3]
    held_out = [item for i, item in enumerate(items) if i % eval_every == 3]
    return train, held_out


def sentence_split(review: str) -> list[str]:
    """The sentences of a generated review (they end in '.', '?' or '!' followed by a space)."""
    out, start = [], 0
    for i, ch in enumerate(review):
        if ch in ".?!" and (i + 1 == len(review) or review[i + 1] == " "):
            out.append(review[start : i + 1].strip())
            start = i + 1
    if review[start:].strip():
        out.append(review[start:].strip())
    return out
