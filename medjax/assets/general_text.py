"""General-domain (non-medical) text for replay and for measuring forgetting: original English written
for this project (Apache-2.0, like the code), rendered from the small table of everyday subjects below.

Each subject has a definition, three features, how it works or is done, where it is found and one
more fact. Documents come in four kinds, one paragraph each: reference entries, explainers
(a question and its answer), short everyday stories and comparisons of two subjects of one kind.
`python -m medjax.assets.build_general_data` writes them under medjax/assets/general/.
"""
from __future__ import annotations

import dataclasses
import random


@dataclasses.dataclass(frozen=True)
class Subject:
    name: str
    kind: str        # one of KINDS
    definition: str  # "<name> is <definition>"
    features: tuple[str, str, str]
    how: str         # a full sentence
    place: str       # "found <place>" / "done <place>"
    fact: str        # a full sentence


KINDS = ("animal", "craft", "weather", "machine", "sport", "food")

SUBJECTS = (
    # animals
    Subject("the red fox", "animal", "a small wild dog with a bushy tail and reddish fur",
            ("sharp hearing", "a white tip on the tail", "a quiet, careful walk"),
            "It hunts mice by listening for them under the snow and then jumping high to pounce.",
            "in woods, farmland and even city parks", "A fox often stores spare food in small holes to eat later."),
    Subject("the barn owl", "animal", "a pale night bird with a heart-shaped face",
            ("soft feathers", "very good hearing", "long legs"),
            "Its soft feathers let it fly almost silently, so the animals it hunts do not hear it coming.",
            "in old barns, church towers and hollow trees", "A barn owl swallows small prey whole and later "
            "brings up the bones and fur as a pellet."),
    Subject("the beaver", "animal", "a large rodent that lives in and around rivers",
            ("orange front teeth", "a flat, scaly tail", "webbed back feet"),
            "It cuts down small trees with its teeth and piles up branches and mud to build a dam.",
            "along slow rivers and lakes with plenty of trees", "The pond behind a beaver dam becomes a home "
            "for frogs, fish and birds."),
    Subject("the honeybee", "animal", "a flying insect that lives in large colonies",
            ("a striped body", "baskets of pollen on its legs", "a dance that points the way to flowers"),
            "Worker bees collect nectar from flowers and turn it into honey, which they store in wax cells.",
            "in hives kept by beekeepers and in hollow trees", "A single colony can hold tens of thousands of "
            "bees but only one queen."),
    Subject("the bottlenose dolphin", "animal", "a clever sea mammal that breathes air through a hole on its head",
            ("a curved fin on its back", "a friendly-looking beak", "fast, playful swimming"),
            "It finds fish by making clicks and listening for the echoes that bounce back.",
            "in warm coastal seas around the world", "Dolphins live in groups and call to each other with "
            "whistles."),
    Subject("the emperor penguin", "animal", "the largest penguin, a bird that cannot fly but swims very well",
            ("a black back", "a yellow patch near the ears", "a thick layer of fat"),
            "The father keeps the egg warm on his feet through the long winter while the mother feeds at sea.",
            "on the sea ice around Antarctica", "In storms, the birds huddle together and take turns on the "
            "cold outside of the group."),
    Subject("the grey squirrel", "animal", "a small tree-climbing rodent with a long fluffy tail",
            ("strong back legs", "sharp claws", "a habit of burying nuts"),
            "It buries nuts in autumn and finds many of them again in winter by memory and smell.",
            "in parks, gardens and broadleaf woods", "The nuts a squirrel forgets can grow into new trees."),
    Subject("the tortoise", "animal", "a slow reptile that carries a hard, domed shell",
            ("a heavy shell", "scaly legs", "a long life"),
            "When it feels danger, it pulls its head and legs into the shell and waits.",
            "in dry grassland, scrub and deserts", "Some tortoises live for more than a hundred years."),
    # crafts and hobbies
    Subject("knitting", "craft", "a way of making fabric by looping yarn with two needles",
            ("a ball of wool", "two needles", "rows of small loops called stitches"),
            "Each new stitch is pulled through a loop of the row before, so the fabric grows one row at a time.",
            "at home, often in the evening", "The two basic stitches, knit and purl, are enough to make "
            "a scarf."),
    Subject("pottery", "craft", "the making of bowls, cups and pots from clay",
            ("wet clay", "a spinning wheel", "a hot kiln"),
            "The potter shapes soft clay by hand or on a wheel, lets it dry and then fires it in a kiln "
            "until it is hard.", "in a studio or a workshop", "A shiny glaze is a thin layer of glass that "
            "melts onto the pot in the kiln."),
    Subject("woodworking", "craft", "the craft of making furniture and other objects from wood",
            ("a saw", "a chisel", "sandpaper"),
            "Pieces of wood are measured, cut and joined with glue, screws or carefully fitted joints.",
            "in a shed or a workshop", "Wood is easier to cut along the grain than across it."),
    Subject("gardening", "craft", "the growing of flowers, fruit and vegetables",
            ("a spade", "a watering can", "good soil"),
            "Seeds are sown in spring, watered, weeded and thinned, and the crops are picked in summer and "
            "autumn.", "in back gardens, allotments and window boxes", "Compost made from kitchen scraps "
            "feeds the soil."),
    Subject("baking bread", "craft", "the mixing, rising and baking of a dough of flour, water, salt and yeast",
            ("a strong flour", "a warm place for the dough", "a hot oven"),
            "Kneading stretches the dough, and the yeast makes gas that lets the loaf rise before it is baked.",
            "in home kitchens and bakeries", "A loaf sounds hollow when it is tapped underneath if it is "
            "baked through."),
    Subject("photography", "craft", "the making of pictures by catching light with a camera",
            ("a lens", "a shutter", "good light"),
            "The lens focuses light onto a sensor or film, and the shutter opens for a moment to let it in.",
            "outdoors and in studios", "Many photographers like the soft light of early morning and late "
            "evening."),
    Subject("watercolour painting", "craft", "painting with pigments mixed in water on paper",
            ("soft brushes", "thick paper", "a box of small paint cakes"),
            "Thin washes of colour are laid on wet or dry paper, and the white of the paper shows through.",
            "at a table or outdoors with a small kit", "Light colours are usually painted first, because a "
            "dark wash is hard to cover."),
    Subject("birdwatching", "craft", "the hobby of watching wild birds and learning their names",
            ("a pair of binoculars", "a field guide", "a notebook"),
            "Birdwatchers move quietly, listen for songs and note the colour, size and shape of each bird.",
            "in gardens, marshes, woods and along the coast", "Many birds are easiest to hear at dawn, when "
            "they sing the most."),
    # weather and the earth
    Subject("rain", "weather", "water that falls from clouds in drops",
            ("grey clouds", "wet streets", "puddles"),
            "Warm air rises and cools, the water vapour in it forms tiny droplets, and the droplets join until "
            "they are heavy enough to fall.", "in almost every part of the world", "A cloud can hold a huge "
            "weight of water in tiny drops."),
    Subject("snow", "weather", "frozen water that falls as soft white flakes",
            ("six-sided crystals", "cold air", "a quiet white landscape"),
            "When a cloud is below freezing, water vapour turns straight into ice crystals, which stick "
            "together into flakes.", "in cold winters and on high mountains", "Fresh snow is mostly air, "
            "which is why it muffles sound."),
    Subject("thunder and lightning", "weather", "the flash and crash of an electrical storm",
            ("tall dark clouds", "a bright flash", "a rumble that follows"),
            "Ice and water bump together inside a storm cloud, electric charge builds up, and a giant spark "
            "jumps to the ground or to another cloud.", "in hot summer storms", "Light travels faster than "
            "sound, so the flash is seen before the thunder is heard."),
    Subject("the rainbow", "weather", "an arc of colours seen in the sky when sunlight meets rain",
            ("red on the outside", "violet on the inside", "the sun behind the watcher"),
            "Each raindrop bends sunlight and splits it into its colours, like a small glass prism.",
            "after a shower when the sun comes out", "From an aeroplane a rainbow can sometimes be seen as a "
            "full circle."),
    Subject("the tides", "weather", "the daily rise and fall of the sea along the coast",
            ("high water", "low water", "rock pools left behind"),
            "The pull of the moon, and to a smaller degree the sun, draws the oceans into bulges that the "
            "earth turns through.", "on coasts all around the world", "Most coasts have two high tides and "
            "two low tides every day."),
    Subject("the wind", "weather", "air moving from one place to another",
            ("bending trees", "waves on a lake", "clouds racing across the sky"),
            "Air flows from areas of high pressure to areas of low pressure, and the sun's uneven heating "
            "keeps the pressure changing.", "everywhere, strongest on coasts and hilltops", "Sailors and "
            "millers have used the wind for thousands of years."),
    Subject("fog", "weather", "a cloud that lies on the ground",
            ("grey air", "dripping branches", "short sight lines"),
            "On a still, clear night the ground cools, and the air just above it cools until its water "
            "vapour forms tiny floating drops.", "in valleys, over rivers and on coasts", "Fog usually lifts "
            "when the morning sun warms the ground."),
    Subject("the volcano", "weather", "an opening in the earth's crust where melted rock comes out",
            ("a cone-shaped mountain", "hot lava", "clouds of ash"),
            "Melted rock called magma rises from deep underground and bursts out as lava, ash and gas.",
            "along the edges of the plates that make up the earth's surface", "Soil made from old volcanic "
            "ash is often very good for farming."),
    # machines and buildings
    Subject("the bicycle", "machine", "a two-wheeled machine moved by pushing pedals",
            ("a chain", "gears", "brakes on the wheels"),
            "The pedals turn a toothed wheel, the chain carries that turning to the back wheel, and the gears "
            "change how far each push goes.", "on roads, paths and tracks", "Riding a bicycle uses less "
            "energy per mile than walking."),
    Subject("the sailing boat", "machine", "a boat pushed along by the wind in its sails",
            ("a mast", "a sail", "a keel under the water"),
            "The sail catches the wind, and the keel stops the boat sliding sideways, so it can even move "
            "against the wind in a zigzag.", "on lakes, rivers and the open sea", "Sailing towards the wind "
            "in a zigzag is called tacking."),
    Subject("the steam train", "machine", "a railway engine driven by the power of steam",
            ("a firebox", "a boiler", "large driving wheels"),
            "Coal burns in the firebox, the heat boils water in the boiler, and the steam pushes pistons "
            "that turn the wheels.", "on heritage railways and in museums", "Early railways changed how far "
            "people could travel in a day."),
    Subject("the hot-air balloon", "machine", "a large bag of hot air that carries a basket into the sky",
            ("a burner", "a wicker basket", "a colourful envelope"),
            "A burner heats the air inside the envelope; hot air is lighter than the cold air around it, so "
            "the balloon rises.", "in open country on calm mornings", "A balloon goes wherever the wind "
            "takes it; the pilot can only choose how high to fly."),
    Subject("the suspension bridge", "machine", "a bridge whose road hangs from cables over tall towers",
            ("two tall towers", "thick main cables", "thin hangers holding the road"),
            "The weight of the road is carried by the cables to the towers and then down into solid ground.",
            "over wide rivers and bays", "The main cables are made of thousands of thin steel wires "
            "bundled together."),
    Subject("the mechanical clock", "machine", "a machine that keeps time with gears and a swinging weight",
            ("a pendulum", "a set of gears", "hands on a dial"),
            "A falling weight or a wound spring drives the gears, and the pendulum lets them move forward by "
            "one small step at a time.", "in towers, halls and living rooms", "A longer pendulum swings "
            "more slowly than a short one."),
    Subject("the lighthouse", "machine", "a tower with a bright light that guides ships at night",
            ("a tall tower", "a powerful lamp", "a turning lens"),
            "A large lens gathers the light into a beam, and the turning lens gives each lighthouse its own "
            "pattern of flashes.", "on rocky coasts and harbour walls", "Sailors can tell which lighthouse "
            "they see from the timing of its flashes."),
    Subject("the windmill", "machine", "a building whose sails turn in the wind to do work",
            ("four sails", "a cap that turns into the wind", "heavy millstones"),
            "The wind turns the sails, and a shaft and gears carry the turning to stones that grind grain "
            "into flour.", "on flat, windy land", "Some windmills were used to pump water off low fields."),
    # sports and games
    Subject("football", "sport", "a team game in which two sides try to kick a ball into the other's goal",
            ("eleven players a side", "a round ball", "two goals"),
            "Players may move the ball with any part of the body except the hands and arms; only the "
            "goalkeeper may handle it.", "on grass pitches and in streets and parks", "A match has two "
            "halves of forty-five minutes."),
    Subject("tennis", "sport", "a racket game played over a net by two or four players",
            ("a racket", "a small yellow ball", "a court with lines"),
            "Players hit the ball over the net into the other court, and a point is lost when the ball "
            "bounces twice or lands outside the lines.", "on grass, clay and hard courts", "Scoring goes "
            "fifteen, thirty, forty and game."),
    Subject("chess", "sport", "a board game of strategy for two players",
            ("sixty-four squares", "sixteen pieces each", "a king to protect"),
            "Each piece moves in its own way, and a player wins by trapping the other king so that it "
            "cannot escape.", "at home, in clubs and in tournaments", "A game can open in a great many "
            "different ways."),
    Subject("rowing", "sport", "moving a boat through the water with oars",
            ("long oars", "a sliding seat", "a narrow boat"),
            "Rowers push with their legs, lean back and pull the oars together, and the boat glides "
            "between strokes.", "on rivers, lakes and canals", "In most racing boats the rowers face "
            "backwards."),
    Subject("basketball", "sport", "a team game in which players score by throwing a ball through a high hoop",
            ("five players a side", "a bouncing ball", "two hoops"),
            "Players move the ball by bouncing it or passing it, and a shot from far out scores more points.",
            "in sports halls and on outdoor courts", "The hoop is ten feet above the floor."),
    Subject("swimming", "sport", "moving through water using the arms and legs",
            ("front crawl", "breaststroke", "backstroke"),
            "Swimmers pull the water back with their arms and kick with their legs, and they breathe in a "
            "steady rhythm.", "in pools, lakes and the sea", "Front crawl is usually the fastest stroke."),
    Subject("the marathon", "sport", "a running race of a little over forty-two kilometres",
            ("a long road course", "water stations", "thousands of runners"),
            "Runners train for months, building up long runs slowly, and on the day they try to keep an "
            "even pace.", "through the streets of many large cities", "The race is named after a Greek town."),
    Subject("rock climbing", "sport", "climbing up steep rock faces using hands and feet",
            ("a rope", "a harness", "chalk for the hands"),
            "A climber moves from hold to hold while a partner holds the rope, ready to stop a fall.",
            "on cliffs, in quarries and on indoor walls", "Good climbers use their legs more than their arms."),
    # food and drink
    Subject("cheese", "food", "a food made from milk that has been thickened and pressed",
            ("milk", "a little salt", "weeks or months of ageing"),
            "Milk is soured and thickened, the solid curds are cut and pressed, and the cheese is left "
            "to age.", "in dairies and on farms", "Hard cheeses can be kept for a long time."),
    Subject("rice", "food", "the seed of a grass that feeds more people than almost any other crop",
            ("flooded fields", "green shoots", "small white or brown grains"),
            "Young plants grow in shallow water, the grain is cut when it turns golden, and the husk is "
            "removed.", "in warm, wet lands", "Brown rice keeps its outer layer; white rice has it "
            "polished away."),
    Subject("tea", "food", "a drink made by pouring hot water on dried leaves",
            ("a teapot", "dried leaves", "boiling water"),
            "The young leaves are picked, wilted, rolled and dried, and the hot water draws out their "
            "flavour.", "on hillside estates in warm, rainy places", "Green and black tea come from the "
            "same plant, dried in different ways."),
    Subject("coffee", "food", "a drink made from the roasted seeds of a tropical shrub",
            ("red coffee cherries", "roasted beans", "a grinder"),
            "The seeds are taken from the cherries, dried, roasted until brown and then ground and "
            "brewed.", "on farms in hot countries near the equator", "The smell of coffee comes mostly "
            "from the roasting."),
    Subject("soup", "food", "a warm dish of vegetables, meat or beans cooked in liquid",
            ("a large pot", "stock", "chopped vegetables"),
            "Onions are softened first, the other ingredients are added with stock, and the pot simmers "
            "until everything is tender.", "in kitchens everywhere", "Many soups taste better the next "
            "day."),
    Subject("jam", "food", "fruit boiled with sugar until it sets",
            ("ripe fruit", "sugar", "clean glass jars"),
            "The fruit and sugar are boiled hard until a drop on a cold plate wrinkles when pushed.",
            "in home kitchens in the fruit season", "The sugar is what keeps jam from spoiling."),
    Subject("pasta", "food", "a dough of wheat and water or egg, cut into shapes and boiled",
            ("durum wheat", "many shapes", "a pan of salted water"),
            "The dough is rolled or pressed into shapes, dried or used fresh, and boiled until it is just "
            "tender.", "in kitchens around the world", "Fresh pasta cooks in a few minutes, dried pasta "
            "takes longer."),
    Subject("chocolate", "food", "a sweet food made from the seeds of the cacao tree",
            ("cacao pods", "roasted beans", "sugar and cocoa butter"),
            "The seeds are fermented, dried and roasted, then ground and mixed with sugar and cocoa butter.",
            "on farms in hot, wet countries", "Chocolate melts at about the heat of the human mouth."),
)

PEOPLE = ("Anna", "Ben", "Clara", "David", "Ella", "Frank", "Grace", "Hugo", "Iris", "Jack", "Kate", "Leo",
          "Maya", "Noah", "Olivia", "Peter", "Rosa", "Sam", "Tara", "Victor")
WHEN = ("On Saturday morning", "Last summer", "One cold evening", "During the holidays", "On a quiet Sunday",
        "After school", "Early one spring day", "On the first day of the trip")
# the start of a story, per kind of subject: (person, subject) -> a sentence
_STORY_START = {
    "animal": lambda p, s: f"{p} went for a walk and stopped to watch {s.name}.",
    "craft": lambda p, s: f"{p} decided to take up {s.name} and bought {s.features[0]}.",
    "weather": lambda p, s: f"{p} looked out of the window and saw {s.name}.",
    "machine": lambda p, s: f"{p} visited a museum to learn about {s.name}.",
    "sport": lambda p, s: f"{p} joined a local club to try {s.name}.",
    "food": lambda p, s: f"{p} wanted to find out how {s.name} is made.",
}


def _cap(text: str) -> str:
    return text[0].upper() + text[1:]


def reference_entry(s: Subject, rng: random.Random) -> str:
    a, b, c = rng.sample(s.features, 3)
    opening = rng.choice([f"{_cap(s.name)} is {s.definition}.", f"{_cap(s.name)} can be described as "
                          f"{s.definition}."])
    features = rng.choice([f"It is known for {a}, {b} and {c}.", f"Typical features are {a}, {b} and {c}."])
    where = rng.choice([f"It is found {s.place}.", f"You can see it {s.place}."])
    return " ".join([opening, features, s.how, where, s.fact])


def explainer(s: Subject, rng: random.Random) -> str:
    question = {"animal": f"How does {s.name} live?", "craft": f"How is {s.name} done?",
                "weather": f"What causes {s.name}?", "machine": f"How does {s.name} work?",
                "sport": f"How is {s.name} played?", "food": f"How is {s.name} made?"}[s.kind]
    lead = rng.choice(["A short answer:", "In simple words:", "Here is the idea."])
    return f"Question: {question} {lead} {s.how} {_cap(s.name)} is {s.definition}. {s.fact}"


def story(s: Subject, rng: random.Random) -> str:
    person = rng.choice(PEOPLE)
    a, b, _ = rng.sample(s.features, 3)
    ending = rng.choice([f"That evening {person} told a friend all about it.",
                         f"{person} wrote it all down in a notebook.",
                         f"Now {person} wants to learn even more."])
    return (f"{rng.choice(WHEN)}, {_STORY_START[s.kind](person, s)} {person} noticed {a} and {b}. "
            f"A friend explained: \"{s.how}\" {person} also learned that {s.fact[0].lower()}{s.fact[1:]} "
            f"{ending}")


def comparison(s: Subject, other: Subject, rng: random.Random) -> str:
    return (f"{_cap(s.name)} and {other.name} are often mentioned together. {_cap(s.name)} is "
            f"{s.definition}, while {other.name} is {other.definition}. {_cap(s.name)} is known for "
            f"{rng.choice(s.features)}; {other.name} for {rng.choice(other.features)}. {s.fact}")


def render_general(rng: random.Random) -> list[str]:
    """Every document, one paragraph each, in a fixed order for a given `rng`."""
    docs = []
    for s in SUBJECTS:
        same_kind = [o for o in SUBJECTS if o.kind == s.kind and o is not s]
        docs += [reference_entry(s, rng), reference_entry(s, rng), explainer(s, rng), story(s, rng),
                 story(s, rng), comparison(s, rng.choice(same_kind), rng)]
    return docs
